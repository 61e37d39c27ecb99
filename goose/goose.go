// Package goose runs the event store's embedded migrations with goose's Provider API, into any
// Postgres schema, with no global state.
//
// The migration files in schema/ are the one definition of the tables. Each is registered as a Go
// migration that runs the file's Up section, placed into the target schema, in one transaction.
// Runs are safe when several processes migrate the same schema at once: goose's session locker
// holds a Postgres advisory lock, one per schema, for the whole run. Versions are recorded in the
// schema's own eventstore_migrations table, apart from any goose table of the application.
package goose

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	pgoose "github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"

	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/pgident"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
	"github.com/go-eventstore/eventstore/schema"
)

// VersionTable is the table, inside the event store's schema, that records applied migrations.
const VersionTable = "eventstore_migrations"

// Migration is one embedded migration file, split into its Up and Down sections.
type Migration struct {
	Version int64
	Name    string // the file name
	Up      string // SQL, still holding /* TEMPLATE: schema */ markers
	Down    string
}

// Migrations returns the embedded migrations, in version order.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(schema.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m, err := parseMigration(e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func parseMigration(name string) (Migration, error) {
	prefix, _, ok := strings.Cut(name, "_")
	version, err := strconv.ParseInt(prefix, 10, 64)
	if !ok || err != nil || version <= 0 {
		return Migration{}, fmt.Errorf("migration %s: name must start with a positive version number and an underscore", name)
	}
	raw, err := fs.ReadFile(schema.FS, name)
	if err != nil {
		return Migration{}, fmt.Errorf("read migration %s: %w", name, err)
	}
	text := string(raw)
	const upMark, downMark = "-- +goose Up", "-- +goose Down"
	upAt := strings.Index(text, upMark)
	if upAt < 0 {
		return Migration{}, fmt.Errorf("migration %s: no %q annotation", name, upMark)
	}
	up, down, _ := strings.Cut(text[upAt+len(upMark):], downMark)
	return Migration{Version: version, Name: name, Up: up, Down: down}, nil
}

// NewProvider returns a goose Provider for the event store's migrations in schema. The schema must
// be a plain identifier; it is created by Up if missing. Extra options are passed to goose. A
// schema it initialises stores data as Bytea (see NewProviderWithOptions).
func NewProvider(db *sql.DB, schemaName string, opts ...pgoose.ProviderOption) (*pgoose.Provider, error) {
	return newProvider(db, schemaName, Bytea, opts...)
}

func newProvider(db *sql.DB, schemaName string, dataType DataType, opts ...pgoose.ProviderOption) (*pgoose.Provider, error) {
	if db == nil {
		return nil, errors.New("goose: nil *sql.DB")
	}
	if err := pgident.ValidateSchema(schemaName); err != nil {
		return nil, fmt.Errorf("goose: %w", err)
	}
	migrations, err := Migrations()
	if err != nil {
		return nil, fmt.Errorf("goose: %w", err)
	}
	var gms []*pgoose.Migration
	for _, m := range migrations {
		up, down := sqltmpl.Apply(applyDataType(m.Up, dataType), schemaName), sqltmpl.Apply(m.Down, schemaName)
		gms = append(gms, pgoose.NewGoMigration(m.Version,
			&pgoose.GoFunc{RunTx: execFunc(m.Name, up)},
			&pgoose.GoFunc{RunTx: execFunc(m.Name, down)},
		))
	}
	// Validated names are the same quoted or not, and goose's table-exists check wants them bare.
	store, err := database.NewStore(database.DialectPostgres, schemaName+"."+VersionTable)
	if err != nil {
		return nil, fmt.Errorf("goose: %w", err)
	}
	// Waiters check the lock every second (goose defaults to 5s), for up to 5 minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(LockID(schemaName)), lock.WithLockTimeout(1, 300))
	if err != nil {
		return nil, fmt.Errorf("goose: %w", err)
	}
	all := append([]pgoose.ProviderOption{
		pgoose.WithStore(store),
		pgoose.WithGoMigrations(gms...),
		pgoose.WithDisableGlobalRegistry(true),
		pgoose.WithSessionLocker(locker),
	}, opts...)
	p, err := pgoose.NewProvider("", db, nil, all...)
	if err != nil {
		return nil, fmt.Errorf("goose: %w", err)
	}
	return p, nil
}

func execFunc(name, query string) func(context.Context, *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		if strings.TrimSpace(query) == "" {
			return nil
		}
		// One multi-statement Exec without arguments: both lib/pq and pgx send it with the simple
		// query protocol, so plpgsql bodies and several statements pass as written.
		if _, err := tx.ExecContext(ctx, query); err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
		return nil
	}
}

// LockID is the advisory lock key that serializes migration runs on one schema.
func LockID(schemaName string) int64 {
	h := fnv.New64a()
	h.Write([]byte("eventstore migrate " + schemaName))
	return int64(h.Sum64() >> 1)
}

