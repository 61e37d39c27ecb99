package migratecli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	pgoose "github.com/pressly/goose/v3"

	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// command is one run of a subcommand.
type command struct {
	opts   options
	conn   *connString
	getenv func(string) string
	out    io.Writer
}

var commands = map[string]func(context.Context, *command) error{
	"create":  cmdCreate,
	"init":    cmdInit,
	"migrate": cmdMigrate,
	"status":  cmdStatus,
	"reset":   cmdReset,
	"drop":    cmdDrop,
}

// maintenanceDatabases are where create and drop connect to; they are never dropped.
var maintenanceDatabases = []string{"postgres", "template1"}

// resetTables are the event store's data tables, emptied by reset. all_counter is set back to 0
// instead, and the migrations table is kept.
var resetTables = []string{"events", "streams", "links", "all_events", "pending", "snapshots", "subscriptions"}

// SQLSTATE codes.
const (
	invalidCatalogName = "3D000" // the database does not exist
	duplicateDatabase  = "42P04"
)

func sqlState(err error) string {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}

// open connects to the database of conn and checks that it answers.
func (c *command) open(ctx context.Context, conn *connString) (*sql.DB, error) {
	db, err := sql.Open(c.opts.driver, conn.String())
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// databaseName returns the name of the database create and drop work on: the connection
// string's, else $PGDATABASE, which the drivers fall back to as well.
func (c *command) databaseName() (string, error) {
	name := c.conn.get("dbname")
	if name == "" {
		name = c.getenv("PGDATABASE")
	}
	if name == "" {
		return "", usagef("no database name: put it in --database-url (or DATABASE_URL) or set PGDATABASE")
	}
	if err := validateDatabase(name); err != nil {
		return "", usageError{err.Error()}
	}
	return name, nil
}

// openMaintenance connects to the server's maintenance database: postgres, else template1.
func (c *command) openMaintenance(ctx context.Context) (*sql.DB, error) {
	var errs []error
	for _, name := range maintenanceDatabases {
		db, err := c.open(ctx, c.conn.withDatabase(name))
		if err == nil {
			db.SetMaxOpenConns(1)
			return db, nil
		}
		errs = append(errs, fmt.Errorf("connect to maintenance database %q: %w", name, err))
		if sqlState(err) != invalidCatalogName {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// openTarget connects to the database of the connection string and returns its name.
func (c *command) openTarget(ctx context.Context) (*sql.DB, string, error) {
	db, err := c.open(ctx, c.conn)
	if err != nil {
		if name := c.conn.get("dbname"); name != "" {
			return nil, "", fmt.Errorf("connect to database %q: %w", name, err)
		}
		return nil, "", fmt.Errorf("connect to database: %w", err)
	}
	var name string
	if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&name); err != nil {
		_ = db.Close()
		return nil, "", fmt.Errorf("connect to database: %w", err)
	}
	return db, name, nil
}

func cmdCreate(ctx context.Context, c *command) error {
	name, err := c.databaseName()
	if err != nil {
		return err
	}
	// Connecting to the database itself first needs no rights on the maintenance database.
	db, err := c.open(ctx, c.conn.withDatabase(name))
	if err == nil {
		_ = db.Close()
		fmt.Fprintf(c.out, "database %q already exists\n", name)
		return nil
	}
	if sqlState(err) != invalidCatalogName {
		return fmt.Errorf("connect to database %q: %w", name, err)
	}
	maint, err := c.openMaintenance(ctx)
	if err != nil {
		return err
	}
	defer maint.Close()
	if _, err := maint.ExecContext(ctx, "CREATE DATABASE "+sqltmpl.QuoteIdent(name)); err != nil {
		if sqlState(err) == duplicateDatabase { // created meanwhile by someone else
			fmt.Fprintf(c.out, "database %q already exists\n", name)
			return nil
		}
		return fmt.Errorf("create database %q: %w", name, err)
	}
	fmt.Fprintf(c.out, "created database %q\n", name)
	return nil
}

func cmdDrop(ctx context.Context, c *command) error {
	if c.opts.schema != "public" {
		return dropSchema(ctx, c)
	}
	name, err := c.databaseName()
	if err != nil {
		return err
	}
	if slices.Contains(maintenanceDatabases, name) || name == "template0" {
		return usagef("refusing to drop the maintenance database %q", name)
	}
	if !c.opts.force {
		return usagef("this drops database %q with all its data: add --force to confirm", name)
	}
	maint, err := c.openMaintenance(ctx)
	if err != nil {
		return err
	}
	defer maint.Close()
	var exists bool
	err = maint.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		_, err = maint.ExecContext(ctx, "DROP DATABASE "+sqltmpl.QuoteIdent(name))
		if sqlState(err) == invalidCatalogName { // dropped meanwhile by someone else
			exists, err = false, nil
		}
		if err != nil {
			return fmt.Errorf("drop database %q: %w", name, err)
		}
	}
	if !exists {
		fmt.Fprintf(c.out, "database %q does not exist\n", name)
		return nil
	}
	fmt.Fprintf(c.out, "dropped database %q\n", name)
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

func dropSchema(ctx context.Context, c *command) error {
	schema := c.opts.schema
	db, dbName, err := c.openConfirmed(ctx, fmt.Sprintf("this drops schema %q with everything in it", schema))
	if err != nil {
		return err
	}
	defer db.Close()
	var exists, hasStore bool
	var relations int
	err = db.QueryRowContext(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
		       to_regclass($2) IS NOT NULL,
		       (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1)`,
		schema, versionTable(schema)).Scan(&exists, &hasStore, &relations)
	if err != nil {
		return fmt.Errorf("look up schema %q in database %q: %w", schema, dbName, err)
	}
	if !exists {
		fmt.Fprintf(c.out, "schema %q does not exist in database %q\n", schema, dbName)
		return nil
	}
	// An empty schema is fine to drop (an init that failed early leaves one); anything else must
	// be an event store, so that a mistyped --schema cannot take an application's tables along.
	if !hasStore && relations > 0 {
		return fmt.Errorf("schema %q in database %q holds no event store (no %s table): not dropping it",
			schema, dbName, goose.VersionTable)
	}
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+sqltmpl.QuoteIdent(schema)+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %q in database %q: %w", schema, dbName, err)
	}
	fmt.Fprintf(c.out, "dropped schema %q in database %q\n", schema, dbName)
	return nil
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
	return sqltmpl.QuoteIdent(schema) + "." + sqltmpl.QuoteIdent(goose.VersionTable)
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
