package migratecli

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
	"github.com/go-eventstore/eventstore/internal/pgident"
	"github.com/go-eventstore/eventstore/internal/pgtest"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

func TestMain(m *testing.M) { estest.Main(m) }

// latestVersion is the version of the last embedded migration, what init and migrate reach.
var latestVersion = func() string {
	ms, err := goose.Migrations()
	if err != nil || len(ms) == 0 {
		panic(fmt.Sprintf("embedded migrations: %v", err))
	}
	return fmt.Sprint(ms[len(ms)-1].Version)
}()

// result is what one run of the command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs the command in-process under the current test driver.
func cli(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--driver", estest.Driver()}, args...)
	code := Run(t.Context(), args, &stdout, &stderr)
	r := result{code, stdout.String(), stderr.String()}
	t.Logf("es-migrate %s\n%s", strings.Join(args, " "), r)
	return r
}

// expect checks the exit code and that stdout (code 0) or stderr (else) holds every want.
func expect(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\n%s", r.code, code, r)
	}
	out := r.stdout
	if code != ExitOK {
		out = r.stderr
		if n := strings.Count(out, "\n"); n != 1 {
			t.Errorf("stderr has %d lines, want one", n)
		}
	} else if r.stderr != "" {
		t.Errorf("unexpected stderr: %s", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output does not contain %q\n%s", w, r)
		}
	}
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// testDSN returns the test server's connection string for database, which need not exist.
func testDSN(t *testing.T, database string) string {
	t.Helper()
	return pgdsn.WithDatabase(estest.DSN(t), database)
}

// newDatabaseName returns a database name that does not exist yet; it is dropped after the test.
func newDatabaseName(t *testing.T) string {
	t.Helper()
	name := randomName("mc_")
	db := estest.DB(t)
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return name
}

