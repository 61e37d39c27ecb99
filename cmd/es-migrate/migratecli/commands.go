package migratecli

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	pgoose "github.com/pressly/goose/v3"

	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/pgident"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

var commands = map[string]func(context.Context, *command) error{
	"create":        cmdCreate,
	"init":          cmdInit,
	"migrate":       cmdMigrate,
	"status":        cmdStatus,
	"grant":         cmdGrant,
	"reset":         cmdReset,
	"drop":          cmdDrop,
	"drop-database": cmdDropDatabase,
}

// resetTables are the event store's data tables, emptied by reset. all_counter is set back to 0
// instead, and the migrations table is kept.
var resetTables = []string{"events", "streams", "links", "all_events", "pending", "snapshots", "subscriptions", "parked_events", "subscription_members"}

func cmdCreate(ctx context.Context, c *command) error {
	name, err := c.databaseName()
	if err != nil {
		return err
	}
	// Connecting to the database itself first needs no rights on the maintenance database.
	db, err := c.open(ctx, name)
	if err == nil {
		_ = db.Close()
		fmt.Fprintf(c.out, "database %q already exists\n", name)
		return nil
	}
	if !pgerr.Is(err, pgerr.InvalidCatalogName) {
		return fmt.Errorf("connect to database %q: %w", name, explain(err, name))
	}
	maint, err := c.openMaintenance(ctx)
	if err != nil {
		return err
	}
	defer maint.Close()
	created := false
	err = withLock(ctx, maint, "database "+name, func() error {
		// Under the lock, a concurrent create has either finished or not started.
		var exists bool
		err := maint.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
		if err != nil || exists {
			return err
		}
		_, err = maint.ExecContext(ctx, "CREATE DATABASE "+pgident.Quote(name))
		// Another tool creating it at the same moment: CREATE DATABASE's duplicate check and the
		// catalog's unique index are the last word.
		if pgerr.Is(err, pgerr.DuplicateDatabase, pgerr.UniqueViolation) {
			return nil
		}
		created = err == nil
		return err
	})
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	if !created {
		fmt.Fprintf(c.out, "database %q already exists\n", name)
		return nil
	}
	fmt.Fprintf(c.out, "created database %q\n", name)
	return nil
}

// openConfirmed opens the target database for a destructive command, which runs only with
// --force; warning says what it would destroy.
func (c *command) openConfirmed(ctx context.Context, warning string) (*sql.DB, string, error) {
	if !c.opts.force {
		return nil, "", usagef("%s: add --force to confirm", warning)
	}
	return c.openTarget(ctx)
}

