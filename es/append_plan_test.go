package es_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// Appends look events up by id, and streams by name, (ids the caller chose, WithAppendResult, links) through the
// primary key, never by scanning the events table: a plan made while the table was small, kept
// by the statement's plan cache as the table grew, made a 100-event append scan all 94,000
// events stored (20 ms) until autovacuum analyzed the table. The table's seq_scan counter counts
// every scan, whatever its size, so a fresh schema shows it at once.
func TestAppendsDoNotScanEvents(t *testing.T) {
	store, seqScans, ctx, is := setupScans(t)
	before := seqScans()
	for i := range 10 {
		is.NoErr(store.AppendToStream(ctx, "many", es.ExpectedVersion(10*i), events(10)))
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("one-%d", i), es.NoStream, events(1)))
		chosen := events(3)
		for j := range chosen {
			chosen[j].EventID = uuid.New()
		}
		var r es.AppendResult
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("chosen-%d", i), es.NoStream, chosen, es.WithAppendResult(&r)))
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("chosen-%d", i), es.NoStream, chosen)) // re-sent: idempotent
		is.NoErr(store.LinkToStream(ctx, fmt.Sprintf("linked-%d", i), es.AnyVersion, []uuid.UUID{chosen[0].EventID}))
	}
	_, err := store.ReadAllBackward(ctx, -1, 1) // the sequencer's pass too
	is.NoErr(err)
	is.Equal(seqScans()-before, int64(0)) // scans of the events and streams tables
}

// setupScans gives a store on a fresh schema whose pool has one connection, and a function that
// returns how many sequential scans its events and streams tables have seen: one backend, so
// its statistics are flushed before they are read.
func setupScans(t *testing.T) (*es.Store, func() int64, context.Context, *is.I) {
	t.Parallel()
	is, ctx := is.New(t), t.Context()
	db := pool(t, 1)
	schema := estest.NewSchema(t)
	store, err := es.New(db, &es.Config{Schema: schema, Logger: testLogger(t)})
	is.NoErr(err)
	t.Cleanup(func() { _ = store.Close() })
	return store, func() int64 {
		_, err := db.ExecContext(ctx, "SELECT pg_stat_force_next_flush()")
		is.NoErr(err)
		var n int64
		is.NoErr(db.QueryRowContext(ctx, "SELECT sum(seq_scan)::bigint FROM pg_stat_user_tables WHERE relid IN ($1::regclass, $2::regclass)",
			schema+".events", schema+".streams").Scan(&n))
		return n
	}, ctx, is
}
