package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// AppendParts splits a 1-event append's cost into its parts, each against the raw insert in the
// same run, to show where the store's appends stand against the least a store with their
// guarantees could do (BENCHMARKS.md, "What limits each workload"):
//
//   - the stream row alone: the UPDATE of a stream's version, checked against the expected
//     version, that serializes appends to one stream;
//   - the floor: that UPDATE and the event's INSERT (primary key, unique stream and version) in
//     one statement, what an append with an expected version costs without $all;
//   - the store's append with its $all sequencer held back (no pass runs while it is timed): the
//     store's statement (three event indexes, the pending row) and its Go side;
//   - the store's append as shipped, its sequencer numbering $all beside the writers.
const AppendParts = "appendparts"

// partsTables are the floor's tables, in the fixture's schema.
type partsTables struct {
	update, floor *sql.Stmt
	addStream     *sql.Stmt
}

func (p *partsTables) close() {
	for _, st := range []*sql.Stmt{p.update, p.floor, p.addStream} {
		if st != nil {
			_ = st.Close()
		}
	}
}

func createParts(ctx context.Context, db *sql.DB, schema string) (*partsTables, error) {
	s := pgident.Quote(schema) + "."
	ddl := `CREATE TABLE ` + s + `parts_streams (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_name    text   NOT NULL UNIQUE,
    stream_version bigint NOT NULL
);
CREATE TABLE ` + s + `parts_events (
    event_id       uuid        PRIMARY KEY,
    stream_pk      bigint      NOT NULL,
    stream_version bigint      NOT NULL,
    event_type     text        NOT NULL,
    data           bytea       NOT NULL,
    metadata       bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_pk, stream_version)
)`
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return nil, fmt.Errorf("create the parts tables: %w", err)
	}
	p := &partsTables{}
	for dst, q := range map[**sql.Stmt]string{
		&p.addStream: `INSERT INTO ` + s + `parts_streams (stream_name, stream_version) VALUES ($1, 0)`,
		&p.update: `UPDATE ` + s + `parts_streams SET stream_version = stream_version + 1
WHERE stream_name = $1 AND stream_version = $2`,
		&p.floor: `WITH st AS (
    UPDATE ` + s + `parts_streams SET stream_version = stream_version + 1
    WHERE stream_name = $2 AND stream_version = $3
    RETURNING id, stream_version
)
INSERT INTO ` + s + `parts_events (event_id, stream_pk, stream_version, event_type, data, metadata)
SELECT $1::uuid, st.id, st.stream_version, $4::text, $5::bytea, $6::bytea FROM st`,
	} {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("prepare a parts statement: %w", err)
		}
		*dst = st
	}
	return p, nil
}

// appendParts measures each part at 1 and 10 writers, each against the raw insert.
func (r *runner) appendParts(ctx context.Context, e *env) error {
	r.progress("%s [%s]: migrating fresh schemas", AppendParts, e.driver)
	f, err := e.newFixture(ctx)
	if err != nil {
		r.add(Result{Workload: "append parts", Driver: e.driver, Err: err})
		return fmt.Errorf("%s [%s]: %w", AppendParts, e.driver, err)
	}
	defer f.close()
	// The same store with its sequencer held back: no pass is woken or due while it is timed.
	held, err := e.newFixture(ctx, func(c *es.Config) {
		c.SequencerInterval, c.SequencerDelay = time.Hour, time.Hour
	})
	if err != nil {
		r.add(Result{Workload: "append parts", Driver: e.driver, Err: err})
		return fmt.Errorf("%s [%s]: %w", AppendParts, e.driver, err)
	}
	defer held.close()
	parts, err := createParts(ctx, e.db, f.schema)
	if err != nil {
		r.add(Result{Workload: "append parts", Driver: e.driver, Err: err})
		return fmt.Errorf("%s [%s]: %w", AppendParts, e.driver, err)
	}
	defer parts.close()

	// sqlOp is a writer of one stream row of the parts tables, exec'ing stmt with args(version).
	sqlOp := func(stmt *sql.Stmt, args func(stream string, version int64) []any) func(w int) op {
		return func(w int) op {
			stream := fmt.Sprintf("p-%s-%d", randHex(), w)
			var version int64
			var added bool
			return func(ctx context.Context) (int, error) {
				if !added {
					if _, err := parts.addStream.ExecContext(ctx, stream); err != nil {
						return 0, err
					}
					added = true
				}
				res, err := stmt.ExecContext(ctx, args(stream, version)...)
				if err != nil {
					return 0, err
				}
				if n, err := res.RowsAffected(); err != nil || n != 1 {
					return 0, errors.Join(err, fmt.Errorf("stream %s at version %d: %d rows changed, want 1", stream, version, n))
				}
				version++
				return 1, nil
			}
		}
	}
	storeOp := func(fx *fixture) func(w int) op {
		return func(w int) op {
			stream := fmt.Sprintf("s-%s-%d", randHex(), w)
			evs := storeEvents(1)
			var version int64
			return func(ctx context.Context) (int, error) {
				if err := fx.store.AppendToStream(ctx, stream, es.ExpectedVersion(version), evs); err != nil {
					return 0, err
				}
				version++
				return 1, nil
			}
		}
	}
	steps := []struct {
		what   string
		settle bool
		op     func(w int) op
	}{
		{"the stream row's UPDATE alone", false, sqlOp(parts.update, func(stream string, v int64) []any {
			return []any{stream, v}
		})},
		{"floor: the stream row's UPDATE and the event's INSERT (2 indexes)", false, sqlOp(parts.floor, func(stream string, v int64) []any {
			return []any{f.raw.id(newID()), stream, v, benchType, []byte(payload), metadataJSON}
		})},
		{"the store's append, $all sequencer held back", false, storeOp(held)},
		{"the store's append, as shipped", true, storeOp(f)},
	}
	var errs []error
	for _, writers := range []int{1, 10} {
		for _, st := range steps {
			res := Result{
				Workload: fmt.Sprintf("append parts, %s, 1 event/call, %s", st.what, plural(writers, "writer", "writers")),
				Driver:   e.driver,
			}
			errs = append(errs, r.storeThenRaw(ctx, f, &res, writers, st.settle, st.op, func(w int) op {
				stream := fmt.Sprintf("r-%s-%d", randHex(), w)
				var version int64
				return func(ctx context.Context) (int, error) {
					if err := f.raw.appendOne(ctx, stream, version+1); err != nil {
						return 0, err
					}
					version++
					return 1, nil
				}
			}))
			r.add(res)
		}
	}
	return errors.Join(errs...)
}
