package es_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// After an append, WaitFor returns once the projection committed it: the read model shows it
// without polling. Both for $all and for a stream's projection.
func TestWaitForProjection(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	pAll, err := store.Project(ctx, es.AllStream, "rm", nil, insertHandler(table))
	is.NoErr(err)
	defer pAll.Close()
	pOne, err := store.Project(ctx, "acc", "one", nil, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		return nil
	})
	is.NoErr(err)
	defer pOne.Close()

	for i := range 5 {
		var r es.AppendResult
		is.NoErr(store.AppendToStream(ctx, "acc", es.ExpectedVersion(i*2), events(2), es.WithAppendResult(&r)))
		is.Equal(r.Stream, "acc")
		is.Equal(r.FirstVersion, int64(i*2+1))
		is.Equal(r.LastVersion, int64(i*2+2))
		is.NoErr(store.WaitFor(ctx, es.AllStream, "rm", &r))
		is.Equal(rows(t, table), (i+1)*2)
		is.NoErr(store.WaitFor(ctx, "acc", "one", &r))
	}
	cp, err := store.SubscriptionCheckpoint(ctx, "acc", "one")
	is.NoErr(err)
	is.Equal(cp, int64(10))

	// A stream subscription of another stream, an unfilled result, an unknown subscription.
	var r es.AppendResult
	is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, events(1), es.WithAppendResult(&r)))
	is.True(errors.Is(store.WaitFor(ctx, "acc", "one", &r), es.ErrInvalidArgument))
	is.True(errors.Is(store.WaitFor(ctx, es.AllStream, "rm", &es.AppendResult{}), es.ErrInvalidArgument))
	is.True(errors.Is(store.WaitFor(ctx, es.AllStream, "nope", &r), es.ErrSubscriptionNotFound))
}

// A projection that cannot handle the append: WaitFor ends with ctx, with a clear error.
func TestWaitForTimeout(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	release := make(chan struct{})
	p, err := store.Project(ctx, es.AllStream, "stuck", nil, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ctx.Err()
	})
	is.NoErr(err)
	var r es.AppendResult
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(1), es.WithAppendResult(&r)))
	wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = store.WaitFor(wctx, es.AllStream, "stuck", &r)
	is.True(errors.Is(err, es.ErrNotHandled))
	is.True(errors.Is(err, context.DeadlineExceeded))
	close(release)
	is.NoErr(store.WaitFor(ctx, es.AllStream, "stuck", &r))
	is.NoErr(p.Close())
}

// An append rolled back in the caller's transaction is never handled, even once another append
// created the stream it would have created: WaitFor times out, for $all and for the stream.
func TestWaitForRolledBackAppend(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	pAll, err := store.Project(ctx, es.AllStream, "rm", nil, insertHandler(table))
	is.NoErr(err)
	defer pAll.Close()
	pOne, err := store.Project(ctx, "fresh", "one", nil, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		return nil
	})
	is.NoErr(err)
	defer pOne.Close()

	tx, err := estest.DB(t).BeginTx(ctx, nil)
	is.NoErr(err)
	var r es.AppendResult
	is.NoErr(store.AppendToStream(ctx, "fresh", es.NoStream, events(2), es.WithTx(tx), es.WithAppendResult(&r)))
	is.NoErr(tx.Rollback())
	var committed es.AppendResult
	is.NoErr(store.AppendToStream(ctx, "fresh", es.NoStream, events(3), es.WithAppendResult(&committed)))
	is.NoErr(store.WaitFor(ctx, es.AllStream, "rm", &committed))
	is.NoErr(store.WaitFor(ctx, "fresh", "one", &committed))
	for _, sub := range []struct{ stream, name string }{{es.AllStream, "rm"}, {"fresh", "one"}} {
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		err = store.WaitFor(wctx, sub.stream, sub.name, &r)
		cancel()
		is.True(errors.Is(err, es.ErrNotHandled)) // the rolled-back append is never handled
	}
}

// After a stream is hard deleted and created again, an append to the new stream is waited for
// until the stream projection reached it, not confirmed because the projection's checkpoint
// still counts in the old stream.
func TestWaitForRecreatedStream(t *testing.T) {
	store, ctx, is := setupSub(t, &es.Config{EnableHardDeletes: true})
	is.NoErr(store.AppendToStream(ctx, "again", es.NoStream, events(3)))
	release := make(chan struct{})
	p, err := store.Project(ctx, "again", "one", nil, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	is.NoErr(err)
	defer p.Close()
	is.NoErr(store.DeleteStream(ctx, "again", 3, es.HardDelete))
	var r es.AppendResult
	is.NoErr(store.AppendToStream(ctx, "again", es.NoStream, events(2), es.WithAppendResult(&r)))
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = store.WaitFor(wctx, "again", "one", &r)
	cancel()
	is.True(errors.Is(err, es.ErrNotHandled)) // the handler has not run for the new stream
	close(release)
	is.NoErr(store.WaitFor(ctx, "again", "one", &r))
}
