package pgdsn

import (
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/lib/pq"
	"github.com/matryer/is"
)

// clearEnv unsets the PG* variables for the test (which then cannot run in parallel).
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

func sslmode(t *testing.T, dsn string) pq.SSLMode {
	t.Helper()
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		t.Fatalf("lib/pq refuses %q: %v", dsn, err)
	}
	return cfg.SSLMode
}

func TestForLibPQ(t *testing.T) {
	clearEnv(t)
	is := is.New(t)

	// No sslmode anywhere: prefer, as psql.
	for _, in := range []string{"postgres://app:pw@db.example:5433/app", "host=db.example user=app dbname=app", "postgresql://db.example/app?connect_timeout=5"} {
		out, err := ForLibPQ(in)
		is.NoErr(err)
		is.Equal(sslmode(t, out), pq.SSLModePrefer)
	}
	out, err := ForLibPQ("postgres://app:pw@db.example:5433/app?application_name=x")
	is.NoErr(err)
	u, err := url.Parse(out)
	is.NoErr(err)
	is.Equal(u.Host, "db.example:5433")
	is.Equal(u.Path, "/app")
	is.Equal(u.Query().Get("application_name"), "x") // the rest is kept

	// An explicit sslmode, in the string or in PGSSLMODE, is left alone.
	for _, in := range []string{"postgres://db.example/app?sslmode=require", "host=db.example sslmode=disable"} {
		out, err := ForLibPQ(in)
		is.NoErr(err)
		is.Equal(out, in)
	}
	t.Setenv("PGSSLMODE", "verify-full")
	out, err = ForLibPQ("host=db.example dbname=app")
	is.NoErr(err)
	is.Equal(out, "host=db.example dbname=app")
	is.Equal(sslmode(t, out), pq.SSLModeVerifyFull)
	os.Unsetenv("PGSSLMODE")

	// A unix socket needs no TLS: lib/pq turns it off itself.
	out, err = ForLibPQ("host=/run/postgresql dbname=app")
	is.NoErr(err)
	is.Equal(sslmode(t, out), pq.SSLModeDisable)

	// pgx's own settings are removed from a URL, refused in keyword/value form.
	out, err = ForLibPQ("postgres://db.example/app?default_query_exec_mode=exec&pool_max_conns=4&sslmode=disable")
	is.NoErr(err)
	is.Equal(out, "postgres://db.example/app?sslmode=disable")
	_, err = ForLibPQ("host=db.example default_query_exec_mode=exec")
	is.True(err != nil)
	is.True(strings.Contains(err.Error(), "default_query_exec_mode is a pgx setting"))

	// Invalid strings: a clear error, without the password.
	for _, bad := range []string{"host", "postgres://a:secret@h:x/db", "password='open"} {
		_, err := ForLibPQ(bad)
		is.True(err != nil)
		is.True(strings.Contains(err.Error(), "invalid connection string"))
		is.True(strings.Contains(err.Error(), "use a URL such as"))
		is.True(!strings.Contains(err.Error(), "secret"))
	}
}

func TestForLibPQDefaultHost(t *testing.T) {
	clearEnv(t)
	is := is.New(t)
	cfg, err := Parse("")
	is.NoErr(err)
	out, err := ForLibPQ("dbname=app")
	is.NoErr(err)
	pqCfg, err := pq.NewConfig(out)
	is.NoErr(err)
	is.Equal(pqCfg.Host, cfg.Host) // where psql (and pgx) would go: the socket directory when there is one
}

func TestSetAndDatabase(t *testing.T) {
	clearEnv(t)
	is := is.New(t)
	is.Equal(WithDatabase("postgres://u@h:1/a?sslmode=disable", "b"), "postgres://u@h:1/b?sslmode=disable")
	is.Equal(WithDatabase("postgres://u@h:1/a?dbname=a", "b"), "postgres://u@h:1/a?dbname=b")
	is.Equal(WithDatabase("host=h dbname='my db'", "b"), "host=h dbname='my db' dbname=b")
	is.Equal(WithDatabase("", "b"), "dbname=b")
	is.Equal(Set("host=h", map[string]string{"user": "it's", "dbname": "x y"}), `host=h dbname='x y' user='it\'s'`)
	for _, dsn := range []string{"postgres://u@h:1/a", "host=h dbname=a"} {
		db, err := Database(WithDatabase(dsn, "Other-1"))
		is.NoErr(err)
		is.Equal(db, "Other-1") // both drivers read it back
		pqCfg, err := pq.NewConfig(WithDatabase(dsn, "Other-1"))
		is.NoErr(err)
		is.Equal(pqCfg.Database, "Other-1")
	}
	t.Setenv("PGDATABASE", "fromenv")
	db, err := Database("host=h")
	is.NoErr(err)
	is.Equal(db, "fromenv")
}
