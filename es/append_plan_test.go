package es_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
)

// Appends look events up by id (ids the caller chose, WithAppendResult, links, re-sent appends)
// through the primary key, never by scanning the events table, whatever its statistics say:
// prepared statements keep a plan made with the statistics of the moment, and a plan that scans
// a small table kept scanning it as it grew (20 ms per 100-event append at 94,000 events; 100
// scans per 100-event append with chosen ids once autovacuum had analyzed the table at 60
// events). The seq_scan counters count every scan whatever the table's size, so a small table
// shows the plans at once.
func TestAppendsDoNotScanEvents(t *testing.T) {
	t.Parallel()
	is, ctx := is.New(t), t.Context()

	// A schema never analyzed: no append scans the events or the streams table at all.
	fresh := setupScans(t)
	before := fresh.seqScans("events", "streams")
	for i := range 5 {
		is.NoErr(fresh.store.AppendToStream(ctx, "many", es.ExpectedVersion(10*i), events(10)))
		is.NoErr(fresh.store.AppendToStream(ctx, fmt.Sprintf("one-%d", i), es.NoStream, events(1)))
		is.Equal(fresh.appendsByID(fmt.Sprint(i), true), int64(0)) // scans of the events table by lookups of events by id
	}
	_, err := fresh.store.ReadAllBackward(ctx, -1, 1) // the sequencer's passes too
	is.NoErr(err)
	is.Equal(fresh.seqScans("events", "streams")-before, int64(0)) // scans of the events and streams tables

	// A schema analyzed at 60 events (one page), as autovacuum first does, the statements planned
	// after it: the store's lookups of events by id still probe the primary key. (Other
	// statements may scan the small tables then, as PostgreSQL plans them, until its next
	// ANALYZE; so does PostgreSQL's own foreign-key check of each link, which is why links are
	// left out here.)
	small := setupScans(t)
	is.NoErr(small.store.AppendToStream(ctx, "seed", es.NoStream, events(60)))
	for _, table := range []string{"events", "streams", "links"} {
		_, err := small.db.ExecContext(ctx, "ANALYZE "+small.schema+"."+table)
		is.NoErr(err)
	}
	for i := range 5 {
		is.Equal(small.appendsByID(fmt.Sprint(i), false), int64(0)) // scans of the events table by lookups of events by id
	}
	before = small.seqScans("events")
	for i := range 3 {
		is.NoErr(small.store.AppendToStream(ctx, fmt.Sprint("late-", i), es.NoStream, events(10)))
	}
	_, err = small.store.ReadAllBackward(ctx, -1, 1) // a sequencer pass numbers them, then one event of $all
	is.NoErr(err)
	is.Equal(small.seqScans("events")-before, int64(0)) // scans of the events table by the appends, the pass and the read
}

// scans is a store on a fresh schema, never analyzed unless a test does, whose pool has one
// connection: one backend, so its statistics can be flushed before they are read. Its sequencer
// passes only when a read settles $all, so that each count covers the statements it is about.
type scans struct {
	t      *testing.T
	store  *es.Store
	db     *sql.DB
	schema string
}

func setupScans(t *testing.T) *scans {
	db := pool(t, 1)
	// Migrated on this pool's one connection too: another backend's statistics (the migrations
	// scan the events table) reach the counters up to seconds later, whenever it flushes them.
	schema := estest.NewSchemaName(t)
	if _, err := goose.UpWithOptions(t.Context(), db, schema, goose.Options{DataType: goose.DataType(os.Getenv("ES_TEST_DATA_TYPE"))}); err != nil {
		t.Fatal(err)
	}
	store, err := es.New(db, &es.Config{Schema: schema, Logger: testLogger(t), SequencerInterval: time.Hour, SequencerDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	for _, table := range []string{"events", "streams", "links", "all_events"} {
		// No autovacuum: its ANALYZE, at a moment of its choosing, would change the plans.
		if _, err := db.ExecContext(t.Context(), "ALTER TABLE "+schema+"."+table+" SET (autovacuum_enabled = false)"); err != nil {
			t.Fatal(err)
		}
	}
	return &scans{t: t, store: store, db: db, schema: schema}
}

// seqScans is how many sequential scans the tables have seen.
func (s *scans) seqScans(tables ...string) int64 {
	is, ctx := is.New(s.t), context.Background()
	_, err := s.db.ExecContext(ctx, "SELECT pg_stat_force_next_flush()")
	is.NoErr(err)
	var n int64
	for _, table := range tables {
		var c int64
		is.NoErr(s.db.QueryRowContext(ctx, "SELECT seq_scan FROM pg_stat_user_tables WHERE relid = $1::regclass", s.schema+"."+table).Scan(&c))
		n += c
	}
	return n
}

// appendsByID runs the appends that look events up by id (100 chosen ids with WithAppendResult,
// their re-send, one chosen id, and with link a link of the 100) and returns the events table's
// scans meanwhile.
func (s *scans) appendsByID(name string, link bool) int64 {
	is, ctx := is.New(s.t), s.t.Context()
	chosen := events(100)
	ids := make([]uuid.UUID, len(chosen))
	for j := range chosen {
		chosen[j].EventID = uuid.New()
		ids[j] = chosen[j].EventID
	}
	one := events(1)
	one[0].EventID = uuid.New()
	before := s.seqScans("events")
	var r es.AppendResult
	is.NoErr(s.store.AppendToStream(ctx, "chosen-"+name, es.NoStream, chosen, es.WithAppendResult(&r)))
	is.NoErr(s.store.AppendToStream(ctx, "chosen-"+name, es.NoStream, chosen)) // re-sent: idempotent
	is.NoErr(s.store.AppendToStream(ctx, "chosen-"+name, 100, one))            // one event, its id chosen
	n := s.seqScans("events") - before
	if link {
		is.NoErr(s.store.LinkToStream(ctx, "linked-"+name, es.AnyVersion, ids))
		n = s.seqScans("events") - before
	}
	return n
}