func cmdInit(ctx context.Context, c *command) error {
	db, dbName, err := c.openTarget(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	schema := c.opts.schema
	st, err := schemaStatus(ctx, db, schema)
	if err != nil {
		return fmt.Errorf("database %q: %w", dbName, err)
	}
	if version(st) == 0 {
		res, err := goose.UpWithOptions(ctx, db, schema, goose.Options{DataType: goose.DataType(c.opts.dataType)})
		printApplied(c.out, res)
		if err != nil {
			return fmt.Errorf("database %q: %w", dbName, err)
		}
		if len(res) > 0 {
			fmt.Fprintf(c.out, "initialised schema %q in database %q (version %d)\n", schema, dbName, lastVersion(res))
			return nil
		}
		// Initialised by someone else meanwhile.
		if st, err = schemaStatus(ctx, db, schema); err != nil {
			return fmt.Errorf("database %q: %w", dbName, err)
		}
	}
	if want := goose.DataType(c.opts.dataType); want != "" {
		if have, err := goose.SchemaDataType(ctx, db, schema); err != nil {
			return fmt.Errorf("database %q: %w", dbName, err)
		} else if have != want {
			return usagef("schema %q in database %q stores event data as %s, not %s: the data type is chosen when a schema is initialised", schema, dbName, have, want)
		}
	}
	fmt.Fprintf(c.out, "schema %q in database %q is already initialised (version %d)", schema, dbName, version(st))
	if n := pending(st); n > 0 {
		fmt.Fprintf(c.out, "; %d migration(s) pending: run es-migrate migrate", n)
	}
	fmt.Fprintln(c.out)
	return nil
}

func cmdMigrate(ctx context.Context, c *command) error {
	db, dbName, err := c.openTarget(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	schema := c.opts.schema
	res, err := goose.Up(ctx, db, schema)
	printApplied(c.out, res)
	if err != nil {
		return fmt.Errorf("database %q: %w", dbName, err)
	}
	if len(res) > 0 {
		fmt.Fprintf(c.out, "migrated schema %q in database %q to version %d\n", schema, dbName, lastVersion(res))
		return nil
	}
	st, err := schemaStatus(ctx, db, schema)
	if err != nil {
		return fmt.Errorf("database %q: %w", dbName, err)
	}
	fmt.Fprintf(c.out, "schema %q in database %q is up to date (version %d)\n", schema, dbName, version(st))
	return nil
}

func cmdStatus(ctx context.Context, c *command) error {
	db, dbName, err := c.openTarget(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	schema := c.opts.schema
	st, err := schemaStatus(ctx, db, schema)
	if err != nil {
		return fmt.Errorf("database %q: %w", dbName, err)
	}
	names, err := migrationNames()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "migrations of schema %q in database %q:\n", schema, dbName)
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tMIGRATION\tSTATE\tAPPLIED AT")
	for _, s := range st {
		applied := "-"
		if s.State == pgoose.StateApplied {
			applied = s.AppliedAt.Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, names[s.Source.Version], s.State, applied)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch v, p := version(st), pending(st); {
	case v == 0:
		fmt.Fprintf(c.out, "not initialised: %d migration(s) pending; run es-migrate init\n", p)
	case p > 0:
		fmt.Fprintf(c.out, "version %d; %d migration(s) pending: run es-migrate migrate\n", v, p)
	default:
		fmt.Fprintf(c.out, "version %d; up to date\n", v)
	}
	return nil
}

func cmdReset(ctx context.Context, c *command) error {
	schema := c.opts.schema
	db, dbName, err := c.openConfirmed(ctx, fmt.Sprintf("this deletes every event, stream, snapshot and subscription in schema %q", schema))
	if err != nil {
		return err
	}
	defer db.Close()
	var hasStore bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable(schema)).Scan(&hasStore); err != nil {
		return fmt.Errorf("look up schema %q in database %q: %w", schema, dbName, err)
	}
	if !hasStore {
		return fmt.Errorf("schema %q in database %q holds no event store: nothing to reset (run es-migrate init)", schema, dbName)
	}
	tables := ""
	for i, t := range resetTables {
		if i > 0 {
			tables += ", "
		}
		tables += sqltmpl.Marker + t
	}
	// TRUNCATE does not fire the DELETE triggers that guard the stored events, and all_counter is
	// not guarded; one transaction leaves either everything or nothing reset.
	stmts := []string{
		"TRUNCATE " + tables + " RESTART IDENTITY",
		"UPDATE " + sqltmpl.Marker + "all_counter SET last_position = 0 WHERE id = 1",
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reset schema %q in database %q: %w", schema, dbName, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, sqltmpl.Apply(q, schema)); err != nil {
			return fmt.Errorf("reset schema %q in database %q: %w", schema, dbName, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reset schema %q in database %q: %w", schema, dbName, err)
	}
	fmt.Fprintf(c.out, "reset schema %q in database %q: all events, streams, links, snapshots and subscriptions deleted; $all is back at position 0\n", schema, dbName)
	return nil
}

// versionTable returns the quoted name of the migrations table of schema, for to_regclass.
func versionTable(schema string) string {
	return pgident.QuoteQualified(schema, goose.VersionTable)
}

// schemaStatus returns each migration's state in schema. It changes nothing: on a schema without
// the migrations table (goose.Status would create it) every migration is pending.
func schemaStatus(ctx context.Context, db *sql.DB, schema string) ([]*pgoose.MigrationStatus, error) {
	var initialised bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable(schema)).Scan(&initialised); err != nil {
		return nil, fmt.Errorf("look up schema %q: %w", schema, err)
	}
	if initialised {
		return goose.Status(ctx, db, schema)
	}
	ms, err := goose.Migrations()
	if err != nil {
		return nil, err
	}
	out := make([]*pgoose.MigrationStatus, len(ms))
	for i, m := range ms {
		out[i] = &pgoose.MigrationStatus{
			Source: &pgoose.Source{Type: pgoose.TypeGo, Version: m.Version},
			State:  pgoose.StatePending,
		}
	}
	return out, nil
}

// version returns the highest applied version, 0 if none.
func version(st []*pgoose.MigrationStatus) int64 {
	var v int64
	for _, s := range st {
		if s.State == pgoose.StateApplied && s.Source.Version > v {
			v = s.Source.Version
		}
	}
	return v
}

func pending(st []*pgoose.MigrationStatus) int {
	n := 0
	for _, s := range st {
		if s.State == pgoose.StatePending {
			n++
		}
	}
	return n
}

func lastVersion(res []*pgoose.MigrationResult) int64 {
	var v int64
	for _, r := range res {
		if r.Error == nil && r.Source.Version > v {
			v = r.Source.Version
		}
	}
	return v
}

// migrationNames maps versions to file names.
func migrationNames() (map[int64]string, error) {
	ms, err := goose.Migrations()
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(ms))
	for _, m := range ms {
		names[m.Version] = m.Name
	}
	return names, nil
}

// printApplied prints the migrations that were applied.
func printApplied(w io.Writer, res []*pgoose.MigrationResult) {
	names, _ := migrationNames()
	for _, r := range res {
		if r.Error != nil {
			continue
		}
		name := names[r.Source.Version]
		if name == "" {
			name = fmt.Sprintf("version %d", r.Source.Version)
		}
		fmt.Fprintf(w, "applied %s (%s)\n", name, r.Duration.Round(100*time.Microsecond))
	}
}
