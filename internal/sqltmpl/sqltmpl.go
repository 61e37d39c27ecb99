// Package sqltmpl places the event store's SQL into a Postgres schema. Queries and migrations
// write each table as /* TEMPLATE: schema */name, which sqlc reads as a plain comment; at run time
// the comment becomes the quoted schema, so nothing ever changes a session's search_path.
package sqltmpl

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/go-eventstore/eventstore/internal/pgident"
)

// Marker is the comment replaced by the quoted schema and a dot.
const Marker = "/* TEMPLATE: schema */"

// Apply replaces every marker in query with the quoted schema.
func Apply(query, schema string) string {
	return strings.ReplaceAll(query, Marker, pgident.Quote(schema)+".")
}

// DBTX is what sqlc's generated code runs on: *sql.DB, *sql.Conn and *sql.Tx all satisfy it.
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Templater rewrites queries for one schema and caches the results, since the generated queries
// are a small fixed set of strings. With Prepare, it also runs them as prepared statements on one
// *sql.DB: one round trip per query instead of two with lib/pq, and no re-planning.
type Templater struct {
	schema string
	cache  sync.Map // query -> placed query

	db    *sql.DB
	pgx   bool     // db runs on pgx: pass arrays as native slices
	stmts sync.Map // placed query -> *stmtEntry

	// unprepared: nothing may outlive one round trip on a server connection (see Unprepared).
	unprepared bool
}

type stmtEntry struct {
	once  sync.Once
	stmt  *sql.Stmt
	err   error
	ready atomic.Bool // stmt is prepared
}

// NewTemplater returns a Templater for a validated schema.
func NewTemplater(schema string) (*Templater, error) {
	if err := pgident.ValidateSchema(schema); err != nil {
		return nil, err
	}
	return &Templater{schema: schema}, nil
}

// Schema returns the schema name.
func (t *Templater) Schema() string { return t.schema }

// Prepare makes queries run through db, directly or in its transactions, use prepared statements.
// Call it before any Wrap.
func (t *Templater) Prepare(db *sql.DB) { t.db, t.pgx = db, isPgx(db) }

// Unprepared makes every query run through db (directly or in any transaction) in a single
// round trip that leaves nothing prepared on the server, as PgBouncer in transaction mode needs,
// where consecutive messages of one client may reach different server connections:
//   - on pgx, queries run in pgx's QueryExecModeCacheDescribe: parse, bind and execute in one
//     message batch on the unnamed statement (pgx's default mode prepares named statements);
//   - on lib/pq (and any other driver), parameters are written into the query as literals
//     (Inline), so it runs with the simple query protocol (lib/pq's extended protocol parses in
//     one round trip and binds in the next).
//
// Call it instead of Prepare, before any Wrap.
func (t *Templater) Unprepared(db *sql.DB) { t.pgx, t.unprepared = isPgx(db), true }

// Close closes the prepared statements.
func (t *Templater) Close() error {
	var errs []error
	t.stmts.Range(func(k, v any) bool {
		if e := v.(*stmtEntry); e.stmt != nil {
			errs = append(errs, e.stmt.Close())
		}
		t.stmts.Delete(k)
		return true
	})
	return errors.Join(errs...)
}

// Apply returns query placed into the schema.
func (t *Templater) Apply(query string) string {
	if v, ok := t.cache.Load(query); ok {
		return v.(string)
	}
	out := Apply(query, t.schema)
	t.cache.Store(query, out)
	return out
}

// args adapts arguments to the driver.
func (t *Templater) args(args []any) []any {
	if t.pgx {
		return nativeArrays(args)
	}
	return args
}

// unpreparedQuery returns query and args as they run in Unprepared mode.
func (t *Templater) unpreparedQuery(query string, args []any) (string, []any, error) {
	if t.pgx {
		return query, append([]any{pgx.QueryExecModeCacheDescribe}, nativeArrays(args)...), nil
	}
	q, err := Inline(query, args)
	return q, nil, err
}

// stmt returns the prepared statement of a placed query, or nil when it cannot be prepared now
// (the caller then runs the query unprepared; a later call tries again).
func (t *Templater) stmt(ctx context.Context, query string) *sql.Stmt {
	v, _ := t.stmts.LoadOrStore(query, &stmtEntry{})
	e := v.(*stmtEntry)
	e.once.Do(func() {
		e.stmt, e.err = t.db.PrepareContext(ctx, query)
		e.ready.Store(e.err == nil)
	})
	if e.err != nil {
		t.stmts.CompareAndDelete(query, e)
		return nil
	}
	return e.stmt
}

