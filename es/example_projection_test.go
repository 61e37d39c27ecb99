package es_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// A projection split into 4 segments and run by two processes (two Stores on one schema here):
// each takes 2 segments, every event is applied once to the read model, and WaitFor returns once
// an append is in it.
func ExampleStore_Project_segments() {
	cfg := es.Config{LeaseDuration: time.Second, LeaseRenewInterval: 100 * time.Millisecond}
	store, db, cleanup := exampleStore(&cfg)
	defer cleanup()
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, `CREATE TABLE `+store.Schema()+`.balances (account text PRIMARY KEY, amount int NOT NULL)`); err != nil {
		panic(err)
	}
	other, err := es.New(db, &es.Config{Schema: store.Schema(), LeaseDuration: time.Second, LeaseRenewInterval: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	defer other.Close()

	apply := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+store.Schema()+`.balances (account, amount) VALUES ($1, $2)
				ON CONFLICT (account) DO UPDATE SET amount = balances.amount + EXCLUDED.amount`,
				ev.StreamID, ev.Data.(map[string]any)["amount"]); err != nil { // the JSON serializer's default
				return err
			}
		}
		return nil
	}
	opts := &es.ProjectionOptions{Segments: 4}
	var ps []*es.Projection
	for _, s := range []*es.Store{store, other} {
		p, err := s.Project(ctx, es.AllStream, "balances", opts, apply)
		if err != nil {
			panic(err)
		}
		defer p.Close()
		ps = append(ps, p)
	}

	var r es.AppendResult
	for i := range 8 {
		if err := store.AppendToStream(ctx, fmt.Sprintf("account-%d", i), es.NoStream,
			[]es.EventData{{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 10}}}, es.WithAppendResult(&r)); err != nil {
			panic(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := store.WaitFor(wctx, es.AllStream, "balances", &r); err != nil { // every segment has it
		panic(err)
	}
	var accounts, total int
	if err := db.QueryRowContext(ctx, `SELECT count(*), sum(amount) FROM `+store.Schema()+`.balances`).Scan(&accounts, &total); err != nil {
		panic(err)
	}
	fmt.Println(accounts, "accounts,", total, "in all")

	// The segments settle at two per process.
	for slices.Max([]int{len(ps[0].Segments()), len(ps[1].Segments())}) != 2 ||
		len(ps[0].Segments())+len(ps[1].Segments()) != 4 {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("segments per process:", len(ps[0].Segments()), len(ps[1].Segments()))
	// Output:
	// 8 accounts, 80 in all
	// segments per process: 2 2
}
