// Package pgdsn makes PostgreSQL connection strings behave as they do for psql: the one place
// where the event store and its tools read, check and adjust them.
//
// A connection string is a URL (postgres://user:password@host:5432/db?sslmode=disable) or
// keyword/value pairs (host=/run/postgresql dbname=app), completed by the PG* environment
// variables (PGHOST, PGUSER, PGSSLMODE, ...), as libpq reads them. pgx reads them the libpq way
// already; lib/pq differs in two defaults: it requires TLS unless told otherwise (libpq prefers
// it, falling back to a plain connection), and it connects to localhost over TCP when no host is
// given (libpq uses the default unix socket). ForLibPQ closes both gaps.
//
// Parsing is left to the drivers (pgconn.ParseConfig, pq.NewConfig); this package only adds or
// replaces keywords, never reinterprets a string by hand.
package pgdsn

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
)

// Hint is appended to parse errors: what a valid connection string looks like.
const Hint = `use a URL such as postgres://user:password@host:5432/dbname, or keyword/value ` +
	`pairs such as "host=db.example.com user=app dbname=app"`

// pgxOnlyKeys are keywords pgx (and pgxpool) take from a connection string for themselves. lib/pq
// would send them to the server as settings, which refuses the connection
// ("unrecognized configuration parameter").
var pgxOnlyKeys = []string{
	"default_query_exec_mode", "statement_cache_capacity", "description_cache_capacity",
	"pool_max_conns", "pool_min_conns", "pool_min_idle_conns", "pool_max_conn_lifetime",
	"pool_max_conn_lifetime_jitter", "pool_max_conn_idle_time", "pool_health_check_period",
}

// IsURL reports whether dsn is in URL form (postgres:// or postgresql://), as both drivers
// decide it.
func IsURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Parse checks dsn with pgx's parser, which follows libpq: the environment variables, the
// password file and the service file complete it, and TLS is preferred unless sslmode says
// otherwise. An empty dsn is the environment alone, as for psql. The error says how to fix it and
// does not repeat the password.
func Parse(dsn string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid connection string: %s; %s", parseErrorText(err), Hint)
	}
	return cfg, nil
}

// parseErrorText returns the reason of a pgconn parse error without the connection string, which
// may hold a password.
func parseErrorText(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) && pe.Unwrap() != nil {
		msg := pe.Unwrap().Error()
		var ue *url.Error // repeats the whole URL
		if errors.As(pe.Unwrap(), &ue) {
			msg = ue.Err.Error()
		}
		return msg
	}
	if errors.As(err, &pe) {
		// "cannot parse `<redacted string>`: msg": keep msg.
		if _, after, ok := strings.Cut(err.Error(), "`: "); ok {
			return after
		}
	}
	return err.Error()
}

// Database returns the database dsn connects to, as libpq decides it: the connection string's,
// else PGDATABASE, else the user name.
func Database(dsn string) (string, error) {
	cfg, err := Parse(dsn)
	if err != nil {
		return "", err
	}
	return cfg.Database, nil
}

// WithDatabase returns dsn connecting to the database name instead; everything else is kept as
// written. dsn must parse (see Parse).
func WithDatabase(dsn, name string) string {
	return Set(dsn, map[string]string{"dbname": name})
}