// newSchemaName returns a schema name in the test database that does not exist yet; it is dropped
// after the test.
func newSchemaName(t *testing.T) string {
	t.Helper()
	name := randomName("mc_")
	db := estest.DB(t)
	t.Cleanup(func() {
		if _, err := db.ExecContext(context.Background(), "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return name
}

func exists(t *testing.T, db *sql.DB, query string, args ...any) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRowContext(t.Context(), query, args...).Scan(&ok); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return ok
}

func schemaExists(t *testing.T, db *sql.DB, schema string) bool {
	t.Helper()
	return exists(t, db, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema)
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	return exists(t, estest.DB(t), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name)
}

// fill writes a row into each of the event store's tables in schema and moves $all to 1.
func fill(t *testing.T, db *sql.DB, schema string) {
	t.Helper()
	stmts := []string{
		`INSERT INTO /* TEMPLATE: schema */streams (stream_name, stream_version) VALUES ('s-1', 1), ('s-2', 1)`,
		`INSERT INTO /* TEMPLATE: schema */events (event_id, stream_pk, stream_version, event_type, data)
			SELECT gen_random_uuid(), id, 1, 'happened', '\x7b7d' FROM /* TEMPLATE: schema */streams WHERE stream_name = 's-1'`,
		`INSERT INTO /* TEMPLATE: schema */links (stream_pk, link_version, event_id)
			SELECT s.id, 1, e.event_id FROM /* TEMPLATE: schema */streams s, /* TEMPLATE: schema */events e WHERE s.stream_name = 's-2'`,
		`INSERT INTO /* TEMPLATE: schema */all_events (position, stream_pk, stream_version)
			SELECT 1, stream_pk, stream_version FROM /* TEMPLATE: schema */events`,
		`UPDATE /* TEMPLATE: schema */all_counter SET last_position = 1`,
		`INSERT INTO /* TEMPLATE: schema */pending (stream_pk, first_version, last_version) VALUES (1, 1, 1)`,
		`INSERT INTO /* TEMPLATE: schema */snapshots (source_id, source_version, source_type, data) VALUES ('s-1', 1, 'T', '\x7b7d')`,
		`INSERT INTO /* TEMPLATE: schema */subscriptions (stream_name, subscription_name, last_seen) VALUES ('$all', 'sub', 1)`,
		`INSERT INTO /* TEMPLATE: schema */parked_events (subscription_id, position, event_id, stream_name, partition_key, error, attempts, status)
			SELECT id, 1, '00000000-0000-0000-0000-000000000001', 's-1', 's-1', 'boom', 5, 'parked' FROM /* TEMPLATE: schema */subscriptions`,
		`INSERT INTO /* TEMPLATE: schema */subscription_members (stream_name, subscription_name, holder, expires_at) VALUES ('$all', 'sub', 'h', now())`,
	}
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), sqltmpl.Apply(q, schema)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// rowCounts returns the number of rows in each reset table, and the $all counter.
func rowCounts(t *testing.T, db *sql.DB, schema string) (map[string]int, int64) {
	t.Helper()
	counts := map[string]int{}
	for _, table := range resetTables {
		var n int
		q := sqltmpl.Apply("SELECT count(*) FROM "+sqltmpl.Marker+table, schema)
		if err := db.QueryRowContext(t.Context(), q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		counts[table] = n
	}
	var last int64
	q := sqltmpl.Apply("SELECT last_position FROM "+sqltmpl.Marker+"all_counter", schema)
	if err := db.QueryRowContext(t.Context(), q).Scan(&last); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return counts, last
}

func TestCreateAndDropDatabase(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	name := newDatabaseName(t)
	dsn := testDSN(t, name)

	expect(t, cli(t, "--database-url", dsn, "create"), ExitOK, fmt.Sprintf("created database %q", name))
	is.True(databaseExists(t, name))
	expect(t, cli(t, "--database-url", dsn, "create"), ExitOK, fmt.Sprintf("database %q already exists", name))

	// The new database is usable.
	expect(t, cli(t, "--database-url", dsn, "init"), ExitOK, fmt.Sprintf(`in database %q`, name))

	expect(t, cli(t, "--database-url", dsn, "drop-database"), ExitUsage, "--force")
	is.True(databaseExists(t, name)) // refused without --force
	expect(t, cli(t, "drop-database", "--database-url", dsn, "--force"), ExitOK, fmt.Sprintf("dropped database %q", name))
	is.True(!databaseExists(t, name))
	expect(t, cli(t, "drop-database", "--database-url", dsn, "--force"), ExitOK, fmt.Sprintf("database %q does not exist", name))
}

func TestCreateDatabaseNameKeepsCase(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	name := "Mc_" + randomName("Case-")
	t.Cleanup(func() {
		_, _ = estest.DB(t).ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+pgident.Quote(name))
	})
	dsn := testDSN(t, name)
	expect(t, cli(t, "--database-url", dsn, "create"), ExitOK, "created database")
	is.True(databaseExists(t, name)) // quoted: case and hyphen kept
	expect(t, cli(t, "--database-url", dsn, "status"), ExitOK, "not initialised")
	expect(t, cli(t, "--database-url", dsn, "drop-database", "--force"), ExitOK, "dropped database")
}

func TestDatabaseNameRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{`bad"name`, "bad;name", "1abc", strings.Repeat("x", 64)} {
		expect(t, cli(t, "--database-url", testDSN(t, name), "create"), ExitUsage, "invalid database name")
		expect(t, cli(t, "--database-url", testDSN(t, name), "drop-database", "--force"), ExitUsage, "invalid database name")
	}
	for _, name := range []string{"postgres", "template0", "template1"} {
		expect(t, cli(t, "--database-url", testDSN(t, name), "drop-database", "--force"), ExitUsage, "maintenance database")
	}
	expect(t, cli(t, "--database-url", "postgres://127.0.0.1:1/", "create"), ExitUsage, "no database name")
}

func TestInitTwice(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	db := estest.DB(t)

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK,
		"applied 00001_init.sql", fmt.Sprintf("initialised schema %q", schema), "(version "+latestVersion+")")
	is.True(exists(t, db, "SELECT to_regclass($1) IS NOT NULL", schema+".events"))
	expect(t, cli(t, "init", "--database-url", dsn, "--schema", schema), ExitOK,
		fmt.Sprintf("schema %q", schema), "is already initialised (version "+latestVersion+")")
	r := cli(t, "init", "--database-url", dsn, "--schema", schema)
	is.True(!strings.Contains(r.stdout, "applied")) // nothing applied the second time
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "migrate"), ExitOK,
		"applied 00001_init.sql", fmt.Sprintf("migrated schema %q", schema), "to version "+latestVersion)
	r := cli(t, "--database-url", dsn, "--schema", schema, "migrate")
	expect(t, r, ExitOK, "is up to date (version "+latestVersion+")")
	is.True(!strings.Contains(r.stdout, "applied"))
	// init after migrate has nothing to do either.
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK, "already initialised")
}

