package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

func TestAppendToStreams(t *testing.T) {
	store, ctx, is := setupAppend(t)
	is.NoErr(store.AppendToStream(ctx, "account-1", es.NoStream, events(2)))
	is.NoErr(store.AppendToStream(ctx, "limits", es.NoStream, events(1)))

	is.NoErr(store.AppendToStreams(ctx, []es.StreamAppend{
		{Stream: "account-2", Expected: es.NoStream, Events: events(1)},
		{Stream: "account-1", Expected: 2, Events: events(2)},
		{Stream: "limits", Expected: 1}, // only checked
	}))
	version := func(stream string) int64 {
		t.Helper()
		info, err := store.StreamInfo(ctx, stream)
		if errors.Is(err, es.ErrStreamNotFound) {
			return 0
		}
		is.NoErr(err)
		return info.StreamVersion
	}
	is.Equal(version("account-1"), int64(4))
	is.Equal(version("account-2"), int64(1))
	is.Equal(version("limits"), int64(1))

	// Any refusal, written or checked stream, leaves every stream as it was.
	refusals := []struct {
		name    string
		appends []es.StreamAppend
		want    error
	}{
		{"wrong version of a written stream", []es.StreamAppend{
			{Stream: "account-1", Expected: 4, Events: events(1)}, {Stream: "account-2", Expected: 5, Events: events(1)},
		}, es.ErrWrongExpectedVersion},
		{"wrong version of a checked stream", []es.StreamAppend{
			{Stream: "account-1", Expected: 4, Events: events(1)}, {Stream: "limits", Expected: 2},
		}, es.ErrWrongExpectedVersion},
		{"checked stream missing", []es.StreamAppend{
			{Stream: "zzz-new", Expected: es.NoStream, Events: events(1)}, {Stream: "missing", Expected: es.StreamExists},
		}, es.ErrStreamNotFound},
		{"checked stream exists", []es.StreamAppend{
			{Stream: "zzz-new", Expected: es.NoStream, Events: events(1)}, {Stream: "limits", Expected: es.NoStream},
		}, es.ErrStreamExists},
		{"new stream exists", []es.StreamAppend{
			{Stream: "zzz-new", Expected: es.NoStream, Events: events(1)}, {Stream: "account-2", Expected: es.NoStream, Events: events(1)},
		}, es.ErrStreamExists},
		{"duplicate id in another stream", []es.StreamAppend{
			{Stream: "account-1", Expected: es.AnyVersion, Events: events(1)},
			{Stream: "zzz-new", Expected: es.AnyVersion, Events: withIDs(uuid.New(), mustFirstID(t, store, "account-2"))},
		}, es.ErrDuplicateEvent},
		{"same id twice in the call", func() []es.StreamAppend {
			id := uuid.New()
			return []es.StreamAppend{{Stream: "a", Expected: es.AnyVersion, Events: withIDs(id)}, {Stream: "b", Expected: es.AnyVersion, Events: withIDs(id)}}
		}(), es.ErrDuplicateEvent},
		{"stream twice", []es.StreamAppend{
			{Stream: "a", Expected: es.AnyVersion, Events: events(1)}, {Stream: "a", Expected: es.AnyVersion},
		}, es.ErrInvalidArgument},
		{"nothing to write", []es.StreamAppend{{Stream: "limits", Expected: 1}}, es.ErrInvalidArgument},
		{"no appends", nil, es.ErrInvalidArgument},
		{"$all", []es.StreamAppend{{Stream: es.AllStream, Expected: es.AnyVersion, Events: events(1)}}, es.ErrCannotAppendToAll},
		{"bad name", []es.StreamAppend{
			{Stream: "a", Expected: es.AnyVersion, Events: events(1)}, {Stream: "b\x00", Expected: es.AnyVersion},
		}, es.ErrInvalidArgument},
	}
	db := estest.DB(t)
	for _, r := range refusals {
		if err := store.AppendToStreams(ctx, r.appends); !errors.Is(err, r.want) {
			t.Errorf("%s: got %v, want %v", r.name, err, r.want)
		}
		tx, err := db.BeginTx(ctx, nil)
		is.NoErr(err)
		if err := store.AppendToStreams(ctx, r.appends, es.WithTx(tx)); !errors.Is(err, r.want) {
			t.Errorf("%s, in a transaction: got %v, want %v", r.name, err, r.want)
		}
		txUsable(ctx, t, tx, r.name)
		is.NoErr(tx.Commit())
	}
	is.Equal(version("account-1"), int64(4))
	is.Equal(version("account-2"), int64(1))
	is.Equal(version("zzz-new"), int64(0))
	is.Equal(version("a"), int64(0))
	all, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(all.StreamVersion, int64(6))

	// Inside a caller's transaction: the caller's earlier work survives a refusal, and a success
	// commits with it.
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.AppendToStream(ctx, "mine", es.NoStream, events(1), es.WithTx(tx)))
	err = store.AppendToStreams(ctx, []es.StreamAppend{
		{Stream: "account-1", Expected: 4, Events: events(1)}, {Stream: "limits", Expected: 9},
	}, es.WithTx(tx))
	is.True(errors.Is(err, es.ErrWrongExpectedVersion))
	is.NoErr(store.AppendToStreams(ctx, []es.StreamAppend{
		{Stream: "account-1", Expected: 4, Events: events(1)}, {Stream: "mine", Expected: 1, Events: events(1)},
	}, es.WithTx(tx)))
	is.NoErr(tx.Commit())
	is.Equal(version("mine"), int64(2))
	is.Equal(version("account-1"), int64(5))

	// Re-sending a whole multi-stream append is idempotent.
	again := []es.StreamAppend{
		{Stream: "r-1", Expected: es.NoStream, Events: withIDs(uuid.New(), uuid.New())},
		{Stream: "r-2", Expected: es.NoStream, Events: withIDs(uuid.New())},
	}
	is.NoErr(store.AppendToStreams(ctx, again))
	is.NoErr(store.AppendToStreams(ctx, again))
	is.Equal(version("r-1"), int64(2))
	is.Equal(version("r-2"), int64(1))
}