// ForLibPQ returns dsn as lib/pq must be given it to connect where and how psql (or pgx) would
// with the same string and environment:
//   - without sslmode in the string or PGSSLMODE, sslmode=prefer is added: TLS when the server
//     offers it, else a plain connection (lib/pq alone would require TLS and fail with "SSL is
//     not enabled on the server", whatever the real problem);
//   - without a host in the string or PGHOST, the default unix socket directory that libpq uses
//     is added when it exists (lib/pq alone would try localhost over TCP);
//   - pgx's own keywords (default_query_exec_mode, pool_max_conns, ...) are removed from a URL;
//     in keyword/value form they are an error, as lib/pq would send them to the server;
//   - a URL naming several hosts with ports (postgres://u@db1:5432,db2:5433/app, for failover
//     with target_session_attrs=read-write) is rewritten in keyword/value form
//     (host=db1,db2 port=5432,5433 ...), since lib/pq (v1.12) reads such a URL's ports as part
//     of the host names.
//
// The result is for lib/pq's Listener (LISTEN connections) and sql.Open("postgres", ...). It
// holds the password, if dsn does: never log it.
func ForLibPQ(dsn string) (string, error) {
	pgxCfg, err := Parse(dsn)
	if err != nil {
		return "", err
	}
	if kv, ok := multiHostURL(dsn); ok {
		dsn = kv
	}
	pqCfg, err := pq.NewConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("invalid connection string for lib/pq: %w", err)
	}
	add := map[string]string{}
	var drop []string
	for _, k := range pgxOnlyKeys {
		if _, ok := pqCfg.Runtime[k]; ok {
			drop = append(drop, k)
		}
	}
	if len(drop) > 0 && !IsURL(dsn) {
		return "", fmt.Errorf("invalid connection string for lib/pq: %s is a pgx setting that lib/pq "+
			"would send to the server as a parameter, which refuses it: remove it from this "+
			"connection string", strings.Join(drop, ", "))
	}
	if pqCfg.SSLMode == "" { // neither the string nor PGSSLMODE sets it
		add["sslmode"] = string(pq.SSLModePrefer)
	}
	if isSocketDir(pgxCfg.Host) && pqCfg.Host != pgxCfg.Host && len(pqCfg.Multi) == 0 && sameHost(pgxCfg) {
		add["host"] = pgxCfg.Host
	}
	if len(add) == 0 && len(drop) == 0 {
		return dsn, nil
	}
	return setDrop(dsn, add, drop), nil
}

// multiHostURL rewrites a URL naming several hosts in keyword/value form, with one port per host
// (5432 where the URL gives none): host=db1,db2 port=5432,5433, the user, password and database,
// then the URL's parameters but pgx's own. ok is false for anything else, which is left alone.
func multiHostURL(dsn string) (kv string, ok bool) {
	if !IsURL(dsn) {
		return "", false
	}
	u, err := url.Parse(dsn)
	if err != nil || !strings.Contains(u.Host, ",") {
		return "", false
	}
	var hosts, ports []string
	for _, hp := range strings.Split(u.Host, ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil { // no port
			host, port = strings.Trim(hp, "[]"), "5432"
		}
		hosts, ports = append(hosts, host), append(ports, port)
	}
	pairs := []string{"host=" + QuoteValue(strings.Join(hosts, ",")), "port=" + QuoteValue(strings.Join(ports, ","))}
	if u.User != nil {
		pairs = append(pairs, "user="+QuoteValue(u.User.Username()))
		if pw, ok := u.User.Password(); ok {
			pairs = append(pairs, "password="+QuoteValue(pw))
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		pairs = append(pairs, "dbname="+QuoteValue(db))
	}
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		if !slices.Contains(pgxOnlyKeys, k) { // as ForLibPQ drops them from a URL
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		pairs = append(pairs, k+"="+QuoteValue(q.Get(k)))
	}
	return strings.Join(pairs, " "), true
}

// isSocketDir reports whether a libpq host names a unix socket directory.
func isSocketDir(host string) bool {
	return strings.HasPrefix(host, "/") || strings.HasPrefix(host, "@")
}

// sameHost reports whether every fallback of cfg (sslmode=prefer's second try) targets cfg.Host,
// that is, whether the string names a single host.
func sameHost(cfg *pgconn.Config) bool {
	for _, f := range cfg.Fallbacks {
		if f.Host != cfg.Host {
			return false
		}
	}
	return true
}

// Set returns dsn with the keywords of settings (dbname, user, application_name, ...) set to
// their values, replacing any the string had; everything else is kept as written. In a URL,
// dbname is the path unless the URL sets it as a parameter.
func Set(dsn string, settings map[string]string) string { return setDrop(dsn, settings, nil) }

// setDrop sets the keywords of add and removes those of drop (URL form only). In keyword/value
// form a keyword is set by appending it: both drivers let the last occurrence win.
func setDrop(dsn string, add map[string]string, drop []string) string {
	keys := make([]string, 0, len(add))
	for k := range add {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if IsURL(dsn) {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			for _, k := range drop {
				q.Del(k)
			}
			for _, k := range keys {
				if k == "dbname" && !q.Has("dbname") {
					u.Path, u.RawPath = "/"+add[k], ""
					continue
				}
				q.Set(k, add[k])
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
		// Parse accepted it, url.Parse did not (cannot happen with pgx's URL parser, which is
		// url.Parse): fall through to appending, which libpq's URL form does not allow.
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(dsn))
	for _, k := range keys {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + QuoteValue(add[k]))
	}
	return b.String()
}

// QuoteValue quotes a keyword/value connection string value when it needs it: empty, or holding
// white space, a quote or a backslash.
func QuoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