func TestStatus(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	db := estest.DB(t)

	r := cli(t, "--database-url", dsn, "--schema", schema, "status")
	expect(t, r, ExitOK, "VERSION", "00001_init.sql", "pending", "not initialised")
	is.True(!schemaExists(t, db, schema)) // status changes nothing

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK)
	r = cli(t, "status", "--database-url", dsn, "--schema", schema)
	expect(t, r, ExitOK, fmt.Sprintf("schema %q", schema), "00001_init.sql", "applied", "version "+latestVersion+"; up to date")
	is.True(!strings.Contains(r.stdout, "pending"))
	var year int
	is.NoErr(db.QueryRowContext(t.Context(), "SELECT extract(year FROM now())::int").Scan(&year))
	is.True(strings.Contains(r.stdout, fmt.Sprintf("applied  %d-", year))) // the time applied

	// A schema that exists but holds no event store: every migration pending, nothing created.
	other := newSchemaName(t)
	_, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+other)
	is.NoErr(err)
	expect(t, cli(t, "--database-url", dsn, "--schema", other, "status"), ExitOK, "pending", "not initialised")
	is.True(!exists(t, db, "SELECT to_regclass($1) IS NOT NULL", other+".eventstore_migrations"))
}

func TestReset(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	db := estest.DB(t)

	// Nothing to reset in a schema without an event store.
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "reset", "--force"), ExitFailure, "holds no event store")

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK)
	fill(t, db, schema)
	counts, last := rowCounts(t, db, schema)
	for table, n := range counts {
		is.True(n > 0) // filled
		_ = table
	}
	is.Equal(last, int64(1))

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "reset"), ExitUsage, "--force")
	after, _ := rowCounts(t, db, schema)
	is.Equal(after, counts) // refused: nothing deleted

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "reset", "--force"), ExitOK,
		fmt.Sprintf("reset schema %q", schema), "position 0")
	counts, last = rowCounts(t, db, schema)
	for table, n := range counts {
		if n != 0 {
			t.Errorf("%s has %d rows after reset", table, n)
		}
	}
	is.Equal(last, int64(0))

	// Identities restart, and the schema is still migrated and guarded.
	var id int64
	q := sqltmpl.Apply("INSERT INTO /* TEMPLATE: schema */streams (stream_name) VALUES ('again') RETURNING id", schema)
	is.NoErr(db.QueryRowContext(t.Context(), q).Scan(&id))
	is.Equal(id, int64(1))
	_, err := db.ExecContext(t.Context(), sqltmpl.Apply("DELETE FROM /* TEMPLATE: schema */streams", schema))
	is.True(err != nil) // the delete guard is still there
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "migrate"), ExitOK, "up to date (version "+latestVersion+")")
}

func TestDropSchema(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	db := estest.DB(t)

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "drop"), ExitUsage, "--force")
	is.True(schemaExists(t, db, schema)) // refused without --force

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "drop", "--force"), ExitOK,
		"rolled back 00001_init.sql", fmt.Sprintf("dropped the event store in schema %q", schema),
		fmt.Sprintf("dropped schema %q, left empty", schema))
	is.True(!schemaExists(t, db, schema))
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "drop", "--force"), ExitOK, "does not exist")

	// A schema holding no event store is left as it is.
	app := newSchemaName(t)
	_, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+app+"; CREATE TABLE "+app+".orders (id int)")
	is.NoErr(err)
	expect(t, cli(t, "--database-url", dsn, "--schema", app, "drop", "--force"), ExitOK,
		"holds no event store", fmt.Sprintf("kept schema %q: it holds other objects", app))
	is.True(exists(t, db, "SELECT to_regclass($1) IS NOT NULL", app+".orders"))
}

