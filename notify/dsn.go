package notify

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/lib/pq"
)

// CheckDSN parses dsn as NewListener will use it (lib/pq's own parser, PG* environment variables
// included) and returns the parser's error, saying what the string must look like.
func CheckDSN(dsn string) error {
	if _, err := pq.NewConfig(listenDSN(dsn)); err != nil {
		return fmt.Errorf("%w (use a postgres:// URL or key=value pairs, as psql takes them)", err)
	}
	return nil
}

// listenDSN makes dsn behave for the LISTEN connection as it does for psql and pgx: when neither
// the string nor PGSSLMODE sets sslmode, TLS is preferred (used when the server offers it), not
// required, which is lib/pq's own default and fails against a server without TLS.
func listenDSN(dsn string) string {
	cfg, err := pq.NewConfig(dsn)
	if err != nil || cfg.SSLMode != "" {
		return dsn // pq reports a parse error on every connection attempt, and CheckDSN at once
	}
	return withParam(dsn, "sslmode", "prefer")
}

// withParam returns dsn with the parameter set to value, replacing any already there: as a
// query parameter of a URL ("postgres://" or "postgresql://"), else appended to the
// keyword/value string (where, as in libpq, a later keyword wins).
func withParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	kv := key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
	if strings.TrimSpace(dsn) == "" {
		return kv
	}
	return dsn + " " + kv
}

// hint says how to fix a failed LISTEN connection, for the log.
func hint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "SSL is not enabled on the server"):
		return "the server does not offer TLS: add sslmode=disable (or prefer) to ListenDSN"
	case strings.Contains(msg, "password authentication failed"), strings.Contains(msg, "no password"):
		return "check the user and password in ListenDSN (or PGPASSWORD / ~/.pgpass)"
	case strings.Contains(msg, "does not exist"):
		return "ListenDSN must name the database the store's pool uses"
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "no route to host"):
		return "check the host and port in ListenDSN: it must reach the server directly (not PgBouncer in transaction mode)"
	}
	return "check ListenDSN: it must reach the same database as the store's pool, directly"
}
