// Package demo is the walkthrough behind cmd/es-demo: a bank-account domain on the event store.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync"

	_ "github.com/lib/pq" // the demo's driver; the library works with any Postgres database/sql driver

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgtest"
)

// Schema is where the demo keeps its event store and its balances read model.
const Schema = "es_demo"

// Main runs the walkthrough against dsn, or against a throwaway PostgreSQL when dsn is empty.
func Main(ctx context.Context, out io.Writer, dsn string) error {
	if dsn == "" {
		fmt.Fprintln(out, "No DATABASE_URL set: starting a throwaway PostgreSQL from the installed binaries...")
		pg, err := pgtest.StartPostgres(ctx, nil)
		if err != nil {
			return err
		}
		defer pg.Stop()
		dsn = pg.SocketDSN("postgres")
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	return Run(ctx, out, db)
}

// Run walks through the domain on db, in a freshly re-created schema es_demo.
func Run(ctx context.Context, out io.Writer, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+Schema+" CASCADE"); err != nil {
		return fmt.Errorf("reset schema %s: %w", Schema, err)
	}
	applied, err := goose.Up(ctx, db, Schema)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Migrated schema %s: %d migration(s) applied.\n", Schema, len(applied))
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+Schema+".balances (account text PRIMARY KEY, owner text NOT NULL, balance int NOT NULL)"); err != nil {
		return err
	}
	store, err := es.New(db, &es.Config{Schema: Schema, Serializer: NewSerializer()})
	if err != nil {
		return err
	}
	defer store.Close()
	b := &Bank{Store: store, DB: db}
	activity, err := StartActivity(ctx, store, db)
	if err != nil {
		return err
	}
	defer activity.Close()

	fmt.Fprintln(out, "\n1. Open two accounts (expected version 0: the stream must not exist yet).")
	for _, a := range []struct {
		id, owner string
		amount    int
	}{{"account-alice", "Alice", 100}, {"account-bob", "Bob", 20}} {
		if _, err := b.Execute(ctx, a.id, func(acc *Account) ([]es.EventData, error) {
			return []es.EventData{{Data: AccountOpened{Owner: a.owner}}, {Data: MoneyDeposited{Amount: a.amount}}}, nil
		}); err != nil {
			return err
		}
		fmt.Fprintf(out, "   opened %s for %s with %d\n", a.id, a.owner, a.amount)
	}
	err = store.AppendToStream(ctx, "account-bob", 0, []es.EventData{{Data: AccountOpened{Owner: "Mallory"}}})
	fmt.Fprintf(out, "   opening account-bob again is refused: %v\n", errors.Is(err, es.ErrWrongExpectedVersion))

	fmt.Fprintln(out, "\n2. Two clerks act on Alice's account from the same version: the second one retries.")
	first, err := b.Load(ctx, "account-alice")
	if err != nil {
		return err
	}
	second := *first
	if err := b.Commit(ctx, first, []es.EventData{{Data: MoneyDeposited{Amount: 30}}}); err != nil {
		return err
	}
	err = b.Commit(ctx, &second, []es.EventData{{Data: MoneyWithdrawn{Amount: 50}}})
	fmt.Fprintf(out, "   clerk 2 appends at version %d: wrong expected version = %v\n", second.Version, errors.Is(err, es.ErrWrongExpectedVersion))
	retries, err := b.Execute(ctx, "account-alice", func(acc *Account) ([]es.EventData, error) { return acc.Withdraw(50) })
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   clerk 2 reloads and withdraws 50 (retries: %d)\n", retries)

	fmt.Fprintln(out, "\n3. Ten concurrent deposits of 5 to Bob's account, each retrying on conflicts.")
	var wg sync.WaitGroup
	var mu sync.Mutex
	total, failed := 0, error(nil)
	for range 10 {
		wg.Go(func() {
			r, err := b.Execute(ctx, "account-bob", func(acc *Account) ([]es.EventData, error) { return acc.Deposit(5) })
			mu.Lock()
			defer mu.Unlock()
			total += r
			failed = errors.Join(failed, err)
		})
	}
	wg.Wait()
	if failed != nil {
		return failed
	}
	bob, err := b.Load(ctx, "account-bob")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   all 10 deposits landed: Bob has %d at version %d (%d retries on the way)\n", bob.Balance, bob.Version, total)
	_, err = b.Execute(ctx, "account-bob", func(acc *Account) ([]es.EventData, error) { return acc.Withdraw(1000) })
	fmt.Fprintf(out, "   withdrawing 1000 is refused by the domain: %v\n", errors.Is(err, ErrInsufficientFunds))

	fmt.Fprintln(out, "\n4. Snapshot Alice's account, then rebuild it from the snapshot plus later events.")
	alice, err := b.Load(ctx, "account-alice")
	if err != nil {
		return err
	}
	if err := store.RecordSnapshot(ctx, es.SnapshotData{SourceID: alice.ID, SourceVersion: alice.Version, Data: *alice}); err != nil {
		return err
	}
	if _, err := b.Execute(ctx, "account-alice", func(acc *Account) ([]es.EventData, error) { return acc.Deposit(7) }); err != nil {
		return err
	}
	snapVersion := alice.Version
	alice, later, err := b.LoadCounting(ctx, "account-alice")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   snapshot at version %d; rebuilt from it and %d later event(s): balance %d at version %d\n",
		snapVersion, later, alice.Balance, alice.Version)

	fmt.Fprintln(out, "\n5. The balances read model, written in the same transactions as the events:")
	rows, err := db.QueryContext(ctx, "SELECT account, owner, balance FROM "+Schema+".balances ORDER BY account")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var account, owner string
		var balance int
		if err := rows.Scan(&account, &owner, &balance); err != nil {
			return err
		}
		fmt.Fprintf(out, "   %-14s %-6s %5d\n", account, owner, balance)
	}
	if err := rows.Err(); err != nil {
		return err
	}

	fmt.Fprintln(out, "\n6. $all: every event once, gap-free, in commit order (last 5 shown).")
	info, err := store.StreamInfo(ctx, es.AllStream)
	if err != nil {
		return err
	}
	last, err := store.ReadAllBackward(ctx, -1, 5)
	if err != nil {
		return err
	}
	for i := len(last) - 1; i >= 0; i-- {
		ev := last[i]
		fmt.Fprintf(out, "   #%-3d %-14s v%-3d %-20s %v\n", ev.EventNumber, ev.StreamID, ev.StreamVersion, ev.EventType, ev.Data)
	}
	fmt.Fprintf(out, "   %d events in $all.\n", info.StreamVersion)

	fmt.Fprintln(out, "\n7. A projection fed by a persistent subscription to $all counted the activity:")
	if err := activity.WaitFor(ctx, info.StreamVersion); err != nil {
		return err
	}
	if err := activity.Close(); err != nil {
		return err
	}
	checkpoint, err := store.SubscriptionCheckpoint(ctx, es.AllStream, "activity-projection")
	if err != nil {
		return err
	}
	arows, err := db.QueryContext(ctx, "SELECT account, deposits, withdrawals FROM "+Schema+".activity ORDER BY account")
	if err != nil {
		return err
	}
	defer arows.Close()
	for arows.Next() {
		var account string
		var deposits, withdrawals int
		if err := arows.Scan(&account, &deposits, &withdrawals); err != nil {
			return err
		}
		fmt.Fprintf(out, "   %-14s %2d deposits, %d withdrawals\n", account, deposits, withdrawals)
	}
	if err := arows.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "   its checkpoint: position %d; a restart resumes after it.\n", checkpoint)
	fmt.Fprintln(out, "\nDone.")
	return nil
}