// EnsureSchema creates the schema if it does not exist. Concurrent creators are tolerated.
func EnsureSchema(ctx context.Context, db *sql.DB, schemaName string) error {
	if err := pgident.ValidateSchema(schemaName); err != nil {
		return fmt.Errorf("goose: %w", err)
	}
	q := "CREATE SCHEMA IF NOT EXISTS " + pgident.Quote(schemaName)
	var err error
	for range 3 {
		// Two sessions creating the same schema at once can both pass IF NOT EXISTS; the loser gets
		// a unique violation and the retry sees the schema.
		if _, err = db.ExecContext(ctx, q); err == nil || !isDuplicate(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("goose: create schema %s: %w", schemaName, err)
	}
	return nil
}

func isDuplicate(err error) bool {
	return pgerr.Is(err, pgerr.UniqueViolation, pgerr.DuplicateSchema)
}

// Up creates the schema if needed and applies every pending migration. It is idempotent.
func Up(ctx context.Context, db *sql.DB, schemaName string) ([]*pgoose.MigrationResult, error) {
	if err := EnsureSchema(ctx, db, schemaName); err != nil {
		return nil, err
	}
	p, err := NewProvider(db, schemaName)
	if err != nil {
		return nil, err
	}
	res, err := p.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("goose: migrate schema %s: %w", schemaName, err)
	}
	return res, nil
}

// Status reports each migration and whether it is applied in schema.
func Status(ctx context.Context, db *sql.DB, schemaName string) ([]*pgoose.MigrationStatus, error) {
	p, err := NewProvider(db, schemaName)
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("goose: status of schema %s: %w", schemaName, err)
	}
	return st, nil
}

// Down rolls back every applied migration of schema, newest first, under the same advisory lock
// as Up, and returns what it rolled back. The down migrations drop exactly the objects the up
// migrations created, with plain DROP (never CASCADE): an object of the application that depends
// on one of them (a foreign key to the events table, a view) makes Down fail and roll back that
// migration, and nothing of the application's is dropped. The migrations table is left in place,
// empty; DropVersionTable removes it.
func Down(ctx context.Context, db *sql.DB, schemaName string) ([]*pgoose.MigrationResult, error) {
	p, err := NewProvider(db, schemaName)
	if err != nil {
		return nil, err
	}
	res, err := p.DownTo(ctx, 0)
	if err != nil {
		return res, fmt.Errorf("goose: roll back schema %s: %w", schemaName, err)
	}
	return res, nil
}

// DropVersionTable drops schema's migrations table, if there is one.
func DropVersionTable(ctx context.Context, db *sql.DB, schemaName string) error {
	if err := pgident.ValidateSchema(schemaName); err != nil {
		return fmt.Errorf("goose: %w", err)
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+pgident.QuoteQualified(schemaName, VersionTable)); err != nil {
		return fmt.Errorf("goose: drop %s.%s: %w", schemaName, VersionTable, err)
	}
	return nil
}

// Version returns the schema's migration version (the highest applied, 0 when the schema holds no
// event store) and the version of the newest embedded migration, what Up migrates to. It reads
// one table and takes no lock, so a Store can check it at start.
func Version(ctx context.Context, db sqltmpl.DBTX, schemaName string) (current, latest int64, err error) {
	if err := pgident.ValidateSchema(schemaName); err != nil {
		return 0, 0, fmt.Errorf("goose: %w", err)
	}
	ms, err := Migrations()
	if err != nil {
		return 0, 0, fmt.Errorf("goose: %w", err)
	}
	if len(ms) > 0 {
		latest = ms[len(ms)-1].Version
	}
	// No query parameters: the simple query protocol, one round trip with either driver, also
	// through PgBouncer in transaction mode. The names are validated plain identifiers.
	table := pgident.QuoteQualified(schemaName, VersionTable)
	var exists bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass('"+table+"') IS NOT NULL").Scan(&exists); err != nil {
		return 0, latest, fmt.Errorf("goose: read the migration version of schema %s: %w", schemaName, err)
	}
	if !exists {
		return 0, latest, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, "SELECT max(version_id) FROM "+table).Scan(&v); err != nil {
		return 0, latest, fmt.Errorf("goose: read the migration version of schema %s: %w", schemaName, err)
	}
	return v.Int64, latest, nil
}

// Objects are the names of the tables and functions the embedded migrations create in a schema,
// besides VersionTable. Indexes, sequences, triggers and row types belong to these tables.
type Objects struct {
	Tables, Functions []string
}

var createdObject = regexp.MustCompile(`(?i)\bCREATE\s+(?:OR\s+REPLACE\s+)?(TABLE|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?` +
	regexp.QuoteMeta(sqltmpl.Marker) + `([a-z_][a-z0-9_]*)`)

// StoreObjects returns the objects the embedded migrations create, read from their Up sections
// (every object is written there as /* TEMPLATE: schema */name).
func StoreObjects() (Objects, error) {
	ms, err := Migrations()
	if err != nil {
		return Objects{}, fmt.Errorf("goose: %w", err)
	}
	var o Objects
	for _, m := range ms {
		for _, c := range createdObject.FindAllStringSubmatch(m.Up, -1) {
			if strings.EqualFold(c[1], "TABLE") {
				o.Tables = appendNew(o.Tables, c[2])
			} else {
				o.Functions = appendNew(o.Functions, c[2])
			}
		}
	}
	return o, nil
}

func appendNew(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
