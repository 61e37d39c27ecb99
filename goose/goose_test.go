package goose_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/matryer/is"
	pgoose "github.com/pressly/goose/v3"

	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgident"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

func TestMain(m *testing.M) { estest.Main(m) }

// eventStoreTables are the tables the migrations create, besides goose.VersionTable.
var eventStoreTables = []string{
	"all_counter", "all_events", "deletions", "events", "links", "parked_events", "pending", "settings", "snapshots", "streams", "subscription_members", "subscriptions",
}

// newSchemaName returns a fresh schema name, not created yet, dropped when the test ends.
func newSchemaName(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "gt_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// tables returns the tables in schema, sorted.
func tables(t *testing.T, db *sql.DB, schema string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(),
		"SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename", schema)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantTables() []string {
	out := append([]string{goose.VersionTable}, eventStoreTables...)
	slices.Sort(out) // as pg_tables is ordered
	return out
}

// appliedVersions returns the versions recorded as applied in schema, version 0 excluded.
func appliedVersions(t *testing.T, db *sql.DB, schema string) []int64 {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT version_id FROM "+schema+"."+goose.VersionTable+
		" WHERE version_id > 0 AND is_applied ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func migrationVersions(t *testing.T) []int64 {
	t.Helper()
	ms, err := goose.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, m := range ms {
		out = append(out, m.Version)
	}
	return out
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ms, err := goose.Migrations()
	is.NoErr(err)
	is.True(len(ms) > 0)
	is.Equal(ms[0].Name, "00001_init.sql")
	is.Equal(ms[0].Version, int64(1))
	for i, m := range ms {
		if i > 0 {
			is.True(m.Version > ms[i-1].Version) // in version order, no duplicates
		}
		is.True(strings.HasSuffix(m.Name, ".sql"))
		is.True(strings.TrimSpace(m.Up) != "")             // Up is not empty
		is.True(strings.Contains(m.Up, sqltmpl.Marker))    // tables are placed by the schema marker
		is.True(!strings.Contains(m.Up, "-- +goose Down")) // Down is split off
	}
	is.True(strings.Contains(ms[0].Down, "DROP TABLE"))
}

func TestUpIdempotent(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	schema := newSchemaName(t, db)

	res, err := goose.Up(ctx, db, schema)
	is.NoErr(err)
	is.Equal(len(res), len(migrationVersions(t))) // every migration applied on a new schema
	for _, r := range res {
		is.NoErr(r.Error)
		is.Equal(r.Direction, "up")
	}

	for range 2 {
		res, err = goose.Up(ctx, db, schema)
		is.NoErr(err)
		is.Equal(len(res), 0) // nothing left to apply
	}
	is.Equal(tables(t, db, schema), wantTables())
	is.Equal(appliedVersions(t, db, schema), migrationVersions(t))

	st, err := goose.Status(ctx, db, schema)
	is.NoErr(err)
	is.Equal(len(st), len(migrationVersions(t)))
	for _, s := range st {
		is.Equal(s.State, pgoose.StateApplied)
		is.True(!s.AppliedAt.IsZero())
	}

	// The all_counter row is inserted once, not once per run.
	var counters int
	is.NoErr(db.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".all_counter").Scan(&counters))
	is.Equal(counters, 1)
}

func TestUpConcurrent(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	schema := newSchemaName(t, db)

	const n = 6
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		applied int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			res, err := goose.Up(ctx, db, schema)
			mu.Lock()
			defer mu.Unlock()
			errs = append(errs, err)
			applied += len(res)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		is.NoErr(err) // every concurrent run succeeds
	}
	is.Equal(applied, len(migrationVersions(t)))                   // each migration ran exactly once
	is.Equal(appliedVersions(t, db, schema), migrationVersions(t)) // and was recorded once
	is.Equal(tables(t, db, schema), wantTables())
}

func TestInvalidSchemaNames(t *testing.T) {
	t.Parallel()
	// Never connected to: the names must be refused before any SQL runs.
	db, err := sql.Open("postgres", "host=/nonexistent port=1 sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // and anything that tried would fail at once

	for _, name := range []string{
		"", "Upper", "with-dash", `quo"te`, "sp ace", "1digit", "dot.ted", "semi;colon",
		strings.Repeat("a", 64),
	} {
		t.Run(name, func(t *testing.T) {
			is := is.New(t)
			_, err := goose.Up(ctx, db, name)
			is.True(errors.Is(err, pgident.ErrInvalidSchema)) // Up
			_, err = goose.Status(ctx, db, name)
			is.True(errors.Is(err, pgident.ErrInvalidSchema)) // Status
			_, err = goose.NewProvider(db, name)
			is.True(errors.Is(err, pgident.ErrInvalidSchema)) // NewProvider
			err = goose.EnsureSchema(ctx, db, name)
			is.True(errors.Is(err, pgident.ErrInvalidSchema)) // EnsureSchema
		})
	}

	is := is.New(t)
	_, err = goose.NewProvider(db, strings.Repeat("a", 63)) // 63 bytes is Postgres' limit, and fine
	is.NoErr(err)
	_, err = goose.NewProvider(nil, "public")
	is.True(err != nil) // nil *sql.DB
}

func TestSchemasIsolated(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	a, b := newSchemaName(t, db), newSchemaName(t, db)

	_, err := goose.Up(ctx, db, a)
	is.NoErr(err)
	// b is not touched by a's migration.
	is.Equal(len(tables(t, db, b)), 0)

	_, err = goose.Up(ctx, db, b)
	is.NoErr(err)
	is.Equal(tables(t, db, a), wantTables())
	is.Equal(tables(t, db, b), wantTables())

	// Rows written in a are not seen in b.
	_, err = db.ExecContext(ctx, "INSERT INTO "+a+".streams (stream_name) VALUES ('only-in-a')")
	is.NoErr(err)
	count := func(schema string) int {
		var n int
		is.NoErr(db.QueryRowContext(ctx, "SELECT count(*) FROM "+schema+".streams").Scan(&n))
		return n
	}
	is.Equal(count(a), 1)
	is.Equal(count(b), 0)

	// The triggers and functions are the schema's own: a's refuse deletes in a only.
	_, err = db.ExecContext(ctx, "DELETE FROM "+a+".streams")
	is.True(err != nil) // guarded by a's trigger

	// Each schema records its own versions, and dropping one leaves the other intact.
	is.Equal(appliedVersions(t, db, a), migrationVersions(t))
	is.Equal(appliedVersions(t, db, b), migrationVersions(t))
	_, err = db.ExecContext(ctx, "DROP SCHEMA "+a+" CASCADE")
	is.NoErr(err)
	is.Equal(tables(t, db, b), wantTables())
	res, err := goose.Up(ctx, db, b)
	is.NoErr(err)
	is.Equal(len(res), 0)

	// The two schemas lock separately.
	is.True(goose.LockID(a) != goose.LockID(b))
}
