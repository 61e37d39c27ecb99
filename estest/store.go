// Package estest gives tests a real PostgreSQL and a fresh, migrated event store per test.
//
// When ES_TEST_DATABASE_URL is unset, a throwaway cluster is started from the installed
// PostgreSQL binaries the first time a test needs it, shared by the package's
// tests, and removed when Main returns. Each test gets its own schema, dropped after the test.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { estest.Main(m) }
//
// Main runs the package's tests once per database/sql driver, lib/pq ("postgres") and pgx's
// stdlib ("pgx"); ES_TEST_DRIVER=postgres or ES_TEST_DRIVER=pgx runs one only.
// ES_TEST_DATA_TYPE=jsonb creates the schemas with data stored as jsonb (see goose.Options).
package estest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "github.com/lib/pq"              // registers driver "postgres"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
	"github.com/go-eventstore/eventstore/internal/pgident"
	"github.com/go-eventstore/eventstore/internal/pgtest"
)

// Drivers are the database/sql drivers the suite runs under.
var Drivers = []string{"postgres", "pgx"}

var (
	mu       sync.Mutex
	driver   = envOr("ES_TEST_DRIVER", "postgres")
	server   *pgtest.Postgres
	dsn      string
	dbs      = map[string]*sql.DB{}
	startErr error

	bouncer    *pgtest.PgBouncer
	bouncerErr error
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Main runs m once per driver (or once, for ES_TEST_DRIVER), then closes the pools, stops the
// throwaway server and exits with the tests' status.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	defer shutdown()
	drivers := Drivers
	if d := os.Getenv("ES_TEST_DRIVER"); d != "" {
		drivers = []string{d}
	}
	code := 0
	for _, d := range drivers {
		mu.Lock()
		driver = d
		mu.Unlock()
		if c := m.Run(); c != 0 {
			slog.Error("estest: tests failed", "driver", d)
			code = c
		}
	}
	return code
}

func shutdown() {
	mu.Lock()
	defer mu.Unlock()
	for _, db := range dbs {
		_ = db.Close()
	}
	dbs = map[string]*sql.DB{}
	if bouncer != nil {
		_ = bouncer.Stop()
		bouncer = nil
	}
	if server != nil {
		_ = server.Stop()
		server = nil
	}
}

// Driver returns the database/sql driver name of the current run.
func Driver() string {
	mu.Lock()
	defer mu.Unlock()
	return driver
}

// DSN returns the connection string of the test database: ES_TEST_DATABASE_URL, else the shared
// throwaway server's, starting it on first use. It fails the test if there is no database.
func DSN(tb testing.TB) string {
	tb.Helper()
	url, err := SharedDSN()
	if err != nil {
		tb.Fatalf("estest: no test database: %v", err)
	}
	return url
}

// SharedDSN is DSN for code that has no test at hand, such as Example functions.
func SharedDSN() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if dsn == "" && startErr == nil {
		if url := os.Getenv("ES_TEST_DATABASE_URL"); url != "" {
			dsn = url
		} else {
			server, startErr = pgtest.StartPostgres(context.Background(), nil)
			if startErr == nil {
				dsn = server.SocketDSN("postgres")
				pgtest.SetShared(server)
			}
		}
	}
	return dsn, startErr
}

// PgBouncerDSN returns a URL connecting through a PgBouncer in transaction mode to the test
// database: a PgBouncer started in front of the test server on first use,
// shared by the package's tests and stopped when Main returns. It fails the test if PgBouncer
// cannot start, saying how to install it.
func PgBouncerDSN(tb testing.TB) string {
	tb.Helper()
	target := DSN(tb)
	mu.Lock()
	defer mu.Unlock()
	if bouncer == nil && bouncerErr == nil {
		bouncer, bouncerErr = pgtest.StartPgBouncer(context.Background(), target, nil)
	}
	if bouncerErr != nil {
		tb.Fatalf("estest: no PgBouncer: %v", bouncerErr)
	}
	database := "postgres"
	if cfg, err := pgdsn.Parse(target); err == nil && cfg.Database != "" {
		database = cfg.Database
	}
	return bouncer.DSN(database)
}

// DB returns the shared *sql.DB of the current driver; it stays open until Main returns.
func DB(tb testing.TB) *sql.DB {
	tb.Helper()
	url, d := DSN(tb), Driver()
	mu.Lock()
	defer mu.Unlock()
	if db, ok := dbs[d]; ok {
		return db
	}
	db, err := sql.Open(d, url)
	if err != nil {
		tb.Fatalf("estest: open %s: %v", d, err)
	}
	db.SetMaxOpenConns(100)
	db.SetMaxIdleConns(100)
	dbs[d] = db
	return db
}

// NewSchemaName returns the name of a schema that does not exist yet, dropped (with everything
// in it) when the test ends if something created it.
func NewSchemaName(tb testing.TB) string {
	tb.Helper()
	db := DB(tb)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	tb.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+pgident.Quote(name)+" CASCADE"); err != nil {
			tb.Logf("estest: drop schema %s: %v", name, err)
		}
	})
	return name
}

// NewSchema creates and migrates a fresh schema, dropped when the test ends.
func NewSchema(tb testing.TB) string {
	tb.Helper()
	name := NewSchemaName(tb)
	// ES_TEST_DATA_TYPE=jsonb runs the tests against stores that keep data as jsonb.
	opts := goose.Options{DataType: goose.DataType(os.Getenv("ES_TEST_DATA_TYPE"))}
	if _, err := goose.UpWithOptions(context.WithoutCancel(tb.Context()), DB(tb), name, opts); err != nil {
		tb.Fatalf("estest: migrate schema %s: %v", name, err)
	}
	return name
}

// NewStore returns a Store on a fresh schema (cfg.Schema is ignored), closed when the test ends.
// cfg may be nil; ListenDSN defaults to the test database.
func NewStore(tb testing.TB, cfg *es.Config) *es.Store {
	tb.Helper()
	var c es.Config
	if cfg != nil {
		c = *cfg
	}
	c.Schema = NewSchema(tb)
	if c.ListenDSN == "" {
		c.ListenDSN = DSN(tb)
	}
	store, err := es.New(DB(tb), &c)
	if err != nil {
		tb.Fatalf("estest: new store: %v", err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	return store
}
