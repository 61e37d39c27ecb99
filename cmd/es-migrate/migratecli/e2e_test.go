package migratecli

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/internal/pgtest"
)

// buildBinary builds cmd/es-migrate into a temporary directory and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "es-migrate")
	cmd := exec.CommandContext(t.Context(), goBin, "build", "-o", bin, "github.com/go-eventstore/eventstore/cmd/es-migrate")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is the process environment without the variables es-migrate reads.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		key, _, _ := strings.Cut(kv, "=")
		if key == "DATABASE_URL" || strings.HasPrefix(key, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func TestBinary(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	bin := buildBinary(t)
	name := newDatabaseName(t)
	dsn := testDSN(t, name)
	if server := sharedServer(t); server != nil {
		dsn = server.DSN(name) // the URL form, over TCP
	}

	run := func(env []string, args ...string) result {
		t.Helper()
		args = append([]string{"--driver", estest.Driver()}, args...)
		cmd := exec.CommandContext(t.Context(), bin, args...)
		cmd.Env = append(cleanEnv(), env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("run %s: %v", bin, err)
		}
		r := result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
		t.Logf("es-migrate %s\n%s", strings.Join(args, " "), r)
		return r
	}
	withURL := []string{"DATABASE_URL=" + dsn}

	expect(t, run(nil, "--database-url", dsn, "create"), ExitOK, fmt.Sprintf("created database %q", name))
	expect(t, run(nil, "create", "--database-url", dsn), ExitOK, "already exists")
	expect(t, run(withURL, "init"), ExitOK, "applied 00001_init.sql", `initialised schema "public"`)
	expect(t, run(withURL, "init"), ExitOK, "already initialised")
	expect(t, run(withURL, "status"), ExitOK, "00001_init.sql", "applied", "version "+latestVersion+"; up to date")
	expect(t, run(withURL, "migrate"), ExitOK, "up to date (version "+latestVersion+")")

	// Fill the store, then reset it.
	db, err := sql.Open(estest.Driver(), dsn)
	is.NoErr(err)
	defer db.Close()
	fill(t, db, "public")
	expect(t, run(withURL, "reset"), ExitUsage, "--force")
	counts, _ := rowCounts(t, db, "public")
	is.Equal(counts["events"], 1) // refused: nothing deleted
	expect(t, run(withURL, "reset", "--force"), ExitOK, `reset schema "public"`)
	counts, last := rowCounts(t, db, "public")
	for table, n := range counts {
		if n != 0 {
			t.Errorf("%s has %d rows after reset", table, n)
		}
	}
	is.Equal(last, int64(0))

	// A second store in its own schema, dropped alone.
	expect(t, run(withURL, "--schema", "tenant_a", "migrate"), ExitOK, `migrated schema "tenant_a"`)
	expect(t, run(withURL, "drop", "--schema", "tenant_a", "--force"), ExitOK, `dropped schema "tenant_a"`)
	expect(t, run(withURL, "status"), ExitOK, "up to date") // public is untouched

	// The PG* variables alone, without PGSSLMODE.
	var env []string
	for k, v := range pgEnv(t, dsn) {
		env = append(env, k+"="+v)
	}
	expect(t, run(env, "status"), ExitOK, fmt.Sprintf("in database %q", name), "up to date")

	// Usage errors and help.
	expect(t, run(withURL, "--schema", "Bad-Name", "status"), ExitUsage, "invalid schema name")
	expect(t, run(nil, "frobnicate"), ExitUsage, "unknown command")
	expect(t, run(nil, "--help"), ExitOK, "Usage:", "--database-url")

	// Drop the store, then the database: refused without --force, then done; our own
	// connections must go first.
	is.NoErr(db.Close())
	expect(t, run(withURL, "drop"), ExitUsage, "--force")
	expect(t, run(withURL, "drop", "--force"), ExitOK, `dropped the event store in schema "public"`)
	is.True(databaseExists(t, name))
	expect(t, run(withURL, "drop-database"), ExitUsage, "--force")
	expect(t, run(withURL, "drop-database", "--force"), ExitOK, fmt.Sprintf("dropped database %q", name))
	is.True(!databaseExists(t, name))
	expect(t, run(withURL, "drop-database", "--force"), ExitOK, "does not exist")

	// A failure exits 1.
	expect(t, run(withURL, "status"), ExitFailure, "es-migrate: status:", fmt.Sprintf("connect to database %q", name))
}

// sharedServer is the throwaway server estest started (nil with ES_TEST_DATABASE_URL).
func sharedServer(t testing.TB) *pgtest.Postgres {
	estest.DSN(t)
	return pgtest.Shared()
}
