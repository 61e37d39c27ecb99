package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// setupSegments returns a writer Store and a function opening more Stores on its schema, each
// standing for a process, with short leases and heartbeats so that rebalancing takes a fraction
// of a second.
func setupSegments(t *testing.T) (writer *es.Store, member func() *es.Store, ctx context.Context, is *is.I) {
	t.Parallel()
	writer = estest.NewStore(t, nil)
	member = func() *es.Store {
		return subscriberStore(t, estest.DB(t), writer.Schema(), es.Config{
			LeaseDuration: time.Second, LeaseRenewInterval: 100 * time.Millisecond,
			SubscriptionPollInterval: 20 * time.Millisecond,
		})
	}
	return writer, member, t.Context(), is.New(t)
}

// batchInsertHandler applies a batch as one multi-row INSERT into table (readModel's shape).
func batchInsertHandler(table string) es.Handler {
	return func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		var b strings.Builder
		args := make([]any, 0, 4*len(batch))
		b.WriteString(`INSERT INTO ` + table + ` (event_id, stream, version, position) VALUES `)
		for i, ev := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d)", 4*i+1, 4*i+2, 4*i+3, 4*i+4)
			args = append(args, ev.EventID, ev.StreamID, ev.StreamVersion, ev.EventNumber)
		}
		_, err := tx.ExecContext(ctx, b.String(), args...)
		return err
	}
}

// checkReadModel fails unless table holds want events, each stream's in version order of
// handling (seq), with no gap.
func checkReadModel(t *testing.T, table string, want int) {
	t.Helper()
	var n, streams, disorder, gaps int
	err := estest.DB(t).QueryRowContext(t.Context(), `
		WITH o AS (
			SELECT stream, version, lag(version) OVER (PARTITION BY stream ORDER BY seq) AS prev
			FROM `+table+`)
		SELECT count(*), count(DISTINCT stream),
		       count(*) FILTER (WHERE prev IS NOT NULL AND version <= prev),
		       count(*) FILTER (WHERE version <> coalesce(prev, 0) + 1)
		FROM o`).Scan(&n, &streams, &disorder, &gaps)
	if err != nil {
		t.Fatal(err)
	}
	if n != want || disorder != 0 || gaps != 0 {
		t.Fatalf("read model: %d events of %d streams, want %d; %d handled out of version order, %d after a gap", n, streams, want, disorder, gaps)
	}
}

// spread returns how many segments each holder's lease covers, from the database.
func spread(t *testing.T, store *es.Store, name string) map[string]int {
	t.Helper()
	subs, err := store.ListSubscriptions(t.Context(), es.ListSubscriptionsOptions{Stream: es.AllStream, NamePrefix: name})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, s := range subs {
		if s.Name != name {
			continue
		}
		h := ""
		if s.Held {
			h = s.Holder
		}
		out[h]++
	}
	return out
}

// heldCounts returns how many segments each projection holds, by its own account.
func heldCounts(ps ...*es.Projection) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = len(p.Segments())
	}
	return out
}

// waitHeld waits until the projections hold want segments between them, in any order (which
// member takes one more than another depends on its random holder id).
func waitHeld(t *testing.T, want []int, ps ...*es.Projection) {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	waitFor(t, func() string { return fmt.Sprint("segments held: ", heldCounts(ps...), ", want ", want) },
		func() bool { return slices.Equal(slices.Sorted(slices.Values(heldCounts(ps...))), want) })
}

func appendStreams(t *testing.T, store *es.Store, prefix string, streams, perStream int) {
	t.Helper()
	for i := range streams {
		if err := store.AppendToStream(t.Context(), fmt.Sprintf("%s-%d", prefix, i), es.AnyVersion, events(perStream)); err != nil {
			t.Fatal(err)
		}
	}
}

