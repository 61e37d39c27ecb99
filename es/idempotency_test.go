package es_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// withIDs returns events carrying the given ids.
func withIDs(ids ...uuid.UUID) []es.EventData {
	out := make([]es.EventData, len(ids))
	for i, id := range ids {
		out[i] = es.EventData{EventID: id, EventType: "t", Data: i}
	}
	return out
}

// The idempotency rules, the table in README.md "Idempotent appends". Each case starts from a
// stream "s" holding events a, b, c (versions 1..3, appended with NoStream) and a stream "other"
// holding x, then re-sends an append; a nil want means it succeeds and writes nothing.
func TestIdempotentAppends(t *testing.T) {
	t.Parallel()
	const n = 8 // fresh ids per case come after a, b, c, x
	type ids struct{ a, b, c, x, new1, new2 uuid.UUID }
	cases := []struct {
		name     string
		stream   string
		expected es.ExpectedVersion
		send     func(ids) []uuid.UUID
		want     error
	}{
		{"same append, NoStream", "s", es.NoStream, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.b, i.c} }, nil},
		{"same append, expected 0", "s", 0, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.b, i.c} }, nil},
		{"same append, AnyVersion", "s", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.b, i.c} }, nil},
		{"same append, StreamExists", "s", es.StreamExists, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.b, i.c} }, nil},
		{"tail at its exact version", "s", 1, func(i ids) []uuid.UUID { return []uuid.UUID{i.b, i.c} }, nil},
		{"one event at its exact version", "s", 2, func(i ids) []uuid.UUID { return []uuid.UUID{i.c} }, nil},
		{"middle, AnyVersion", "s", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.b} }, nil},
		{"prefix, NoStream", "s", es.NoStream, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.b} }, nil},
		{"wrong exact version", "s", 2, func(i ids) []uuid.UUID { return []uuid.UUID{i.b, i.c} }, es.ErrDuplicateEvent},
		{"not from the start, NoStream", "s", es.NoStream, func(i ids) []uuid.UUID { return []uuid.UUID{i.b, i.c} }, es.ErrDuplicateEvent},
		{"another order", "s", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.b, i.a} }, es.ErrDuplicateEvent},
		{"not contiguous", "s", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.c} }, es.ErrDuplicateEvent},
		{"partial overlap, new event last", "s", 2, func(i ids) []uuid.UUID { return []uuid.UUID{i.c, i.new1} }, es.ErrDuplicateEvent},
		{"partial overlap, new event first", "s", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.new1, i.a} }, es.ErrDuplicateEvent},
		{"id of another stream", "s", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.x} }, es.ErrDuplicateEvent},
		{"ids sent to another stream", "other", es.AnyVersion, func(i ids) []uuid.UUID { return []uuid.UUID{i.a, i.b, i.c} }, es.ErrDuplicateEvent},
		{"ids sent to a new stream", "fresh", es.NoStream, func(i ids) []uuid.UUID { return []uuid.UUID{i.a} }, es.ErrDuplicateEvent},
		{"new ids, stale version", "s", 1, func(i ids) []uuid.UUID { return []uuid.UUID{i.new1, i.new2} }, es.ErrWrongExpectedVersion},
		{"new ids, NoStream", "s", es.NoStream, func(i ids) []uuid.UUID { return []uuid.UUID{i.new1} }, es.ErrStreamExists},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store, db, ctx, is := estest.NewStore(t, nil), estest.DB(t), t.Context(), is.New(t)
			var fresh [n]uuid.UUID
			for j := range fresh {
				fresh[j] = uuid.New()
			}
			i := ids{a: fresh[0], b: fresh[1], c: fresh[2], x: fresh[3], new1: fresh[4], new2: fresh[5]}
			is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, withIDs(i.a, i.b, i.c)))
			is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, withIDs(i.x)))
			send := withIDs(tc.send(i)...)

			// Outside and inside a caller's transaction: same answer, nothing written, and the
			// transaction stays usable.
			err := store.AppendToStream(ctx, tc.stream, tc.expected, send)
			if tc.want == nil {
				is.NoErr(err)
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			tx, err := db.BeginTx(ctx, nil)
			is.NoErr(err)
			defer tx.Rollback()
			err = store.AppendToStream(ctx, tc.stream, tc.expected, send, es.WithTx(tx))
			if tc.want == nil {
				is.NoErr(err)
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("in a transaction: got %v, want %v", err, tc.want)
			}
			txUsable(ctx, t, tx, tc.name)
			is.NoErr(tx.Commit())

			got, err := store.ReadStreamForward(ctx, "s", 0, 10)
			is.NoErr(err)
			is.Equal(es.EventIDs(got), []uuid.UUID{i.a, i.b, i.c})
			all, err := store.StreamInfo(ctx, es.AllStream)
			is.NoErr(err)
			is.Equal(all.StreamVersion, int64(4)) // a, b, c, x: nothing more
		})
	}
}

// Idempotency survives a restart: it rests on the stored ids, not on the process's memory.
func TestIdempotentAppendAfterRestart(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	schema := estest.NewSchema(t)
	first, err := es.New(estest.DB(t), &es.Config{Schema: schema})
	is.NoErr(err)
	batch := withIDs(uuid.New(), uuid.New())
	is.NoErr(first.AppendToStream(ctx, "order-1", es.NoStream, batch))
	is.NoErr(first.Close())

	second, err := es.New(estest.DB(t), &es.Config{Schema: schema})
	is.NoErr(err)
	defer second.Close()
	is.NoErr(second.AppendToStream(ctx, "order-1", es.NoStream, batch))   // single-statement path
	is.NoErr(second.AppendToStream(ctx, "order-1", 1, batch[1:]))         // one-event path
	is.NoErr(second.AppendToStream(ctx, "order-1", es.AnyVersion, batch)) // any position
	info, err := second.StreamInfo(ctx, "order-1")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(2))
}

// Concurrent re-sends of one append: exactly one writes, all succeed.
func TestIdempotentConcurrentResends(t *testing.T) {
	store, ctx, is := setupAppend(t)
	batch := withIDs(uuid.New(), uuid.New(), uuid.New())
	errs := make(chan error, 6)
	for range cap(errs) {
		go func() { errs <- store.AppendToStream(ctx, "pay-1", es.AnyVersion, batch) }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(fmt.Errorf("a re-send failed: %w", err))
		}
	}
	info, err := store.StreamInfo(ctx, "pay-1")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(3))
}
