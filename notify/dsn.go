package notify

import (
	"fmt"
	"strings"

	"github.com/go-eventstore/eventstore/internal/pgdsn"
)

// CheckDSN parses dsn as NewListener will use it (PG* environment variables included) and
// returns the parser's error, saying what the string must look like.
func CheckDSN(dsn string) error {
	if _, err := pgdsn.ForLibPQ(dsn); err != nil {
		return fmt.Errorf("%w (use a postgres:// URL or key=value pairs, as psql takes them)", err)
	}
	return nil
}

// listenDSN makes dsn behave for the LISTEN connection (lib/pq) as it does for psql and pgx: TLS
// preferred, not required, unless the string or PGSSLMODE sets sslmode; the default socket
// directory when no host is given. A string that cannot be parsed is kept: pq reports the error
// on every connection attempt, and CheckDSN at once.
func listenDSN(dsn string) string {
	if out, err := pgdsn.ForLibPQ(dsn); err == nil {
		return out
	}
	return dsn
}

// withApplicationName returns dsn with application_name set to name, replacing any already there.
func withApplicationName(dsn, name string) string {
	return pgdsn.Set(dsn, map[string]string{"application_name": name})
}

// hint says how to fix a failed LISTEN connection, for the log.
func hint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "SSL is not enabled on the server"):
		return "the server does not offer TLS: add sslmode=disable (or prefer) to ListenDSN"
	case strings.Contains(msg, "password authentication failed"), strings.Contains(msg, "no password"):
		return "check the user and password in ListenDSN (or PGPASSWORD / ~/.pgpass)"
	case strings.Contains(msg, "role") && strings.Contains(msg, "does not exist"):
		return "ListenDSN names a role the server does not know: use the pool's user"
	case strings.Contains(msg, "does not exist"):
		return "ListenDSN must name the database the store's pool uses"
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "no route to host"):
		return "check the host and port in ListenDSN: it must reach the server directly (not PgBouncer in transaction mode)"
	}
	return "check ListenDSN: it must reach the same database as the store's pool, directly"
}