// Processes (Stores) join and leave a segmented projection while events flow: every event is
// handled once, each stream's in order, and the segments end evenly spread.
func TestSegmentedProjectionRebalances(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	table := readModel(t, writer)
	appendStreams(t, writer, "acc", 40, 10)
	opts := &es.ProjectionOptions{Segments: 8, SubscriptionOptions: es.SubscriptionOptions{BufferSize: 16}}

	m1, m2, m3 := member(), member(), member()
	p1, err := m1.Project(ctx, es.AllStream, "seg", opts, batchInsertHandler(table))
	is.NoErr(err)
	subscribedProjection(t, p1)
	waitHeld(t, []int{8}, p1)
	checkpointReaches(t, writer, es.AllStream, "seg", 400)
	checkReadModel(t, table, 400)

	p2, err := m2.Project(ctx, es.AllStream, "seg", opts, batchInsertHandler(table))
	is.NoErr(err)
	appendStreams(t, writer, "acc", 40, 5)
	waitHeld(t, []int{4, 4}, p1, p2)
	p3, err := m3.Project(ctx, es.AllStream, "seg", opts, batchInsertHandler(table))
	is.NoErr(err)
	appendStreams(t, writer, "acc", 40, 5)
	waitHeld(t, []int{3, 3, 2}, p1, p2, p3)
	is.Equal(len(spread(t, writer, "seg")), 3) // three holders in the database, none free

	// A clean leave: the others share its segments out.
	is.NoErr(p2.Close())
	is.NoErr(p2.Err())
	appendStreams(t, writer, "acc", 40, 5)
	waitHeld(t, []int{4, 0, 4}, p1, p2, p3)

	// Read-your-writes through every segment.
	var r es.AppendResult
	is.NoErr(writer.AppendToStream(ctx, "acc-7", 25, events(1), es.WithAppendResult(&r)))
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	is.NoErr(writer.WaitFor(wctx, es.AllStream, "seg", &r))
	checkReadModel(t, table, 40*25+1)

	subs, err := writer.ListSubscriptions(ctx, es.ListSubscriptionsOptions{Stream: es.AllStream, NamePrefix: "seg"})
	is.NoErr(err)
	is.Equal(len(subs), 8)
	for i, s := range subs {
		is.Equal(s.Segment, i)
		is.Equal(s.Segments, 8)
	}
	is.NoErr(p1.Close())
	is.NoErr(p3.Close())
}

// The number of segments is fixed while the subscription exists; the admin calls act on every
// segment.
func TestSegmentedProjectionAdmin(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	table := readModel(t, writer)
	appendStreams(t, writer, "acc", 10, 2)
	h := batchInsertHandler(table)
	for _, n := range []int{-1, es.MaxSegments + 1} {
		_, err := writer.Project(ctx, es.AllStream, "bad", &es.ProjectionOptions{Segments: n}, h)
		is.True(errors.Is(err, es.ErrInvalidArgument)) // Segments out of range
	}
	_, err := writer.Project(ctx, "acc-1", "bad", &es.ProjectionOptions{Segments: 2}, h)
	is.True(errors.Is(err, es.ErrInvalidArgument)) // one stream, one key: nothing to split without PartitionBy

	m := member()
	p, err := m.Project(ctx, es.AllStream, "seg", &es.ProjectionOptions{Segments: 4}, h)
	is.NoErr(err)
	subscribedProjection(t, p)
	_, err = m.Project(ctx, es.AllStream, "seg", &es.ProjectionOptions{Segments: 4}, h)
	is.True(errors.Is(err, es.ErrSubscriptionExists)) // already runs in this process
	_, err = writer.Project(ctx, es.AllStream, "seg", &es.ProjectionOptions{Segments: 8}, h)
	is.True(errors.Is(err, es.ErrSegmentCount))
	_, err = writer.Project(ctx, es.AllStream, "seg", nil, h)
	is.True(errors.Is(err, es.ErrSegmentCount))
	_, err = writer.SubscribeToStream(ctx, es.AllStream, "seg", nil)
	is.True(errors.Is(err, es.ErrSegmentCount))
	plain, err := writer.SubscribeToStream(ctx, es.AllStream, "plain", nil)
	is.NoErr(err)
	is.NoErr(plain.Close())
	_, err = writer.Project(ctx, es.AllStream, "plain", &es.ProjectionOptions{Segments: 2}, h)
	is.True(errors.Is(err, es.ErrSegmentCount))

	checkpointReaches(t, writer, es.AllStream, "seg", 20)
	checkReadModel(t, table, 20)
	err = writer.SetSubscriptionCheckpoint(ctx, es.AllStream, "seg", 0)
	is.True(errors.Is(err, es.ErrSubscriptionActive)) // segments held
	is.NoErr(p.Close())
	is.NoErr(writer.SetSubscriptionCheckpoint(ctx, es.AllStream, "seg", 0))
	subs, err := writer.ListSubscriptions(ctx, es.ListSubscriptionsOptions{Stream: es.AllStream, NamePrefix: "seg"})
	is.NoErr(err)
	is.Equal(len(subs), 4)
	for _, s := range subs {
		is.Equal(s.Checkpoint, int64(0)) // every segment moved
	}

	// A delete ends the projection in every process.
	_, err = estest.DB(t).ExecContext(ctx, `TRUNCATE `+table)
	is.NoErr(err)
	p, err = m.Project(ctx, es.AllStream, "seg", &es.ProjectionOptions{Segments: 4}, h)
	is.NoErr(err)
	checkpointReaches(t, writer, es.AllStream, "seg", 20)
	checkReadModel(t, table, 20) // replayed from 0, once
	is.NoErr(writer.DeleteSubscription(ctx, es.AllStream, "seg"))
	select {
	case <-p.Done():
	case <-time.After(wait):
		t.Fatal("projection still running after its subscription was deleted")
	}
	is.True(errors.Is(p.Err(), es.ErrSubscriptionNotFound))
}

