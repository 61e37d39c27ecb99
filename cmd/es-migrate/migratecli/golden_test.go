package migratecli

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-eventstore/eventstore/estest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/es-migrate")

// goldenDir holds es-migrate's expected outputs, one file per scenario.
var goldenDir = filepath.Join("..", "..", "..", "testdata", "es-migrate")

var (
	durations = regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|us|ms|s|m)\)`)
	times     = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
)

// golden runs each command line in order and compares the transcript (exit codes, stdout and
// stderr, with the given names and the times normalized) with testdata/es-migrate/<name>.golden.
// Both drivers must print the same.
func golden(t *testing.T, name string, replace map[string]string, runs ...[]string) {
	t.Helper()
	var got strings.Builder
	for _, args := range runs {
		var stdout, stderr bytes.Buffer
		code := Run(t.Context(), append([]string{"--driver", estest.Driver()}, args...), &stdout, &stderr)
		shown := make([]string, 0, len(args))
		for i, a := range args {
			if i > 0 && args[i-1] == "--database-url" {
				a = "$DATABASE_URL"
			}
			shown = append(shown, a)
		}
		fmt.Fprintf(&got, "$ es-migrate %s\n[exit %d]\n%s", strings.Join(shown, " "), code, stdout.String())
		for _, line := range strings.SplitAfter(stderr.String(), "\n") {
			if line != "" {
				got.WriteString("stderr: " + line)
			}
		}
		got.WriteString("\n")
	}
	out := got.String()
	for from, to := range replace {
		out = strings.ReplaceAll(out, from, to)
	}
	out = durations.ReplaceAllString(out, "(<duration>)")
	out = times.ReplaceAllString(out, "<time>             ")
	path := filepath.Join(goldenDir, name+".golden")
	if *update && estest.Driver() == estest.Drivers[0] {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/es-migrate/migratecli -run TestGolden -update to write it)", err)
	}
	if out != string(want) {
		t.Errorf("es-migrate output differs from %s (driver %s; -update rewrites it):\n--- got\n%s\n--- want\n%s",
			path, estest.Driver(), out, want)
	}
}

func TestGoldenHelp(t *testing.T) {
	t.Parallel()
	golden(t, "help", nil, []string{"--help"})
}

func TestGoldenUsageErrors(t *testing.T) {
	t.Parallel()
	dsn := "postgres://127.0.0.1:1/never?sslmode=disable" // never connected to
	golden(t, "usage-errors", nil,
		[]string{},
		[]string{"frobnicate"},
		[]string{"init", "migrate"},
		[]string{"--nope", "init"},
		[]string{"--driver", "mysql", "init"},
		[]string{"--database-url", dsn, "--schema", "Tenant-A", "init"},
		[]string{"--database-url", "host", "status"},
		[]string{"--database-url", "postgres://app:secret@db:port/app", "status"},
		[]string{"--database-url", dsn, "reset"},
		[]string{"--database-url", dsn, "drop", "--schema", "tenant_a"},
		[]string{"--database-url", dsn, "drop-database"},
		[]string{"--database-url", "postgres://127.0.0.1:1/postgres", "drop-database", "--force"},
		[]string{"--database-url", "postgres://127.0.0.1:1/bad;name", "create"},
		[]string{"--database-url", dsn, "grant"},
		[]string{"--database-url", dsn, "grant", "--role", "bad role"},
		[]string{"--database-url", dsn, "migrate", "--hard-deletes"},
	)
}

// TestGoldenLifecycle: every command on a new database, twice where that must be harmless.
func TestGoldenLifecycle(t *testing.T) {
	t.Parallel()
	name := newDatabaseName(t)
	role := newRole(t)
	dsn := testDSN(t, name)
	db := func(args ...string) []string { return append([]string{"--database-url", dsn}, args...) }
	golden(t, "lifecycle", map[string]string{name: "app_db", role: "app_role"},
		db("create"),
		db("create"),
		db("status"),
		db("init"),
		db("init"),
		db("migrate"),
		db("--schema", "tenant_a", "migrate"),
		db("status"),
		db("grant", "--role", role),
		db("grant", "--role", role, "--hard-deletes"),
		db("reset"),
		db("reset", "--force"),
		db("drop"),
		db("--schema", "tenant_a", "drop", "--force"),
		db("--schema", "tenant_a", "drop", "--force"),
		db("drop", "--force"),
		db("drop", "--force"),
		db("reset", "--force"),
		db("drop-database", "--force"),
		db("drop-database", "--force"),
	)
}

// TestGoldenDropDatabaseRefused: a database holding anything but event stores is not dropped.
func TestGoldenDropDatabaseRefused(t *testing.T) {
	t.Parallel()
	name := newDatabaseName(t)
	dsn := testDSN(t, name)
	expect(t, cli(t, "--database-url", dsn, "create"), ExitOK)
	expect(t, cli(t, "--database-url", dsn, "init"), ExitOK)
	app := openDB(t, dsn)
	if _, err := app.ExecContext(t.Context(), `CREATE TABLE public.orders (id int);
		CREATE VIEW public.big_orders AS SELECT * FROM public.orders;
		CREATE FUNCTION public.total() RETURNS int LANGUAGE sql AS 'SELECT 1';
		CREATE SCHEMA billing; CREATE TYPE billing.currency AS ENUM ('EUR')`); err != nil {
		t.Fatal(err)
	}
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	golden(t, "drop-database-refused", map[string]string{name: "app_db"},
		[]string{"--database-url", dsn, "drop-database", "--force"},
		[]string{"--database-url", dsn, "drop", "--force"},
		[]string{"--database-url", dsn, "drop-database", "--force"},
	)
}