// TestDropKeepsApplicationTables: drop removes the store's objects only, in public too, where the
// application's tables usually are; the database and the schemas stay.
func TestDropKeepsApplicationTables(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	name := newDatabaseName(t)
	dsn := testDSN(t, name)
	expect(t, cli(t, "--database-url", dsn, "create"), ExitOK)
	target := openDB(t, dsn)
	expect(t, cli(t, "--database-url", dsn, "init"), ExitOK) // public
	expect(t, cli(t, "--database-url", dsn, "--schema", "tenant_a", "init"), ExitOK)
	_, err := target.ExecContext(t.Context(), `CREATE TABLE public.orders (id int PRIMARY KEY);
		INSERT INTO public.orders VALUES (1);
		CREATE TABLE tenant_a.balances (account text PRIMARY KEY)`)
	is.NoErr(err)

	expect(t, cli(t, "--database-url", dsn, "drop", "--force"), ExitOK,
		`dropped the event store in schema "public"`)
	is.True(exists(t, target, "SELECT count(*) = 1 FROM public.orders")) // the application's data
	is.True(!exists(t, target, "SELECT to_regclass('public.events') IS NOT NULL"))
	is.True(!exists(t, target, "SELECT to_regclass('public.eventstore_migrations') IS NOT NULL"))
	is.True(!exists(t, target, "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname IN ('sequence_all', 'refuse_change') AND pronamespace = 'public'::regnamespace)"))
	is.True(databaseExists(t, name))

	expect(t, cli(t, "--database-url", dsn, "--schema", "tenant_a", "drop", "--force"), ExitOK,
		`kept schema "tenant_a": it holds other objects`)
	is.True(exists(t, target, "SELECT to_regclass('tenant_a.balances') IS NOT NULL"))

	// drop-database refuses a database holding anything but event stores.
	expect(t, cli(t, "--database-url", dsn, "--schema", "tenant_b", "init"), ExitOK)
	r := cli(t, "--database-url", dsn, "drop-database", "--force")
	expect(t, r, ExitFailure, "holds more than event stores", "table public.orders", "table tenant_a.balances")
	is.True(!strings.Contains(r.stderr, "tenant_b")) // the store's own objects are fine
	is.True(databaseExists(t, name))

	// Once only event stores (and empty schemas) are left, it drops it.
	_, err = target.ExecContext(t.Context(), "DROP TABLE public.orders, tenant_a.balances")
	is.NoErr(err)
	is.NoErr(target.Close())
	expect(t, cli(t, "--database-url", dsn, "drop-database", "--force"), ExitOK,
		fmt.Sprintf("dropped database %q, which held only event stores", name))
	is.True(!databaseExists(t, name))
}

// TestDropStopsAtDependents: an application object depending on the store's tables stops the
// drop, and is kept.
func TestDropStopsAtDependents(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	db := estest.DB(t)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK)
	view := newSchemaName(t)
	_, err := db.ExecContext(t.Context(), "CREATE SCHEMA "+view+"; CREATE VIEW "+view+".event_types AS SELECT DISTINCT event_type FROM "+schema+".events")
	is.NoErr(err)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "drop", "--force"), ExitFailure,
		"objects outside the event store depend on its tables", "event_types", "nothing of yours was dropped")
	is.True(exists(t, db, "SELECT to_regclass($1) IS NOT NULL", view+".event_types"))
	is.True(exists(t, db, "SELECT to_regclass($1) IS NOT NULL", schema+".events"))
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "migrate"), ExitOK)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "status"), ExitOK, "up to date")
}

