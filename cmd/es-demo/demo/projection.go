package demo

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// Activity is a projection fed by a persistent subscription to $all: it counts each account's
// deposits and withdrawals into the activity table. The subscription's checkpoint makes it
// resume where it stopped; acknowledging after the table write makes delivery at least once.
type Activity struct {
	sub *es.Subscriber

	mu   sync.Mutex
	last int64 // last $all position applied
	err  error
	done chan struct{}
}

// StartActivity creates the activity table and subscribes the projection.
func StartActivity(ctx context.Context, store *es.Store, db *sql.DB) (*Activity, error) {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+Schema+
		".activity (account text PRIMARY KEY, deposits int NOT NULL DEFAULT 0, withdrawals int NOT NULL DEFAULT 0)"); err != nil {
		return nil, err
	}
	sub, err := store.SubscribeToAll(ctx, "activity-projection", &es.SubscriptionOptions{BufferSize: 100})
	if err != nil {
		return nil, err
	}
	a := &Activity{sub: sub, done: make(chan struct{})}
	go a.run(ctx, db)
	return a, nil
}

func (a *Activity) run(ctx context.Context, db *sql.DB) {
	defer close(a.done)
	for batch := range a.sub.Events() {
		if err := apply(ctx, db, batch); err != nil {
			a.fail(err)
			return
		}
		if err := a.sub.Ack(batch...); err != nil {
			a.fail(err)
			return
		}
		a.mu.Lock()
		a.last = batch[len(batch)-1].EventNumber
		a.mu.Unlock()
	}
}

func (a *Activity) fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
	_ = a.sub.Close()
}

func apply(ctx context.Context, db *sql.DB, batch []es.RecordedEvent) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, ev := range batch {
		var column string
		switch ev.Data.(type) {
		case MoneyDeposited:
			column = "deposits"
		case MoneyWithdrawn:
			column = "withdrawals"
		default:
			continue
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+Schema+".activity (account, "+column+") VALUES ($1, 1)"+
			" ON CONFLICT (account) DO UPDATE SET "+column+" = activity."+column+" + 1", ev.StreamID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// WaitFor waits until the projection has applied $all up to position pos.
func (a *Activity) WaitFor(ctx context.Context, pos int64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		a.mu.Lock()
		last, err := a.last, a.err
		a.mu.Unlock()
		if err != nil {
			return err
		}
		if last >= pos {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("activity projection at %d, waiting for %d: %w", last, pos, ctx.Err())
		case <-a.done:
			return fmt.Errorf("activity projection stopped at %d: %v", last, a.sub.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close unsubscribes; the checkpoint of what was acknowledged is written.
func (a *Activity) Close() error { return a.sub.Close() }
