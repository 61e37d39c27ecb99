// Package migratecli is the es-migrate command, importable so that it can be embedded in another
// command or run in-process by tests: create, init, migrate, status, grant, reset and drop an
// event store's schema, and create or drop its database. See Usage for the commands and flags.
package migratecli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "github.com/lib/pq"              // registers driver "postgres"

	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// Exit codes returned by Run.
const (
	// ExitOK means the command succeeded, including when there was nothing to do.
	ExitOK = 0
	// ExitFailure means the command failed: connection, SQL or migration errors, or a refusal to
	// drop what is not the event store's.
	ExitFailure = 1
	// ExitUsage means the command line was wrong, or a destructive command lacked --force.
	ExitUsage = 2
)

// Usage is the text printed by es-migrate --help.
const Usage = `es-migrate creates, migrates, inspects, grants, resets and drops the PostgreSQL schema
of an event store (github.com/go-eventstore/eventstore), and creates or drops its database. Made
for CI and deployments. It only ever changes the event store's own objects: tables of your
application in the same database or schema are never touched.

Usage:
  es-migrate [flags] <command> [flags]

Commands:
  create         Create the database named in the connection string, unless it exists. It
                 connects to the "postgres" maintenance database on the same server (or
                 "template1" if there is none) to do so.
  init           Create the schema, unless it exists, and the event store's tables in it by
                 applying every migration. On a schema that is already initialised it does
                 nothing (and says so, and whether migrations are pending: "migrate" applies
                 them).
  migrate        Apply the pending migrations, creating the schema if needed, and print what
                 was applied, or that the schema is up to date.
  status         List each migration, applied (with the time it was applied) or pending.
                 Changes nothing.
  grant          Give the role named by --role what an application needs to use the store,
                 and nothing more: read and append events, links and streams, sequence $all,
                 soft delete, snapshots and subscriptions; no UPDATE, DELETE or TRUNCATE of
                 stored events and no DDL. With --hard-deletes it may also hard delete streams.
                 Run it again after each migrate; it replaces the role's earlier grants on the
                 schema's tables. The role must exist, and must not own the tables.
  reset          Delete all the event store's data in the schema: events, streams, links,
                 $all, pending appends, snapshots and subscriptions (TRUNCATE ... RESTART
                 IDENTITY, in one transaction), and set $all back to position 0. Tables and
                 migrations stay; other tables in the schema are not touched. Stop the
                 applications using the store first: TRUNCATE waits for their transactions.
                 Needs --force.
  drop           Remove the event store from the schema: roll back every migration, which drops
                 the store's tables and functions, then its migrations table; then drop the
                 schema if it is left empty (never "public"). Tables of your application in the
                 schema stay; one that depends on the store's (a foreign key to its events, a
                 view) stops the drop, and nothing is dropped. Needs --force.
  drop-database  Drop the whole database named in the connection string, from the maintenance
                 database as for create. Refused unless the database holds nothing but event
                 stores (and empty schemas); the database must not be in use. Needs --force.
  help           Show this text.

Every command is idempotent (running it again, or on what does not exist, succeeds and says so)
and safe to run from several processes at once: runs on one schema, or on one database for
create and drop-database, are serialized by advisory locks.

Flags (before or after the command):
  --database-url DSN  The connection string: a URL such as
                      postgres://user:password@host:5432/app, or keyword/value pairs such as
                      "host=/run/postgresql dbname=app". Default: $DATABASE_URL, else the PG*
                      variables alone (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE,
                      ...), as for psql. Missing settings are taken from the PG* variables and
                      ~/.pgpass as psql does, and so is TLS: used when the server offers it
                      (sslmode=prefer) unless the string or PGSSLMODE says otherwise.
  --schema NAME       The Postgres schema of the event store. Default: public. Lower-case
                      letters, digits and underscores, starting with a letter or underscore, at
                      most 63 bytes.
  --driver NAME       The database/sql driver: postgres (lib/pq) or pgx (pgx's stdlib).
                      Default: postgres.
  --role NAME         grant: the role to grant to.
  --hard-deletes      grant: also allow hard deletes (DELETE on the event tables).
  --force             Confirm reset, drop or drop-database, which destroy data.
  --data-type TYPE    For init: store event data and metadata as bytea (the default: any
                      serializer's bytes) or jsonb (native JSON, queryable and indexable with
                      SQL). Chosen once per schema; init on a schema of the other type fails.
  -h, --help          Show this text.

Database and role names: letters, digits, underscores and hyphens, starting with a letter or
underscore, at most 63 bytes; case is kept. The maintenance databases postgres, template0 and
template1 are never dropped.

Exit status: 0 on success (also when there was nothing to do), 1 on failure or refusal to drop
what is not the event store's, 2 on a usage error (or reset or drop without --force). Errors go
to stderr, one line each, with what to do about them.

Examples:
  es-migrate --database-url "postgres://app@db:5432/app" create
  es-migrate init
  es-migrate migrate --schema tenant_a
  PGHOST=db PGUSER=app PGDATABASE=app es-migrate status
  es-migrate grant --role app_runtime
  es-migrate reset --force
  es-migrate drop --schema tenant_a --force
`

