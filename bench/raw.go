package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// payload is every event's data: ~160 bytes of compact JSON, stored as is by both sides.
var payload = func() json.RawMessage {
	v := map[string]any{
		"account":   "ACC-0001234567",
		"amount":    125075,
		"currency":  "EUR",
		"reference": "invoice 2026-004711",
		"booked_at": "2026-03-14T09:26:53Z",
		"note":      "",
	}
	b, _ := json.Marshal(v)
	v["note"] = strings.Repeat("x", max(0, 160-len(b)))
	b, _ = json.Marshal(v)
	return b
}()

// metadata is every event's metadata; metadataJSON is how the store encodes it, which is what
// the baseline writes.
var (
	metadata        = map[string]any{"source": "es-bench", "user": "u-42"}
	metadataJSON, _ = json.Marshal(metadata)
)

// storeEvents returns n events for the store, with ids left for the store to generate.
func storeEvents(n int) []es.EventData {
	evs := make([]es.EventData, n)
	for i := range evs {
		evs[i] = es.EventData{EventType: benchType, Data: payload, Metadata: metadata}
	}
	return evs
}

// rawTable is the baseline: a plain table of the same events, written and read with plain SQL
// through prepared statements, as the store's are (lib/pq otherwise parses every parameterized
// statement in a round trip of its own; pgx caches statements by itself).
type rawTable struct {
	db                            *sql.DB
	pgx                           bool // driver pgx: arrays as native slices
	insertOne, insertMany, upsert *sql.Stmt
	readStream, page              *sql.Stmt
}

func (t *rawTable) close() {
	for _, st := range []*sql.Stmt{t.insertOne, t.insertMany, t.upsert, t.readStream, t.page} {
		if st != nil {
			_ = st.Close()
		}
	}
}

// createRaw creates the baseline's tables in schema: raw_events, and raw_streams, the per-stream
// version counter of the one-stream baseline.
func createRaw(ctx context.Context, db *sql.DB, schema string) (*rawTable, error) {
	s := pgident.Quote(schema) + "."
	ddl := `CREATE TABLE ` + s + `raw_events (
    event_id       uuid        PRIMARY KEY,
    stream_name    text        NOT NULL,
    stream_version bigint      NOT NULL,
    event_type     text        NOT NULL,
    data           bytea       NOT NULL,
    metadata       bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_name, stream_version)
);
CREATE TABLE ` + s + `raw_streams (
    stream_name    text   PRIMARY KEY,
    stream_version bigint NOT NULL
)`
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return nil, fmt.Errorf("create raw tables: %w", err)
	}
	const cols = `event_id, stream_name, stream_version, event_type, data, metadata`
	t := &rawTable{db: db, pgx: reflect.TypeOf(db.Driver()).String() == "*stdlib.Driver"}
	for dst, q := range map[**sql.Stmt]string{
		&t.insertOne: `INSERT INTO ` + s + `raw_events (` + cols + `) VALUES ($1, $2, $3, $4, $5, $6)`,
		&t.insertMany: `INSERT INTO ` + s + `raw_events (` + cols + `)
SELECT unnest($1::uuid[]), $2::text, unnest($3::bigint[]), unnest($4::text[]), unnest($5::bytea[]), unnest($6::bytea[])`,
		&t.upsert: `WITH s AS (
    INSERT INTO ` + s + `raw_streams AS st (stream_name, stream_version) VALUES ($2::text, 1)
    ON CONFLICT (stream_name) DO UPDATE SET stream_version = st.stream_version + 1
    RETURNING st.stream_version
)
INSERT INTO ` + s + `raw_events (` + cols + `)
SELECT $1::uuid, $2::text, s.stream_version, $3::text, $4::bytea, $5::bytea FROM s`,
		&t.readStream: `SELECT ` + cols + `, created_at FROM ` + s + `raw_events
WHERE stream_name = $1 ORDER BY stream_version LIMIT $2`,
		&t.page: `SELECT ` + cols + `, created_at FROM ` + s + `raw_events
WHERE (stream_name, stream_version) > ($1::text, $2::bigint)
ORDER BY stream_name, stream_version LIMIT $3`,
	} {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			t.close()
			return nil, fmt.Errorf("prepare raw statement: %w", err)
		}
		*dst = st
	}
	return t, nil
}