// A poison event is parked in its segment; the other segments, and the other keys of its own,
// flow; a retry reaches the segment that parked it.
func TestSegmentedProjectionParks(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	table := readModel(t, writer)
	appendStreams(t, writer, "acc", 20, 3)
	is.NoErr(writer.AppendToStream(ctx, "poison-1", es.NoStream, events(3)))
	var fixed atomic.Bool
	h := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if ev.StreamID == "poison-1" && ev.StreamVersion == 2 && !fixed.Load() {
				return errors.New("poison")
			}
		}
		return batchInsertHandler(table)(ctx, tx, batch)
	}
	// Keyed by PartitionBy (the stream again): segments are chosen as events are read.
	opts := &es.ProjectionOptions{Segments: 4, MaxAttempts: 2, MinBackoff: 10 * time.Millisecond, ParkedCheckInterval: 50 * time.Millisecond,
		SubscriptionOptions: es.SubscriptionOptions{PartitionBy: func(ev es.RecordedEvent) string { return ev.StreamID }}}
	p, err := member().Project(ctx, es.AllStream, "seg", opts, h)
	is.NoErr(err)
	checkpointReaches(t, writer, es.AllStream, "seg", 63)
	parked, err := writer.ListParked(ctx, es.AllStream, "seg")
	is.NoErr(err)
	is.Equal(len(parked), 2) // poison-1@2 parked, poison-1@3 waiting behind it
	is.Equal(rows(t, table), 61)
	fixed.Store(true)
	n, err := writer.RetryParked(ctx, es.AllStream, "seg")
	is.NoErr(err)
	is.Equal(n, 1)
	waitFor(t, func() string { return fmt.Sprint(rows(t, table), " rows") }, func() bool { return rows(t, table) == 63 })
	checkReadModel(t, table, 63)
	is.NoErr(p.Close())
}

// Two processes create one name at once, with different numbers of segments (or one as a plain
// subscription): one wins whole, the other gets ErrSegmentCount, and the rows stay consistent.
func TestSegmentedProjectionConcurrentCreate(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	a, b := member(), member()
	h := func(context.Context, *sql.Tx, []es.RecordedEvent) error { return nil }
	for i := range 20 {
		name := fmt.Sprintf("race-%d", i)
		var wg sync.WaitGroup
		var errA, errB error
		var pa, pb *es.Projection
		wg.Go(func() { pa, errA = a.Project(ctx, es.AllStream, name, &es.ProjectionOptions{Segments: 4}, h) })
		wg.Go(func() {
			if i%2 == 0 {
				pb, errB = b.Project(ctx, es.AllStream, name, &es.ProjectionOptions{Segments: 8}, h)
			} else {
				errB = b.SetSubscriptionCheckpoint(ctx, es.AllStream, name, 0)
			}
		})
		wg.Wait()
		for _, p := range []*es.Projection{pa, pb} {
			if p != nil {
				is.NoErr(p.Close())
			}
		}
		subs, err := writer.ListSubscriptions(ctx, es.ListSubscriptionsOptions{Stream: es.AllStream, NamePrefix: name})
		is.NoErr(err)
		n := subs[0].Segments
		is.Equal(len(subs), n) // one creator's rows, whole
		for _, s := range subs {
			is.Equal(s.Segments, n)
		}
		switch n {
		case 4:
			is.NoErr(errA)
			if i%2 == 0 {
				is.True(errors.Is(errB, es.ErrSegmentCount))
			} else {
				is.True(errB == nil || errors.Is(errB, es.ErrSubscriptionActive)) // set on the winner's segments, or refused once it runs
			}
		default:
			is.True(errors.Is(errA, es.ErrSegmentCount))
			is.NoErr(errB)
		}
	}
}