// TestConcurrentCommands runs each command several times at once: all succeed.
func TestConcurrentCommands(t *testing.T) {
	t.Parallel()
	name := newDatabaseName(t)
	dsn := testDSN(t, name)
	const n = 4
	for _, args := range [][]string{
		{"create"}, {"init"}, {"migrate"}, {"--schema", "tenant_x", "migrate"}, {"reset", "--force"},
		{"--schema", "tenant_x", "drop", "--force"}, {"drop", "--force"}, {"drop-database", "--force"},
	} {
		results := make(chan result, n)
		for range n {
			go func() {
				var stdout, stderr bytes.Buffer
				a := append([]string{"--driver", estest.Driver(), "--database-url", dsn}, args...)
				code := Run(t.Context(), a, &stdout, &stderr)
				results <- result{code, stdout.String(), stderr.String()}
			}()
		}
		for range n {
			if r := <-results; r.code != ExitOK {
				t.Errorf("es-migrate %s, %d at once: %s", strings.Join(args, " "), n, r)
			}
		}
	}
	if databaseExists(t, name) {
		t.Errorf("database %s still exists", name)
	}
}

// openDB opens a pool on dsn under the current driver, closed after the test.
func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	if estest.Driver() == "postgres" {
		var err error
		if dsn, err = pgdsn.ForLibPQ(dsn); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open(estest.Driver(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dsn := "postgres://127.0.0.1:1/never?sslmode=disable" // never connected to
	for _, name := range []string{"Upper", "with-dash", `quo"te`, "", strings.Repeat("s", 64)} {
		expect(t, cli(t, "--database-url", dsn, "--schema", name, "status"), ExitUsage, "invalid schema name")
		expect(t, cli(t, "init", "--database-url", dsn, "--schema="+name), ExitUsage, "invalid schema name")
	}
	cases := []struct {
		args []string
		want string
	}{
		{nil, "no command given"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"init", "migrate"}, `unexpected argument "migrate"`},
		{[]string{"--nope", "init"}, "flag provided but not defined: -nope"},
		{[]string{"init", "--driver", "mysql"}, `invalid --driver "mysql"`},
		{[]string{"init", "--schema"}, "flag needs an argument"},
		{[]string{"--database-url", "host", "init"}, "invalid connection string"},
		{[]string{"--database-url", "postgres://a:secret@h:x/db", "init"}, "invalid connection string"},
		{[]string{"reset"}, "add --force to confirm"},
		{[]string{"drop", "--schema", "tenant"}, "add --force to confirm"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		args := append([]string{"--database-url", dsn}, c.args...)
		if len(c.args) > 1 && c.args[0] == "--database-url" {
			args = c.args
		}
		r := result{Run(t.Context(), args, &stdout, &stderr), stdout.String(), stderr.String()}
		expect(t, r, ExitUsage, c.want)
		if strings.Contains(r.stderr, "secret") {
			t.Errorf("the password is printed: %s", r.stderr)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"init", "--help"}, {"-help"}} {
		var stdout, stderr bytes.Buffer
		r := result{Run(t.Context(), args, &stdout, &stderr), stdout.String(), stderr.String()}
		expect(t, r, ExitOK, "Usage:", "create", "init", "migrate", "status", "reset", "drop",
			"--database-url", "--schema", "--driver", "--force", "PGHOST", "Exit status")
	}
}

func TestConnectionFailure(t *testing.T) {
	t.Parallel()
	// Port 1 refuses connections: a failure (exit 1), naming the command and the database.
	r := cli(t, "--database-url", "postgres://127.0.0.1:1/somedb?sslmode=disable&connect_timeout=5", "status")
	expect(t, r, ExitFailure, "es-migrate: status:", `connect to database "somedb"`)
}

// setenv sets, or with an empty value unsets, an environment variable for the test.
func setenv(t *testing.T, key, value string) {
	t.Setenv(key, value) // restores the old value after the test
	if value == "" {
		if err := os.Unsetenv(key); err != nil {
			t.Fatal(err)
		}
	}
}

// pgEnv returns the PG* variables that connect where dsn does, over TCP.
func pgEnv(t *testing.T, dsn string) map[string]string {
	t.Helper()
	cfg, err := pgdsn.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"PGHOST": cfg.Host, "PGPORT": fmt.Sprint(cfg.Port), "PGUSER": cfg.User, "PGDATABASE": cfg.Database}
}

// TestEnvironment runs without t.Parallel, as it sets the process environment: Go runs the
// package's parallel tests only after the sequential ones are done.
func TestEnvironment(t *testing.T) {
	schema := newSchemaName(t)
	dsn := estest.DSN(t)
	if server := sharedServer(t); server != nil {
		dsn = server.DSN("") // over TCP, as in the issue: no TLS on the server, no sslmode anywhere
	}

	// PG* variables only, without PGSSLMODE: TLS is preferred, not required, as with psql.
	setenv(t, "DATABASE_URL", "")
	setenv(t, "PGSSLMODE", "")
	env := pgEnv(t, dsn)
	for k, v := range env {
		setenv(t, k, v)
	}
	expect(t, cli(t, "--schema", schema, "init"), ExitOK, fmt.Sprintf("in database %q", env["PGDATABASE"]))
	expect(t, cli(t, "--schema", schema, "status"), ExitOK, "version "+latestVersion+"; up to date")

	// create and drop-database take the database name from PGDATABASE too.
	name := newDatabaseName(t)
	t.Setenv("PGDATABASE", name)
	expect(t, cli(t, "status"), ExitFailure, fmt.Sprintf("database %q does not exist", name), "es-migrate create")
	expect(t, cli(t, "create"), ExitOK, fmt.Sprintf("created database %q", name))
	expect(t, cli(t, "drop-database", "--force"), ExitOK, fmt.Sprintf("dropped database %q", name))
	if databaseExists(t, name) {
		t.Errorf("database %s still exists", name)
	}

	// sslmode=require on a server without TLS: the fix is named.
	t.Setenv("PGSSLMODE", "require")
	expect(t, cli(t, "status"), ExitFailure, "the server does not offer TLS", "sslmode=prefer")
	setenv(t, "PGSSLMODE", "")

	// DATABASE_URL wins over PG*, and --database-url over DATABASE_URL.
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", "1")
	t.Setenv("PGDATABASE", "nowhere")
	t.Setenv("DATABASE_URL", estest.DSN(t))
	expect(t, cli(t, "--schema", schema, "migrate"), ExitOK, "up to date")
	t.Setenv("DATABASE_URL", "postgres://127.0.0.1:1/nowhere?sslmode=disable")
	expect(t, cli(t, "--database-url", estest.DSN(t), "--schema", schema, "status"), ExitOK, "up to date")
}

// TestPasswordErrors: a server that asks for a password and offers no TLS, reached with PG*
// variables and no sslmode, as in the issue. A wrong password is reported as such (not as
// "SSL is not enabled on the server"), with the fix; the right one connects.
func TestPasswordErrors(t *testing.T) {
	if sharedServer(t) == nil {
		t.Skip("ES_TEST_DATABASE_URL is set: no throwaway server to configure")
	}
	ctx := t.Context()
	pg, err := pgtest.StartPostgres(ctx, &pgtest.PostgresConfig{HBA: []string{"host all pw_user 127.0.0.1/32 scram-sha-256"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	admin := openDB(t, pg.SocketDSN(""))
	if _, err := admin.ExecContext(ctx, "CREATE ROLE pw_user LOGIN PASSWORD 'right'"); err != nil {
		t.Fatal(err)
	}
	setenv(t, "DATABASE_URL", "")
	setenv(t, "PGSSLMODE", "")
	setenv(t, "PGPASSFILE", "/nonexistent")
	t.Setenv("PGHOST", "127.0.0.1")
	t.Setenv("PGPORT", fmt.Sprint(pg.Port()))
	t.Setenv("PGUSER", "pw_user")
	t.Setenv("PGDATABASE", "postgres")
	t.Setenv("PGPASSWORD", "wrong")
	expect(t, cli(t, "status"), ExitFailure, `password authentication failed for user "pw_user"`, "check the password")
	t.Setenv("PGPASSWORD", "right")
	expect(t, cli(t, "status"), ExitOK, "not initialised")
	t.Setenv("PGDATABASE", "nothere")
	expect(t, cli(t, "status"), ExitFailure, `database "nothere" does not exist`, "es-migrate create")
}