// options are the parsed flags.
type options struct {
	databaseURL string
	schema      string
	driver      string
	role        string
	hardDeletes bool
	force       bool
	dataType    string
}

// usageError is a command-line mistake or a missing confirmation: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Run runs es-migrate with args (without the program name), writing results to stdout and errors
// to stderr, and returns the exit code: ExitOK, ExitFailure or ExitUsage. The connection string
// and its defaults come from the flags and the process environment. ctx bounds the whole run.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, cmd, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) || (err == nil && cmd == "help") {
		fmt.Fprint(stdout, Usage)
		return ExitOK
	}
	if err == nil {
		err = o.validate(cmd)
	}
	if err != nil {
		fmt.Fprintf(stderr, "es-migrate: %s (run es-migrate --help for usage)\n", oneLine(err))
		return ExitUsage
	}
	runCmd, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "es-migrate: unknown command %q (run es-migrate --help for usage)\n", cmd)
		return ExitUsage
	}
	dsn, err := o.dsn()
	if err != nil {
		fmt.Fprintf(stderr, "es-migrate: %s\n", oneLine(err))
		return ExitUsage
	}
	c := &command{opts: o, dsn: dsn, out: stdout}
	if err := runCmd(ctx, c); err != nil {
		fmt.Fprintf(stderr, "es-migrate: %s: %s\n", cmd, oneLine(err))
		if errors.As(err, new(usageError)) {
			return ExitUsage
		}
		return ExitFailure
	}
	return ExitOK
}

// parseArgs parses flags placed before and after the command, and returns the command.
func parseArgs(args []string) (options, string, error) {
	o := options{schema: "public", driver: "postgres"}
	fs := flag.NewFlagSet("es-migrate", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.databaseURL, "database-url", "", "")
	fs.StringVar(&o.schema, "schema", o.schema, "")
	fs.StringVar(&o.driver, "driver", o.driver, "")
	fs.StringVar(&o.role, "role", "", "")
	fs.BoolVar(&o.hardDeletes, "hard-deletes", false, "")
	fs.BoolVar(&o.force, "force", false, "")
	fs.StringVar(&o.dataType, "data-type", "", "")

	var positional []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return o, "", err
		}
		left := fs.Args()
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			positional = append(positional, left...) // everything after "--" is an argument
			break
		}
		if len(left) == 0 {
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	switch len(positional) {
	case 0:
		return o, "", usagef("no command given")
	case 1:
		return o, positional[0], nil
	default:
		return o, "", usagef("unexpected argument %q after command %s", positional[1], positional[0])
	}
}

func (o *options) validate(cmd string) error {
	if o.driver != "postgres" && o.driver != "pgx" {
		return usagef("invalid --driver %q: use postgres or pgx", o.driver)
	}
	if err := pgident.ValidateSchema(o.schema); err != nil {
		return usagef("--schema: %v", err)
	}
	switch {
	case cmd == "grant" && o.role == "":
		return usagef("grant needs --role: the role the application connects as")
	case cmd == "grant":
		if err := pgident.ValidateName("role", o.role); err != nil {
			return usagef("--role: %v", err)
		}
	case o.role != "" || o.hardDeletes:
		return usagef("--role and --hard-deletes are for grant only")
	}
	if o.dataType != "" && o.dataType != string(goose.Bytea) && o.dataType != string(goose.JSONB) {
		return usagef("invalid --data-type %q: use bytea or jsonb", o.dataType)
	}
	return nil
}

// dsn returns the connection string: --database-url, else $DATABASE_URL, else "" (the PG*
// variables alone). It must parse.
func (o *options) dsn() (string, error) {
	s, source := o.databaseURL, "--database-url"
	if s == "" {
		s, source = os.Getenv("DATABASE_URL"), "DATABASE_URL"
	}
	if s == "" {
		source = "the PG* environment variables"
	}
	if _, err := pgdsn.Parse(s); err != nil {
		return "", fmt.Errorf("%s: %w", source, err)
	}
	return s, nil
}

// oneLine flattens an error message onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
