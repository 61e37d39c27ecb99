package demo

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// Activity is a projection run by the store (Store.Project) over a persistent subscription to
// $all: it counts each account's deposits and withdrawals into the activity table. The store
// runs the handler in a transaction that also moves the subscription's checkpoint, so each
// event is counted exactly once, across restarts and processes.
type Activity struct {
	store *es.Store
	p     *es.Projection
}

// activityProjection names the projection's subscription.
const activityProjection = "activity-projection"

// StartActivity creates the activity table and starts the projection.
func StartActivity(ctx context.Context, store *es.Store, db *sql.DB) (*Activity, error) {
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+Schema+
		".activity (account text PRIMARY KEY, deposits int NOT NULL DEFAULT 0, withdrawals int NOT NULL DEFAULT 0)"); err != nil {
		return nil, err
	}
	p, err := store.Project(ctx, es.AllStream, activityProjection, nil, apply)
	if err != nil {
		return nil, err
	}
	return &Activity{store: store, p: p}, nil
}

// apply is the projection's handler: it writes through the store's transaction, which commits
// with the checkpoint.
func apply(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
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
	return nil
}

// WaitFor waits until the projection has applied $all up to position pos. (After an append,
// es.WithAppendResult and Store.WaitFor do the same for that append.)
func (a *Activity) WaitFor(ctx context.Context, pos int64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		last, err := a.store.SubscriptionCheckpoint(ctx, es.AllStream, activityProjection)
		if err == nil && last >= pos {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("activity projection at %d, waiting for %d: %w", last, pos, ctx.Err())
		case <-a.p.Done():
			return fmt.Errorf("activity projection stopped at %d: %v", last, a.p.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close stops the projection; its checkpoint stays with what it committed.
func (a *Activity) Close() error { return a.p.Close() }