// prepared returns the prepared statement of a placed query if the pool has one already, without
// preparing it: preparing takes a pool connection of its own, which a caller's transaction on a
// pool of one would wait for forever.
func (t *Templater) prepared(query string) *sql.Stmt {
	if v, ok := t.stmts.Load(query); ok {
		if e := v.(*stmtEntry); e.ready.Load() {
			return e.stmt
		}
	}
	return nil
}

// Wrap returns a DBTX that rewrites every query before running it on inner.
func (t *Templater) Wrap(inner DBTX) DBTX {
	if t.db != nil {
		switch x := inner.(type) {
		case *sql.DB:
			if x == t.db {
				return preparedDB{t}
			}
		case *sql.Tx:
			return preparedTx{t, x}
		}
	}
	return wrapped{t: t, inner: inner}
}

type wrapped struct {
	t     *Templater
	inner DBTX
}

// place returns query placed into the schema, and with args as the mode runs them.
func (w wrapped) place(query string, args []any) (string, []any, error) {
	query = w.t.Apply(query)
	if !w.t.unprepared {
		return query, args, nil
	}
	return w.t.unpreparedQuery(query, args)
}

func (w wrapped) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query, args, err := w.place(query, args)
	if err != nil {
		return nil, err
	}
	return w.inner.ExecContext(ctx, query, args...)
}

func (w wrapped) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return w.inner.PrepareContext(ctx, w.t.Apply(query))
}

func (w wrapped) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query, args, err := w.place(query, args)
	if err != nil {
		return nil, err
	}
	return w.inner.QueryContext(ctx, query, args...)
}

func (w wrapped) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	// A *sql.Row cannot carry an error of ours: on a value Inline cannot write (none of the
	// store's), the driver gets the parameters as they were and reports what goes wrong.
	if q, a, err := w.place(query, args); err == nil {
		return w.inner.QueryRowContext(ctx, q, a...)
	}
	return w.inner.QueryRowContext(ctx, w.t.Apply(query), args...)
}

// preparedDB runs queries as the pool's prepared statements (database/sql prepares each on a
// connection the first time it runs there).
type preparedDB struct{ t *Templater }

func (p preparedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q, args := p.t.Apply(query), p.t.args(args)
	if st := p.t.stmt(ctx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return p.t.db.ExecContext(ctx, q, args...)
}

func (p preparedDB) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.t.db.PrepareContext(ctx, p.t.Apply(query))
}

func (p preparedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q, args := p.t.Apply(query), p.t.args(args)
	if st := p.t.stmt(ctx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return p.t.db.QueryContext(ctx, q, args...)
}

func (p preparedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	q, args := p.t.Apply(query), p.t.args(args)
	if st := p.t.stmt(ctx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return p.t.db.QueryRowContext(ctx, q, args...)
}

// preparedTx runs queries as the pool's prepared statements bound to a caller's transaction; the
// transaction-bound statements are released when it ends.
type preparedTx struct {
	t  *Templater
	tx *sql.Tx
}

func (p preparedTx) bind(ctx context.Context, query string) (*sql.Stmt, string) {
	q := p.t.Apply(query)
	if st := p.t.prepared(q); st != nil {
		return p.tx.StmtContext(ctx, st), q
	}
	return nil, q
}

func (p preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	args = p.t.args(args)
	if st, q := p.bind(ctx, query); st == nil {
		return p.tx.ExecContext(ctx, q, args...)
	} else {
		return st.ExecContext(ctx, args...)
	}
}

func (p preparedTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.tx.PrepareContext(ctx, p.t.Apply(query))
}

func (p preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	args = p.t.args(args)
	if st, q := p.bind(ctx, query); st == nil {
		return p.tx.QueryContext(ctx, q, args...)
	} else {
		return st.QueryContext(ctx, args...)
	}
}

func (p preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	args = p.t.args(args)
	if st, q := p.bind(ctx, query); st == nil {
		return p.tx.QueryRowContext(ctx, q, args...)
	} else {
		return st.QueryRowContext(ctx, args...)
	}
}
