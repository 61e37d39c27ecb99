package pgtest

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/matryer/is"
)

// A synchronous standby streams what the primary commits; after the primary is killed and the
// standby promoted, a pool with a multi-host connection string and
// target_session_attrs=read-write, under either driver, finds the new primary and writes there.
func TestStandbyKillPromote(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// remote_apply: a commit returns once the standby has applied it, so it is visible there at
	// once ("on" only waits for the standby's flush, and a read there could come first).
	primary := startTestPostgres(t, &PostgresConfig{Settings: map[string]string{"synchronous_commit": "remote_apply"}})
	standby, err := primary.StartStandby(ctx, &StandbyConfig{Synchronous: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	is.NoErr(err)
	t.Cleanup(func() { _ = standby.Stop() })

	multi := fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable "+
		"target_session_attrs=read-write connect_timeout=5", primary.Port(), standby.Port())
	for _, driver := range []string{"postgres", "pgx"} {
		db := openDB(t, driver, multi)
		_, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS acked (driver text, n int)")
		is.NoErr(err)
		_, err = db.ExecContext(ctx, "INSERT INTO acked VALUES ($1, 1)", driver)
		is.NoErr(err)
		var port int
		is.NoErr(db.QueryRowContext(ctx, "SELECT current_setting('port')::int").Scan(&port))
		is.Equal(port, primary.Port()) // read-write: the primary, not the standby
	}
	// Synchronous, remote_apply: what the primary acknowledged is visible on the standby already.
	sdb := openDB(t, "postgres", standby.DSN("postgres"))
	var n int
	is.NoErr(sdb.QueryRowContext(ctx, "SELECT count(*) FROM acked").Scan(&n))
	is.Equal(n, 2)
	var recovering bool
	is.NoErr(sdb.QueryRowContext(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering))
	is.True(recovering)

	primary.Kill()
	is.NoErr(standby.Promote(ctx))
	for _, driver := range []string{"postgres", "pgx"} {
		db := openDB(t, driver, multi)
		_, err := db.ExecContext(ctx, "INSERT INTO acked VALUES ($1, 2)", driver)
		is.NoErr(err)
		var port int
		is.NoErr(db.QueryRowContext(ctx, "SELECT current_setting('port')::int").Scan(&port))
		is.Equal(port, standby.Port())
	}
	is.NoErr(sdb.QueryRowContext(ctx, "SELECT count(*) FROM acked").Scan(&n))
	is.Equal(n, 4)
}
