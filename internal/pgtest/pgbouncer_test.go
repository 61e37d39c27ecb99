package pgtest

import (
	"testing"

	"github.com/matryer/is"
)

func TestPgBouncer(t *testing.T) {
	is := is.New(t)
	p := startTestPostgres(t, nil)
	b, err := StartPgBouncer(t.Context(), p.SocketDSN(""), nil)
	is.NoErr(err)
	t.Cleanup(func() { is.NoErr(b.Stop()) })
	is.Equal(b.PoolMode(), "transaction")
	for _, driver := range []string{"postgres", "pgx"} {
		db := openDB(t, driver, b.DSN(""))
		var port int
		is.NoErr(db.QueryRowContext(t.Context(), "SELECT current_setting('port')::int").Scan(&port))
		is.Equal(port, p.Port()) // through PgBouncer to the server
	}
	is.True(b.Port() != p.Port())
	is.NoErr(b.Stop())
	is.NoErr(b.Stop()) // again: nothing to do
}