// A handler running when its segment is handed to a joining process commits its batch first:
// nothing is rolled back and done again.
func TestSegmentHandBackCommitsBatchInFlight(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	table := readModel(t, writer)
	appendStreams(t, writer, "acc", 8, 1)
	var calls atomic.Int64
	var mu sync.Mutex
	given := map[int64]int{} // how many times each event was handed to the handler
	release := make(chan struct{})
	insert := batchInsertHandler(table)
	h := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		calls.Add(1)
		mu.Lock()
		for _, ev := range batch {
			given[ev.EventNumber]++
		}
		mu.Unlock()
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return insert(ctx, tx, batch)
	}
	opts := &es.ProjectionOptions{Segments: 2}
	p1, err := member().Project(ctx, es.AllStream, "seg", opts, h)
	is.NoErr(err)
	waitHeld(t, []int{2}, p1)
	waitFor(t, func() string { return fmt.Sprint(calls.Load(), " handler calls") }, func() bool { return calls.Load() >= 2 }) // both segments' batches in flight
	p2, err := member().Project(ctx, es.AllStream, "seg", opts, h)
	is.NoErr(err)
	// Two heartbeats of p1 after p2's membership row exists: p1 has seen p2 short of its share
	// and asked one of its segments to hand itself back.
	beats := `SELECT expires_at FROM ` + writer.Schema() + `.subscription_members
		WHERE subscription_name = 'seg' ORDER BY expires_at LIMIT 1`
	waitFor(t, func() string { return "p2's membership" }, func() bool {
		var n int
		is.NoErr(estest.DB(t).QueryRowContext(ctx, `SELECT count(*) FROM `+writer.Schema()+`.subscription_members WHERE subscription_name = 'seg'`).Scan(&n))
		return n == 2
	})
	for range 2 {
		var last time.Time
		is.NoErr(estest.DB(t).QueryRowContext(ctx, beats).Scan(&last))
		waitFor(t, func() string { return "a heartbeat of every member" }, func() bool {
			var oldest time.Time
			is.NoErr(estest.DB(t).QueryRowContext(ctx, beats).Scan(&oldest))
			return oldest.After(last)
		})
	}
	is.Equal(len(p2.Segments()), 0) // not before the batch in flight commits
	is.Equal(len(p1.Segments()), 2) // the segment handed back is held until then
	close(release)
	waitHeld(t, []int{1, 1}, p1, p2)
	waitFor(t, func() string { return fmt.Sprint(rows(t, table), " rows") }, func() bool { return rows(t, table) == 8 })
	checkReadModel(t, table, 8)
	mu.Lock()
	defer mu.Unlock()
	for pos, n := range given {
		is.Equal(n, 1) // no event handed to the handler twice: no batch rolled back and run again
		_ = pos
	}
	is.Equal(len(given), 8)
	is.NoErr(p1.Close())
	is.NoErr(p2.Close())
}

// A PartitionBy that panics keys the event by its stream: the process goes on.
func TestSegmentedProjectionPartitionByPanics(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	table := readModel(t, writer)
	appendStreams(t, writer, "acc", 6, 2)
	p, err := member().Project(ctx, es.AllStream, "seg", &es.ProjectionOptions{Segments: 3,
		SubscriptionOptions: es.SubscriptionOptions{PartitionBy: func(ev es.RecordedEvent) string {
			if ev.StreamID == "acc-2" {
				panic("cannot key this event")
			}
			return ev.StreamID
		}}}, batchInsertHandler(table))
	is.NoErr(err)
	checkpointReaches(t, writer, es.AllStream, "seg", 12)
	checkReadModel(t, table, 12)
	is.NoErr(p.Close())
}

// Shutdown stays bounded by its context while a segment's handler ignores its own.
func TestSegmentedProjectionShutdownBounded(t *testing.T) {
	writer, member, ctx, is := setupSegments(t)
	appendStreams(t, writer, "acc", 4, 1)
	stuck := make(chan struct{})
	defer close(stuck)
	entered := make(chan struct{}, 4)
	m := member()
	_, err := m.Project(ctx, es.AllStream, "seg", &es.ProjectionOptions{Segments: 2}, func(context.Context, *sql.Tx, []es.RecordedEvent) error {
		entered <- struct{}{}
		<-stuck // ignores its context
		return nil
	})
	is.NoErr(err)
	<-entered
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err = m.Shutdown(sctx) // unbounded, it would wait for the handler: forever here
	is.True(errors.Is(err, context.DeadlineExceeded))
}
