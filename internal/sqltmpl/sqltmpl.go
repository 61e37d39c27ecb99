// Package sqltmpl places the event store's SQL into a Postgres schema. Queries and migrations
// write each table as /* TEMPLATE: schema */name, which sqlc reads as a plain comment; at run time
// the comment becomes the quoted schema, so nothing ever changes a session's search_path.
package sqltmpl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Marker is the comment replaced by the quoted schema and a dot.
const Marker = "/* TEMPLATE: schema */"

// ErrInvalidSchema is returned for a schema name that is not a plain identifier.
var ErrInvalidSchema = errors.New("invalid schema name")

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ValidateSchema accepts plain lower-case identifiers of at most 63 bytes (Postgres' limit), so a
// name means the same quoted or not and can also name a channel or a lock.
func ValidateSchema(name string) error {
	if len(name) > 63 || !plainIdent.MatchString(name) {
		return fmt.Errorf("%w %q: use lower-case letters, digits and underscores, starting with a letter or underscore, at most 63 bytes", ErrInvalidSchema, name)
	}
	return nil
}

// QuoteIdent quotes an identifier for SQL.
func QuoteIdent(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Apply replaces every marker in query with the quoted schema.
func Apply(query, schema string) string {
	return strings.ReplaceAll(query, Marker, QuoteIdent(schema)+".")
}

// DBTX is what sqlc's generated code runs on: *sql.DB, *sql.Conn and *sql.Tx all satisfy it.
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Templater rewrites queries for one schema and caches the results, since the generated queries
// are a small fixed set of strings.
type Templater struct {
	schema string
	cache  sync.Map // string -> string
}

// NewTemplater returns a Templater for a validated schema.
func NewTemplater(schema string) (*Templater, error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, err
	}
	return &Templater{schema: schema}, nil
}

// Schema returns the schema name.
func (t *Templater) Schema() string { return t.schema }

// Apply returns query placed into the schema.
func (t *Templater) Apply(query string) string {
	if v, ok := t.cache.Load(query); ok {
		return v.(string)
	}
	out := Apply(query, t.schema)
	t.cache.Store(query, out)
	return out
}

// Wrap returns a DBTX that rewrites every query before running it on inner.
func (t *Templater) Wrap(inner DBTX) DBTX { return wrapped{t: t, inner: inner} }

type wrapped struct {
	t     *Templater
	inner DBTX
}

func (w wrapped) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return w.inner.ExecContext(ctx, w.t.Apply(query), args...)
}

func (w wrapped) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return w.inner.PrepareContext(ctx, w.t.Apply(query))
}

func (w wrapped) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return w.inner.QueryContext(ctx, w.t.Apply(query), args...)
}

func (w wrapped) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return w.inner.QueryRowContext(ctx, w.t.Apply(query), args...)
}
