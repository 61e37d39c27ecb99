package migratecli

import (
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestParseKeywords(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	c, err := parseConnString(`host=/tmp/pg  port = 5432 user=app password='it\'s \\ ok' dbname='my db' sslmode=disable x=a\ b`)
	is.NoErr(err)
	is.Equal(c.get("host"), "/tmp/pg")
	is.Equal(c.get("port"), "5432")
	is.Equal(c.get("user"), "app")
	is.Equal(c.get("password"), `it's \ ok`)
	is.Equal(c.get("dbname"), "my db")
	is.Equal(c.get("x"), "a b")
	is.Equal(c.get("missing"), "")

	// String quotes what needs it, and parses back to the same pairs.
	back, err := parseConnString(c.String())
	is.NoErr(err)
	is.Equal(back.kv, c.kv)

	d := c.withDatabase("other")
	is.Equal(d.get("dbname"), "other")
	is.Equal(c.get("dbname"), "my db") // the original is unchanged
	is.Equal(d.get("password"), `it's \ ok`)
	is.Equal(strings.Count(d.String(), "dbname="), 1)

	// A string without dbname gets one.
	e, err := parseConnString("host=localhost")
	is.NoErr(err)
	is.Equal(e.withDatabase("app").String(), "host=localhost dbname=app")

	empty, err := parseConnString("")
	is.NoErr(err)
	is.Equal(empty.String(), "")

	for _, bad := range []string{"host", "host=localhost port", "=x", "password='open"} {
		_, err := parseConnString(bad)
		is.True(err != nil) // invalid keyword string
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	c, err := parseConnString("postgres://app:s%40cret@db.example:6543/app_test?sslmode=require")
	is.NoErr(err)
	is.Equal(c.get("host"), "db.example")
	is.Equal(c.get("port"), "6543")
	is.Equal(c.get("user"), "app")
	is.Equal(c.get("password"), "s@cret")
	is.Equal(c.get("dbname"), "app_test")
	is.Equal(c.get("sslmode"), "require")

	d := c.withDatabase("postgres")
	is.Equal(d.String(), "postgres://app:s%40cret@db.example:6543/postgres?sslmode=require")
	is.Equal(c.get("dbname"), "app_test") // the original is unchanged

	// Query parameters win, as in libpq: a unix socket host, a dbname parameter.
	s, err := parseConnString("postgresql:///?host=/run/postgresql&dbname=app")
	is.NoErr(err)
	is.Equal(s.get("host"), "/run/postgresql")
	is.Equal(s.get("dbname"), "app")
	is.Equal(s.withDatabase("x").get("dbname"), "x")

	noDB, err := parseConnString("postgres://localhost")
	is.NoErr(err)
	is.Equal(noDB.get("dbname"), "")

	_, err = parseConnString("postgres://app:secret@host:port/db")
	is.True(err != nil)
	is.True(!strings.Contains(err.Error(), "secret")) // the password is not repeated
}

func TestConnStringFromEnv(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	env := map[string]string{
		"PGHOST": "/tmp/sock dir", "PGPORT": "5433", "PGUSER": "ci", "PGPASSWORD": "p w",
		"PGDATABASE": "app", "PGSSLMODE": "disable", "PGAPPNAME": "ignored",
	}
	c := connStringFromEnv(func(k string) string { return env[k] })
	is.Equal(c.String(), `host='/tmp/sock dir' port=5433 user=ci password='p w' dbname=app sslmode=disable`)
	is.Equal(connStringFromEnv(func(string) string { return "" }).String(), "")

	// --database-url wins over DATABASE_URL, which wins over PG*.
	o := options{}
	got, err := o.connString(func(k string) string {
		if k == "DATABASE_URL" {
			return "postgres://h/fromurl"
		}
		return env[k]
	})
	is.NoErr(err)
	is.Equal(got.get("dbname"), "fromurl")
	o.databaseURL = "dbname=fromflag"
	got, err = o.connString(func(string) string { return "postgres://h/fromurl" })
	is.NoErr(err)
	is.Equal(got.get("dbname"), "fromflag")
}

func TestValidateDatabase(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for _, ok := range []string{"app", "App_Test", "_x", "my-app", strings.Repeat("d", 63)} {
		is.NoErr(validateDatabase(ok))
	}
	for _, bad := range []string{"", "1app", `a"b`, "a b", "a;b", "a.b", strings.Repeat("d", 64)} {
		is.True(validateDatabase(bad) != nil) // invalid database name
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	is := is.New(t)

	o, cmd, err := parseArgs([]string{"--schema", "s1", "migrate", "--driver=pgx", "-force", "--database-url", "dbname=x"})
	is.NoErr(err)
	is.Equal(cmd, "migrate")
	is.Equal(o, options{databaseURL: "dbname=x", schema: "s1", driver: "pgx", force: true})

	o, cmd, err = parseArgs([]string{"status"})
	is.NoErr(err)
	is.Equal(cmd, "status")
	is.Equal(o, options{schema: "public", driver: "postgres"}) // defaults

	_, cmd, err = parseArgs([]string{"--force", "--", "reset"})
	is.NoErr(err)
	is.Equal(cmd, "reset")

	_, _, err = parseArgs([]string{"status", "--", "--force"})
	is.True(errors.As(err, new(usageError))) // after "--", --force is an extra argument

	_, _, err = parseArgs(nil)
	is.True(errors.As(err, new(usageError)))
	_, _, err = parseArgs([]string{"init", "migrate"})
	is.True(errors.As(err, new(usageError)))
	_, _, err = parseArgs([]string{"init", "--help"})
	is.True(errors.Is(err, flag.ErrHelp))
	_, _, err = parseArgs([]string{"-h"})
	is.True(errors.Is(err, flag.ErrHelp))
	_, _, err = parseArgs([]string{"init", "--schema"})
	is.True(err != nil) // flag needs an argument
}
