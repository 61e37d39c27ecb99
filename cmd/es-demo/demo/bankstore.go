package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/go-eventstore/eventstore/es"
)

// Bank loads accounts from the event store and commits their new events together with the
// balances read model.
type Bank struct {
	Store *es.Store
	DB    *sql.DB
}

// Load rebuilds an account from its snapshot, if any, and the events after it.
func (b *Bank) Load(ctx context.Context, id string) (*Account, error) {
	acc, _, err := b.LoadCounting(ctx, id)
	return acc, err
}

// LoadCounting is Load that also says how many events were read after the snapshot.
func (b *Bank) LoadCounting(ctx context.Context, id string) (*Account, int, error) {
	acc := &Account{ID: id}
	snap, err := b.Store.ReadSnapshot(ctx, id)
	switch {
	case err == nil:
		*acc = snap.Data.(Account)
	case !errors.Is(err, es.ErrSnapshotNotFound):
		return nil, 0, err
	}
	read := 0
	for ev, err := range b.Store.StreamForward(ctx, id, acc.Version+1) {
		if errors.Is(err, es.ErrStreamNotFound) {
			return acc, 0, nil // a new account
		}
		if err != nil {
			return nil, read, err
		}
		acc.Apply(ev)
		read++
	}
	return acc, read, nil
}

// Commit appends events at the account's version and updates the balances read model, in one
// transaction. It returns es.ErrWrongExpectedVersion when someone appended since Load.
func (b *Bank) Commit(ctx context.Context, acc *Account, events []es.EventData) error {
	tx, err := b.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := b.Store.AppendToStream(ctx, acc.ID, es.ExpectedVersion(acc.Version), events, es.WithTx(tx)); err != nil {
		return err
	}
	next := *acc
	for i, e := range events {
		next.Apply(es.RecordedEvent{EventNumber: acc.Version + int64(i) + 1, Data: e.Data})
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+Schema+`.balances (account, owner, balance) VALUES ($1, $2, $3)
		ON CONFLICT (account) DO UPDATE SET owner = EXCLUDED.owner, balance = EXCLUDED.balance`,
		next.ID, next.Owner, next.Balance); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	*acc = next
	return nil
}

// Execute loads the account, decides, and commits, retrying from a fresh load when another
// writer got there first. It returns how many times it retried.
func (b *Bank) Execute(ctx context.Context, id string, decide func(*Account) ([]es.EventData, error)) (int, error) {
	for retries := 0; retries < 20; retries++ {
		acc, err := b.Load(ctx, id)
		if err != nil {
			return retries, err
		}
		events, err := decide(acc)
		if err != nil {
			return retries, err
		}
		err = b.Commit(ctx, acc, events)
		if !errors.Is(err, es.ErrWrongExpectedVersion) {
			return retries, err
		}
	}
	return 20, fmt.Errorf("account %s: gave up after 20 conflicting attempts", id)
}