func mustFirstID(t *testing.T, store *es.Store, stream string) uuid.UUID {
	t.Helper()
	evs, err := store.ReadStreamForward(t.Context(), stream, 0, 1)
	if err != nil || len(evs) == 0 {
		t.Fatalf("read %s: %v", stream, err)
	}
	return evs[0].EventID
}

// Eight writers make multi-stream appends over overlapping streams, listed in random orders, with
// exact and any expected versions and checked streams, inside and outside their own transactions
// (some rolled back): no deadlock (Postgres would report one as an error), and every append is
// all or nothing.
func TestAppendToStreamsConcurrently(t *testing.T) {
	t.Parallel()
	store, db, ctx, is := estest.NewStore(t, nil), estest.DB(t), t.Context(), is.New(t)
	streams := []string{"m-0", "m-1", "m-2", "m-3", "m-4", "m-5"}
	const writers, calls = 8, 25

	type outcome struct {
		written   []string // streams given events
		committed bool
	}
	var (
		mu       sync.Mutex
		outcomes = map[string]*outcome{}
		wg       sync.WaitGroup
		failures = make(chan error, writers)
	)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for c := range calls {
				call := fmt.Sprintf("w%d-c%d", w, c)
				picked := slices.Clone(streams)
				rng.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
				picked = picked[:2+rng.IntN(3)]
				var appends []es.StreamAppend
				out := &outcome{}
				for k, stream := range picked {
					expected := es.AnyVersion
					if rng.IntN(4) == 0 { // an exact version, which may be stale by now
						info, err := store.StreamInfo(ctx, stream)
						if err == nil {
							expected = es.ExpectedVersion(info.StreamVersion)
						} else if errors.Is(err, es.ErrStreamNotFound) {
							expected = es.NoStream
						}
					}
					if k > 0 && rng.IntN(3) == 0 {
						appends = append(appends, es.StreamAppend{Stream: stream, Expected: expected})
						continue
					}
					out.written = append(out.written, stream)
					appends = append(appends, es.StreamAppend{Stream: stream, Expected: expected, Events: []es.EventData{
						{EventType: "multi", Data: call, Metadata: map[string]any{"call": call}},
					}})
				}
				var err error
				inTx, rollback := rng.IntN(2) == 0, rng.IntN(5) == 0
				if inTx {
					err = multiAppendInTx(ctx, db, store, appends, rollback)
				} else {
					err = store.AppendToStreams(ctx, appends)
				}
				switch {
				case err == nil:
					out.committed = !(inTx && rollback)
				case errors.Is(err, es.ErrWrongExpectedVersion), errors.Is(err, es.ErrStreamExists), errors.Is(err, es.ErrStreamNotFound):
				default:
					failures <- fmt.Errorf("%s: %w", call, err)
					return
				}
				mu.Lock()
				outcomes[call] = out
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Error(err)
	}

	// Every committed call's events are in exactly the streams it wrote, once; no other call's
	// events are anywhere.
	found := map[string][]string{}
	for _, stream := range streams {
		evs, err := store.ReadStreamForward(ctx, stream, 0, 100_000)
		if errors.Is(err, es.ErrStreamNotFound) {
			continue
		}
		is.NoErr(err)
		for i, ev := range evs {
			is.Equal(ev.EventNumber, int64(i+1))
			call := ev.Metadata["call"].(string)
			found[call] = append(found[call], stream)
		}
	}
	committed := 0
	for call, out := range outcomes {
		got := found[call]
		slices.Sort(got)
		want := []string(nil)
		if out.committed {
			committed++
			want = slices.Clone(out.written)
			slices.Sort(want)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: events in %v, want %v", call, got, want)
		}
	}
	is.True(committed > 0)
	t.Logf("%d calls, %d committed", len(outcomes), committed)
	all, err := store.ReadAllForward(ctx, 0, 100_000)
	is.NoErr(err)
	total := 0
	for _, streams := range found {
		total += len(streams)
	}
	is.Equal(len(all), total)
	for i, ev := range all {
		is.Equal(ev.EventNumber, int64(i+1)) // gap-free
	}
}

