// Package migratecli is the es-migrate command, importable so that it can be embedded in another
// command or run in-process by tests: create, init, migrate, status, reset and drop an event
// store's database and schema. See Usage for the commands and flags.
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
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// Exit codes returned by Run.
const (
	// ExitOK means the command succeeded, including when there was nothing to do.
	ExitOK = 0
	// ExitFailure means the command failed: connection, SQL or migration errors.
	ExitFailure = 1
	// ExitUsage means the command line was wrong, or a destructive command lacked --force.
	ExitUsage = 2
)

// Usage is the text printed by es-migrate --help.
const Usage = `es-migrate creates, migrates, inspects, resets and drops the PostgreSQL database and
schema of an event store (github.com/go-eventstore/eventstore). Made for CI and deployments.

Usage:
  es-migrate [flags] <command> [flags]

Commands:
  create    Create the database named in the connection string, unless it exists. It connects
            to the "postgres" maintenance database on the same server (or "template1" if there
            is none) to do so.
  init      Create the schema, unless it exists, and the event store's tables in it by applying
            every migration. On a schema that is already initialised it does nothing (and says
            so, and whether migrations are pending: "migrate" applies them).
  migrate   Apply the pending migrations, creating the schema if needed, and print what was
            applied, or that the schema is up to date. Safe to run from several processes at
            once: runs on one schema are serialized by an advisory lock.
  status    List each migration, applied (with the time it was applied) or pending. Changes
            nothing.
  reset     Delete all the event store's data in the schema: events, streams, links, $all,
            pending appends, snapshots and subscriptions (TRUNCATE ... RESTART IDENTITY, in one
            transaction), and set $all back to position 0. Tables and migrations stay; other
            tables in the schema are not touched. Stop the applications using the store
            first: TRUNCATE waits for their transactions. Needs --force.
  drop      With --schema public (the default): drop the whole database named in the
            connection string, from the maintenance database as for create; the database must
            not be in use. With any other --schema: drop only that schema, with everything in
            it (DROP SCHEMA ... CASCADE), and only if it holds an event store; the database
            stays. Needs --force. Dropping what does not exist succeeds and says so.
  help      Show this text.

Flags (before or after the command):
  --database-url DSN  The connection string: a URL such as
                      postgres://user:password@host:5432/app?sslmode=disable, or keyword/value
                      pairs such as "host=/run/postgresql dbname=app". Default: $DATABASE_URL,
                      else one built from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and
                      PGSSLMODE (the drivers also read the other PG* variables themselves).
  --schema NAME       The Postgres schema of the event store. Default: public. Lower-case
                      letters, digits and underscores, starting with a letter or underscore, at
                      most 63 bytes.
  --driver NAME       The database/sql driver: postgres (lib/pq) or pgx (pgx's stdlib).
                      Default: postgres.
  --force             Confirm reset or drop, which destroy data.
  --data-type TYPE    For init: store event data and metadata as bytea (the default: any
                      serializer's bytes) or jsonb (native JSON, queryable and indexable with
                      SQL). Chosen once per schema; init on a schema of the other type fails.
  -h, --help          Show this text.

Database names for create and drop: letters, digits, underscores and hyphens, starting with a
letter or underscore, at most 63 bytes; case is kept. The maintenance databases postgres,
template0 and template1 are never dropped.

Exit status: 0 on success (also when there was nothing to do), 1 on failure, 2 on a usage error
or a refusal (reset or drop without --force). Errors go to stderr, one line each.

Examples:
  es-migrate --database-url "postgres://app@db:5432/app?sslmode=disable" create
  es-migrate init
  es-migrate migrate --schema tenant_a
  PGHOST=db PGUSER=app PGDATABASE=app es-migrate status
  es-migrate reset --force
  es-migrate drop --schema tenant_a --force
`

// options are the parsed flags.
type options struct {
	databaseURL string
	schema      string
	driver      string
	force       bool
	dataType    string
}

// usageError is a command-line mistake or a refusal: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// Run runs es-migrate with args (without the program name), writing results to stdout and errors
// to stderr, and returns the exit code: ExitOK, ExitFailure or ExitUsage. The connection string
// defaults come from the process environment. ctx bounds the whole run.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return run(ctx, args, os.Getenv, stdout, stderr)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	o, cmd, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) || (err == nil && cmd == "help") {
		fmt.Fprint(stdout, Usage)
		return ExitOK
	}
	if err == nil {
		err = o.validate()
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
	conn, err := o.connString(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "es-migrate: %s\n", oneLine(err))
		return ExitUsage
	}
	c := &command{opts: o, conn: conn, getenv: getenv, out: stdout}
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

func (o *options) validate() error {
	if o.driver != "postgres" && o.driver != "pgx" {
		return usagef("invalid --driver %q: use postgres or pgx", o.driver)
	}
	if err := sqltmpl.ValidateSchema(o.schema); err != nil {
		return usagef("--schema: %v", err)
	}
	if o.dataType != "" && o.dataType != string(goose.Bytea) && o.dataType != string(goose.JSONB) {
		return usagef("invalid --data-type %q: use bytea or jsonb", o.dataType)
	}
	return nil
}

// connString returns the connection string: --database-url, else $DATABASE_URL, else one built
// from the PG* variables.
func (o *options) connString(getenv func(string) string) (*connString, error) {
	s, source := o.databaseURL, "--database-url"
	if s == "" {
		s, source = getenv("DATABASE_URL"), "DATABASE_URL"
	}
	if s == "" {
		return connStringFromEnv(getenv), nil
	}
	c, err := parseConnString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return c, nil
}

// oneLine flattens an error message onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
