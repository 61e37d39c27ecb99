package migratecli

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// connString is a PostgreSQL connection string in either of the forms lib/pq and pgx accept: a
// URL (postgres://user:pass@host:port/db?sslmode=disable) or keyword/value pairs
// (host=... dbname=...). It is kept in the form it was given, so that everything the user wrote
// reaches the driver unchanged; only the database name is ever replaced.
type connString struct {
	url *url.URL // URL form; nil for keyword/value form
	kv  []kvPair // keyword/value form, in the order given
}

type kvPair struct{ key, value string }

// envKeys maps the libpq environment variables es-migrate reads to connection keywords.
var envKeys = []struct{ env, key string }{
	{"PGHOST", "host"},
	{"PGPORT", "port"},
	{"PGUSER", "user"},
	{"PGPASSWORD", "password"},
	{"PGDATABASE", "dbname"},
	{"PGSSLMODE", "sslmode"},
}

// connStringFromEnv builds a keyword/value connection string from the PG* variables that are set.
// With none set it is empty, and the drivers fall back to their defaults.
func connStringFromEnv(getenv func(string) string) *connString {
	c := &connString{}
	for _, e := range envKeys {
		if v := getenv(e.env); v != "" {
			c.kv = append(c.kv, kvPair{e.key, v})
		}
	}
	return c
}

// parseConnString parses a URL or keyword/value connection string.
func parseConnString(s string) (*connString, error) {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			// url.Error repeats the whole URL, password included.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("invalid connection URL: %v", err)
		}
		return &connString{url: u}, nil
	}
	kv, err := parseKeywords(s)
	if err != nil {
		return nil, err
	}
	return &connString{kv: kv}, nil
}

// parseKeywords parses keyword/value pairs the way libpq does: key = value, separated by
// whitespace; a value is either bare (backslash escapes the next character) or single-quoted
// (backslash escapes a quote or a backslash).
func parseKeywords(s string) ([]kvPair, error) {
	var out []kvPair
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' {
			return nil, fmt.Errorf("invalid connection string: missing \"=\" after %q", key)
		}
		if key == "" {
			return nil, errors.New("invalid connection string: missing keyword before \"=\"")
		}
		i++
		skipSpace()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				i++
				if c == '\\' && i < len(s) {
					val.WriteByte(s[i])
					i++
					continue
				}
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("invalid connection string: unterminated quoted value of %q", key)
			}
		} else {
			for i < len(s) && !isSpace(s[i]) {
				c := s[i]
				i++
				if c == '\\' && i < len(s) {
					c = s[i]
					i++
				}
				val.WriteByte(c)
			}
		}
		out = append(out, kvPair{key, val.String()})
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// quoteValue quotes a keyword value if it needs it.
func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// String returns the connection string for the driver. It may hold a password: never print it.
func (c *connString) String() string {
	if c.url != nil {
		return c.url.String()
	}
	parts := make([]string, len(c.kv))
	for i, p := range c.kv {
		parts[i] = p.key + "=" + quoteValue(p.value)
	}
	return strings.Join(parts, " ")
}

// get returns the value of a connection keyword (host, port, user, password, dbname, sslmode,
// ...), or "" if the string does not set it. In a URL, query parameters win, as in libpq.
func (c *connString) get(key string) string {
	if c.url == nil {
		v := ""
		for _, p := range c.kv {
			if p.key == key {
				v = p.value // the last one wins, as in libpq
			}
		}
		return v
	}
	if v := c.url.Query().Get(key); v != "" {
		return v
	}
	switch key {
	case "dbname":
		return strings.TrimPrefix(c.url.Path, "/")
	case "host":
		return c.url.Hostname()
	case "port":
		return c.url.Port()
	case "user":
		return c.url.User.Username()
	case "password":
		p, _ := c.url.User.Password()
		return p
	}
	return ""
}

// withDatabase returns a copy connecting to the database name instead.
func (c *connString) withDatabase(name string) *connString {
	if c.url != nil {
		u := *c.url
		u.Path, u.RawPath = "/"+name, ""
		if q := u.Query(); q.Has("dbname") {
			q.Set("dbname", name)
			u.RawQuery = q.Encode()
		}
		return &connString{url: &u}
	}
	kv := make([]kvPair, 0, len(c.kv)+1)
	for _, p := range c.kv {
		if p.key != "dbname" {
			kv = append(kv, p)
		}
	}
	return &connString{kv: append(kv, kvPair{"dbname", name})}
}

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

// validateDatabase accepts the database names create and drop work on: ASCII letters, digits,
// underscores and hyphens, starting with a letter or underscore, at most 63 bytes. They are
// always quoted in SQL, so case is kept.
func validateDatabase(name string) error {
	if len(name) > 63 || !databaseName.MatchString(name) {
		return fmt.Errorf("invalid database name %q: use letters, digits, underscores and hyphens, "+
			"starting with a letter or underscore, at most 63 bytes", name)
	}
	return nil
}