// id is a UUID parameter as the store passes it: under pgx a [16]byte, which pgx encodes
// directly, where a uuid.UUID goes through its driver.Valuer string and is parsed back.
func (t *rawTable) id(u uuid.UUID) any {
	if t.pgx {
		return [16]byte(u)
	}
	return u
}

// appendOne inserts one event at version in one autocommit INSERT.
func (t *rawTable) appendOne(ctx context.Context, stream string, version int64) error {
	_, err := t.insertOne.ExecContext(ctx, t.id(newID()), stream, version, benchType, []byte(payload), metadataJSON)
	return err
}

// appendMany inserts n events at versions first.. in one autocommit INSERT ... SELECT unnest(...).
// Arrays are passed the way each driver encodes best, as the store does: pq.Array for lib/pq,
// native slices for pgx, with UUIDs as [16]byte (see id).
func (t *rawTable) appendMany(ctx context.Context, stream string, first int64, n int) error {
	ids := make([]uuid.UUID, n)
	versions := make([]int64, n)
	types := make([]string, n)
	data := make([][]byte, n)
	meta := make([][]byte, n)
	for i := range n {
		ids[i], versions[i], types[i], data[i], meta[i] = newID(), first+int64(i), benchType, payload, metadataJSON
	}
	if t.pgx {
		raw := make([][16]byte, n)
		for i, id := range ids {
			raw[i] = id
		}
		_, err := t.insertMany.ExecContext(ctx, raw, stream, versions, types, data, meta)
		return err
	}
	_, err := t.insertMany.ExecContext(ctx, pq.Array(ids), stream, pq.Array(versions), pq.Array(types), pq.Array(data), pq.Array(meta))
	return err
}

// appendAny inserts one event at the stream's next version, taken from its raw_streams counter
// row in the same statement, so concurrent writers queue on that row as the store's do.
func (t *rawTable) appendAny(ctx context.Context, stream string) error {
	_, err := t.upsert.ExecContext(ctx, t.id(newID()), stream, benchType, []byte(payload), metadataJSON)
	return err
}

// rawEvent is a row of raw_events, every column scanned.
type rawEvent struct {
	id        uuid.UUID
	stream    string
	version   int64
	typ       string
	data      []byte
	metadata  []byte
	createdAt time.Time
}

func scanRaw(rows *sql.Rows) ([]rawEvent, error) {
	defer rows.Close()
	var out []rawEvent
	for rows.Next() {
		var e rawEvent
		if err := rows.Scan(&e.id, &e.stream, &e.version, &e.typ, &e.data, &e.metadata, &e.createdAt); err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// read returns at most n events of a stream, in version order.
func (t *rawTable) read(ctx context.Context, stream string, n int) ([]rawEvent, error) {
	rows, err := t.readStream.QueryContext(ctx, stream, n)
	if err != nil {
		return nil, err
	}
	return scanRaw(rows)
}

// pageAfter returns the next n rows after (stream, version) in (stream_name, stream_version)
// order: keyset paging over the unique index.
func (t *rawTable) pageAfter(ctx context.Context, stream string, version int64, n int) ([]rawEvent, error) {
	rows, err := t.page.QueryContext(ctx, stream, version, n)
	if err != nil {
		return nil, err
	}
	return scanRaw(rows)
}

// newID is a new event id as the store generates them, time-ordered (version 7), for the
// baseline's rows and for the ids the latency and soak workloads choose: random ids would scatter
// the inserts over the primary-key index on one side only.
func newID() uuid.UUID { return uuid.Must(uuid.NewV7()) }
