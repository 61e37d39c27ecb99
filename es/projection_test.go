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

// readModel creates a read-model table in store's schema whose primary key is the event id: a
// second application of an event is a unique violation.
func readModel(t testing.TB, store *es.Store) string {
	t.Helper()
	table := store.Schema() + ".read_model"
	_, err := estest.DB(t).ExecContext(t.Context(), `CREATE TABLE `+table+` (
		event_id uuid PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL, position bigint NOT NULL,
		seq bigserial)`)
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// insertHandler applies each event as one row of table.
func insertHandler(table string) es.Handler {
	return func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (event_id, stream, version, position) VALUES ($1, $2, $3, $4)`,
				ev.EventID, ev.StreamID, ev.StreamVersion, ev.EventNumber); err != nil {
				return err
			}
		}
		return nil
	}
}

// rows counts table's rows.
func rows(t testing.TB, table string) int {
	t.Helper()
	var n int
	if err := estest.DB(t).QueryRowContext(t.Context(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func subscribedProjection(t *testing.T, p *es.Projection) {
	t.Helper()
	select {
	case <-p.Subscribed():
	case <-time.After(wait):
		t.Fatal("projection not subscribed")
	}
}

func TestProjectionAppliesOnce(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	for i := range 5 {
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("acc-%d", i), es.NoStream, events(20)))
	}
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		SubscriptionOptions: es.SubscriptionOptions{BufferSize: 7},
	}, insertHandler(table))
	is.NoErr(err)
	subscribedProjection(t, p)
	checkpointReaches(t, store, es.AllStream, "rm", 100)
	is.Equal(rows(t, table), 100)
	is.NoErr(p.Close())
	is.NoErr(p.Err())

	// Restarted: nothing is applied twice; new events are.
	is.NoErr(store.AppendToStream(ctx, "acc-0", 20, events(3)))
	p, err = store.Project(ctx, es.AllStream, "rm", nil, insertHandler(table))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rm", 103)
	is.Equal(rows(t, table), 103)
	is.NoErr(p.Close())
}

func TestProjectionOptions(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	h := insertHandler("x")
	_, err := store.Project(ctx, es.AllStream, "p", &es.ProjectionOptions{SubscriptionOptions: es.SubscriptionOptions{Transient: true}}, h)
	is.True(errors.Is(err, es.ErrInvalidArgument))
	_, err = store.Project(ctx, es.AllStream, "p", &es.ProjectionOptions{SubscriptionOptions: es.SubscriptionOptions{ConcurrencyLimit: 2}}, h)
	is.True(errors.Is(err, es.ErrInvalidArgument))
	_, err = store.Project(ctx, es.AllStream, "p", &es.ProjectionOptions{MaxAttempts: -1}, h)
	is.True(errors.Is(err, es.ErrInvalidArgument))
	_, err = store.Project(ctx, es.AllStream, "p", nil, nil)
	is.True(errors.Is(err, es.ErrInvalidArgument))
	for _, o := range []*sql.TxOptions{{ReadOnly: true}, {Isolation: sql.LevelLinearizable}, {Isolation: sql.LevelSnapshot}} {
		_, err = store.Project(ctx, es.AllStream, "p", &es.ProjectionOptions{TxOptions: o}, h)
		is.True(errors.Is(err, es.ErrInvalidArgument)) // a transaction that could never commit
	}
	p, err := store.Project(ctx, es.AllStream, "p", nil, h)
	is.NoErr(err)
	_, err = store.Project(ctx, es.AllStream, "p", nil, h)
	is.True(errors.Is(err, es.ErrSubscriptionExists))
	is.NoErr(p.Close())
}

// The lease is stolen while a handler runs: its transaction's checkpoint write is fenced, so the
// handler's effects roll back; the projection takes the lease again and applies the batch once.
// Every event ends applied exactly once (the read model's primary key is the event id).
func TestProjectionLeaseStolenMidBatch(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer, store := leaseFaultStores(t, 20*time.Millisecond, true)
	table := readModel(t, writer)
	for i := range 10 {
		is.NoErr(writer.AppendToStream(ctx, fmt.Sprintf("acc-%d", i), es.NoStream, events(20)))
	}

	inHandler, stolen := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var failures []error
	inner := insertHandler(table)
	handler := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		err := inner(ctx, tx, batch)
		if err != nil {
			mu.Lock()
			failures = append(failures, err)
			mu.Unlock()
			return err
		}
		if batch[len(batch)-1].EventNumber >= 100 {
			once.Do(func() {
				close(inHandler)
				<-stolen // the checkpoint write that follows is fenced
			})
		}
		return nil
	}
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		SubscriptionOptions: es.SubscriptionOptions{BufferSize: 9, RetryInterval: 20 * time.Millisecond},
	}, handler)
	is.NoErr(err)
	<-inHandler
	stealLease(t, writer, es.AllStream, "rm")
	close(stolen)
	for i := range 10 {
		is.NoErr(writer.AppendToStream(ctx, fmt.Sprintf("acc-%d", i), 20, events(5)))
	}
	checkpointReaches(t, writer, es.AllStream, "rm", 250)
	is.Equal(rows(t, table), 250)
	mu.Lock()
	is.Equal(len(failures), 0) // no event was applied twice
	mu.Unlock()
	is.NoErr(p.Close())
	cp, err := writer.SubscriptionCheckpoint(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(cp, int64(250))
}

// poisoned wraps a handler that fails on version 2 of stream "a" while poison is set.
func poisoned(table string, poison *atomic.Bool) es.Handler {
	inner := insertHandler(table)
	return func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if poison.Load() && ev.StreamID == "a" && ev.StreamVersion == 2 {
				return errors.New("poison")
			}
		}
		return inner(ctx, tx, batch)
	}
}

// versionsOf returns the versions of stream applied to table, in the order they were applied.
func versionsOf(t *testing.T, table, stream string) []int64 {
	t.Helper()
	rs, err := estest.DB(t).QueryContext(t.Context(), `SELECT version FROM `+table+` WHERE stream = $1 ORDER BY seq`, stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []int64
	for rs.Next() {
		var v int64
		if err := rs.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// parkedUntil polls the parked events until ok accepts them.
func parkedUntil(t *testing.T, store *es.Store, stream, name string, ok func([]es.ParkedEvent) bool) []es.ParkedEvent {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ps, err := store.ListParked(t.Context(), stream, name)
		if err != nil {
			t.Fatal(err)
		}
		if ok(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked events of %s/%s: %+v", stream, name, ps)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func rowsReach(t *testing.T, table string, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for rows(t, table) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d rows, want %d", table, rows(t, table), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func statuses(ps []es.ParkedEvent) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = fmt.Sprintf("%s/%d:%s", p.Stream, p.Position, p.Status)
	}
	return out
}

// A poison event is parked after its attempts while the other keys flow; the later events of its
// key wait (also across a restart), a retry that fails again parks it again, and a retry that
// succeeds applies it and the waiting ones in order.
func TestProjectionParkWaitKey(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	for _, s := range []string{"a", "b", "c"} {
		is.NoErr(store.AppendToStream(ctx, s, es.NoStream, events(5)))
	}
	var poison atomic.Bool
	poison.Store(true)
	opts := &es.ProjectionOptions{
		SubscriptionOptions: es.SubscriptionOptions{BufferSize: 4},
		MaxAttempts:         2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond,
	}
	// A stream subscription per stream would not show keys; $all with the stream as key does.
	p, err := store.Project(ctx, es.AllStream, "rm", opts, poisoned(table, &poison))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rm", 15)
	is.Equal(rows(t, table), 11) // a's versions 2-5 are parked or waiting
	ps, err := store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(statuses(ps), []string{"a/2:parked", "a/3:waiting", "a/4:waiting", "a/5:waiting"})
	is.Equal(ps[0].Attempts, 3) // the batch twice, then alone
	is.Equal(ps[0].Error, "poison")
	is.Equal(ps[0].PartitionKey, "a")
	is.Equal(versionsOf(t, table, "a"), []int64{1})

	// Restarted: the key still waits.
	is.NoErr(p.Close())
	is.NoErr(store.AppendToStream(ctx, "a", 5, events(1)))
	is.NoErr(store.AppendToStream(ctx, "b", 5, events(1)))
	p, err = store.Project(ctx, es.AllStream, "rm", opts, poisoned(table, &poison))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rm", 17)
	is.Equal(rows(t, table), 12) // b's 6th
	ps, err = store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(len(ps), 5) // a/6 waits too

	// A retry that fails again parks it again; the rest still waits.
	n, err := store.RetryParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(n, 1)
	ps = parkedUntil(t, store, es.AllStream, "rm", func(ps []es.ParkedEvent) bool {
		return len(ps) > 0 && ps[0].Status == es.ParkedFailed && ps[0].Attempts > 3
	})
	is.Equal(ps[0].Attempts, 5)
	is.Equal(len(ps), 5)

	// Fixed: the retry applies it, then the waiting ones, in order.
	poison.Store(false)
	_, err = store.RetryParked(ctx, es.AllStream, "rm", ps[0].ID)
	is.NoErr(err)
	parkedUntil(t, store, es.AllStream, "rm", func(ps []es.ParkedEvent) bool { return len(ps) == 0 })
	is.Equal(rows(t, table), 17)
	is.Equal(versionsOf(t, table, "a"), seq(1, 6))

	// The key flows again.
	is.NoErr(store.AppendToStream(ctx, "a", 6, events(1)))
	rowsReach(t, table, 18)
	is.Equal(versionsOf(t, table, "a"), seq(1, 7))
	is.NoErr(p.Close())
}

// With ParkSkip only the poison event is parked; discarding it drops it.
func TestProjectionParkSkipAndDiscard(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	for _, s := range []string{"a", "b"} {
		is.NoErr(store.AppendToStream(ctx, s, es.NoStream, events(5)))
	}
	var poison atomic.Bool
	poison.Store(true)
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		MaxAttempts: 1, MinBackoff: time.Millisecond, ParkPolicy: es.ParkSkip,
	}, poisoned(table, &poison))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rm", 10)
	is.Equal(rows(t, table), 9)
	is.Equal(versionsOf(t, table, "a"), []int64{1, 3, 4, 5})
	ps, err := store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(statuses(ps), []string{"a/2:parked"})

	n, err := store.DiscardParked(ctx, es.AllStream, "rm", ps[0].ID)
	is.NoErr(err)
	is.Equal(n, 1)
	ps, err = store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(len(ps), 0)
	is.NoErr(p.Close())
}

// Discarding a parked event hands the events waiting behind it to the projection, in order.
func TestProjectionDiscardReleasesWaiting(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "a", es.NoStream, events(4)))
	var poison atomic.Bool
	poison.Store(true)
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		MaxAttempts: 1, MinBackoff: time.Millisecond,
	}, poisoned(table, &poison))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rm", 4)
	ps, err := store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(statuses(ps), []string{"a/2:parked", "a/3:waiting", "a/4:waiting"})
	n, err := store.DiscardParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(n, 1)
	parkedUntil(t, store, es.AllStream, "rm", func(ps []es.ParkedEvent) bool { return len(ps) == 0 })
	is.Equal(versionsOf(t, table, "a"), []int64{1, 3, 4})
	is.NoErr(p.Close())
}

// A handler may reorder its batch (grouping by stream, say): the checkpoint still covers the
// whole batch, and nothing is applied twice after a restart.
func TestProjectionHandlerReordersBatch(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	for i := range 4 {
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("s%d", i), es.NoStream, events(5)))
	}
	apply := insertHandler(table)
	sorting := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		slices.SortFunc(batch, func(a, b es.RecordedEvent) int { return strings.Compare(b.StreamID, a.StreamID) })
		return apply(ctx, tx, batch)
	}
	p, err := store.Project(ctx, es.AllStream, "sorted", &es.ProjectionOptions{
		SubscriptionOptions: es.SubscriptionOptions{BufferSize: 7},
	}, sorting)
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "sorted", 20)
	is.Equal(rows(t, table), 20)
	is.NoErr(p.Close())
}

// The store's Close ends a running handler's context: Close stays within its bound, and the
// handler's effects roll back with its transaction.
func TestProjectionStoreCloseCancelsHandler(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(1)))
	running := make(chan struct{})
	var once sync.Once
	p, err := store.Project(ctx, es.AllStream, "slow", nil, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		if err := insertHandler(table)(ctx, tx, batch); err != nil {
			return err
		}
		once.Do(func() { close(running) })
		<-ctx.Done() // a long handler, until it is told to stop
		return ctx.Err()
	})
	is.NoErr(err)
	select {
	case <-running:
	case <-time.After(wait):
		t.Fatal("the handler did not run")
	}
	closeCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	is.NoErr(store.Shutdown(closeCtx)) // before the fix it waited for the handler
	<-p.Done()
	if err := p.Err(); !errors.Is(err, es.ErrClosed) {
		t.Fatalf("projection ended with %v, want ErrClosed", err)
	}
	is.Equal(rows(t, table), 0) // rolled back
}

// A handler that panics is a failing handler: the panic is recovered, the batch retried, then
// the event parked with ErrHandlerPanicked, and the rest flows. Retry and discard of an unknown
// projection are ErrSubscriptionNotFound.
func TestProjectionHandlerPanics(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "a", es.NoStream, events(3)))
	apply := insertHandler(table)
	p, err := store.Project(ctx, es.AllStream, "panics", &es.ProjectionOptions{
		MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond, ParkPolicy: es.ParkSkip,
	}, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if ev.StreamVersion == 2 {
				panic("boom")
			}
		}
		return apply(ctx, tx, batch)
	})
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "panics", 3)
	is.Equal(versionsOf(t, table, "a"), []int64{1, 3})
	ps, err := store.ListParked(ctx, es.AllStream, "panics")
	is.NoErr(err)
	is.Equal(statuses(ps), []string{"a/2:parked"})
	is.True(strings.Contains(ps[0].Error, "boom"))
	is.NoErr(p.Close())

	_, err = store.RetryParked(ctx, es.AllStream, "no-such-projection")
	is.True(errors.Is(err, es.ErrSubscriptionNotFound))
	_, err = store.DiscardParked(ctx, es.AllStream, "no-such-projection")
	is.True(errors.Is(err, es.ErrSubscriptionNotFound))
}

// Rebuilding a projection that has parked events: the reset forgets them, and the rebuilt read
// model has every event once the poison is gone.
func TestProjectionResetForgetsParked(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "a", es.NoStream, events(3)))
	var poison atomic.Bool
	poison.Store(true)
	opts := &es.ProjectionOptions{MaxAttempts: 2, MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	p, err := store.Project(ctx, es.AllStream, "rebuilt", opts, poisoned(table, &poison))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rebuilt", 3)
	ps, err := store.ListParked(ctx, es.AllStream, "rebuilt")
	is.NoErr(err)
	is.Equal(statuses(ps), []string{"a/2:parked", "a/3:waiting"})
	is.NoErr(p.Close())

	is.NoErr(store.ResetSubscription(ctx, es.AllStream, "rebuilt"))
	ps, err = store.ListParked(ctx, es.AllStream, "rebuilt")
	is.NoErr(err)
	is.Equal(len(ps), 0)
	_, err = estest.DB(t).ExecContext(ctx, `TRUNCATE `+table)
	is.NoErr(err)
	poison.Store(false)
	p, err = store.Project(ctx, es.AllStream, "rebuilt", opts, poisoned(table, &poison))
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rebuilt", 3)
	is.Equal(versionsOf(t, table, "a"), []int64{1, 2, 3})
	is.NoErr(p.Close())
}

// On a pool of one connection, a projection whose subscription is deleted while its handler
// runs stops with ErrSubscriptionNotFound: the fenced transaction gives its connection back
// before the store asks why the checkpoint write changed nothing (it froze before).
func TestProjectionPoolOfOneDeletedMidHandler(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer := estest.NewStore(t, nil)
	db := pool(t, 1)
	store, err := es.New(db, &es.Config{Schema: writer.Schema(), Logger: testLogger(t)})
	is.NoErr(err)
	is.NoErr(writer.AppendToStream(ctx, "acc-1", es.NoStream, events(3)))
	inHandler, deleted := make(chan struct{}), make(chan struct{})
	var once sync.Once
	p, err := store.Project(ctx, es.AllStream, "rm", nil, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		once.Do(func() {
			close(inHandler)
			<-deleted
		})
		return nil
	})
	is.NoErr(err)
	<-inHandler
	is.NoErr(writer.DeleteSubscription(ctx, es.AllStream, "rm"))
	close(deleted)
	select {
	case <-p.Done():
	case <-time.After(wait):
		t.Fatal("projection froze on a pool of one")
	}
	is.True(errors.Is(p.Err(), es.ErrSubscriptionNotFound))
	done := make(chan error, 1)
	go func() { done <- store.Close() }()
	select {
	case err := <-done:
		is.NoErr(err)
	case <-time.After(wait):
		t.Fatal("Close froze")
	}
}

// A commit whose outcome the driver never saw, and that went through: the stored checkpoint is
// ahead of what the projection knows. The batch's transaction finds it when it moves the
// checkpoint, rolls back, and runs again applying only the events after it: none is applied
// twice.
func TestProjectionCheckpointAheadAppliesOnlyTheRest(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "acc-1", es.NoStream, events(5)))
	inHandler, moved := make(chan struct{}), make(chan struct{})
	var once sync.Once
	insert := insertHandler(table)
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		SubscriptionOptions: es.SubscriptionOptions{BufferSize: 5},
	}, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		once.Do(func() {
			close(inHandler)
			<-moved
		})
		return insert(ctx, tx, batch)
	})
	is.NoErr(err)
	<-inHandler
	// Events 1 to 3 "were applied" by a commit this process lost track of.
	_, err = estest.DB(t).ExecContext(ctx, `UPDATE `+store.Schema()+`.subscriptions SET last_seen = 3 WHERE subscription_name = 'rm'`)
	is.NoErr(err)
	close(moved)
	checkpointReaches(t, store, es.AllStream, "rm", 5)
	var applied []int64
	r, err := estest.DB(t).QueryContext(ctx, `SELECT position FROM `+table+` ORDER BY position`)
	is.NoErr(err)
	defer r.Close()
	for r.Next() {
		var pos int64
		is.NoErr(r.Scan(&pos))
		applied = append(applied, pos)
	}
	is.Equal(applied, []int64{4, 5}) // only the events after the stored checkpoint
	is.NoErr(p.Close())
}
