package migratecli

import (
	"errors"
	"flag"
	"testing"

	"github.com/matryer/is"
)

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

	o, cmd, err = parseArgs([]string{"grant", "--role", "app", "--hard-deletes"})
	is.NoErr(err)
	is.Equal(cmd, "grant")
	is.Equal(o, options{schema: "public", driver: "postgres", role: "app", hardDeletes: true})

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