func multiAppendInTx(ctx context.Context, db *sql.DB, store *es.Store, appends []es.StreamAppend, rollback bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := store.AppendToStreams(ctx, appends, es.WithTx(tx)); err != nil {
		return err
	}
	if rollback {
		return tx.Rollback()
	}
	return tx.Commit()
}

// Outside a caller's transaction, concurrent re-sends of one multi-stream append with chosen ids
// all succeed and exactly one writes, as for AppendToStream: a re-send whose insert lost the race
// to the first commit is decided again in a new transaction.
func TestAppendToStreamsConcurrentResends(t *testing.T) {
	t.Parallel()
	store, ctx, is := estest.NewStore(t, nil), t.Context(), is.New(t)
	for round := range 5 {
		parts := []es.StreamAppend{
			{Stream: fmt.Sprintf("resend-a-%d", round), Expected: es.AnyVersion, Events: events(3)},
			{Stream: fmt.Sprintf("resend-b-%d", round), Expected: es.NoStream, Events: events(1)},
		}
		for _, p := range parts {
			for i := range p.Events {
				p.Events[i].EventID = uuid.New()
			}
		}
		const writers = 6
		errs := make([]error, writers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				<-start
				errs[w] = store.AppendToStreams(ctx, parts)
			})
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			is.NoErr(err) // every re-send succeeds
		}
		for _, p := range parts {
			got, err := store.ReadStreamForward(ctx, p.Stream, 0, 10)
			is.NoErr(err)
			is.Equal(len(got), len(p.Events)) // written once
			for i, ev := range got {
				is.Equal(ev.EventID, p.Events[i].EventID)
			}
		}
	}
}
