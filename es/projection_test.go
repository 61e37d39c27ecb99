package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// readModel creates a read-model table in store's schema whose primary key is the event id: a
// second application of an event is a unique violation.
func readModel(t *testing.T, store *es.Store) string {
	t.Helper()
	table := store.Schema() + ".read_model"
	_, err := estest.DB(t).ExecContext(t.Context(), `CREATE TABLE `+table+` (
		event_id uuid PRIMARY KEY, stream text NOT NULL, version bigint NOT NULL, position bigint NOT NULL)`)
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
func rows(t *testing.T, table string) int {
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
	writer, store := leaseFaultStores(t, 20*time.Millisecond)
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
