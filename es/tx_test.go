package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

func setupTx(t *testing.T) (*es.Store, *sql.DB, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, nil), estest.DB(t), t.Context(), is.New(t)
}

// An application appends events and updates its own read model in one transaction.
func TestTxAppendWithReadModel(t *testing.T) {
	store, db, ctx, is := setupTx(t)
	table := store.Schema() + ".balances"
	_, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (account text PRIMARY KEY, balance int)")
	is.NoErr(err)

	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "acc-1", es.NoStream, events(1), es.WithTx(tx)))
	_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" VALUES ('acc-1', 1)")
	is.NoErr(err)

	// Nothing is visible outside before the commit, not even in $all.
	_, err = store.ReadStreamForward(ctx, "acc-1", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 0)
	// The transaction sees its own append.
	inside, err := store.ReadStreamForward(ctx, "acc-1", 0, 10, es.WithTx(tx))
	is.NoErr(err)
	is.Equal(len(inside), 1)

	is.NoErr(tx.Commit())
	got, err := store.ReadStreamForward(ctx, "acc-1", 0, 10)
	is.NoErr(err)
	is.Equal(len(got), 1)
	all, err = store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 1)
	var balance int
	is.NoErr(db.QueryRowContext(ctx, "SELECT balance FROM "+table).Scan(&balance))
	is.Equal(balance, 1)
}

func TestTxRollbackLeavesNothing(t *testing.T) {
	store, db, ctx, is := setupTx(t)
	is.NoErr(store.AppendToStream(ctx, "keep", es.NoStream, events(1)))
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "gone", es.NoStream, events(3), es.WithTx(tx)))
	is.NoErr(store.AppendToStream(ctx, "keep", 1, events(1), es.WithTx(tx)))
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "gone", SourceType: "t", Data: 1}, es.WithTx(tx)))
	is.NoErr(tx.Rollback())

	_, err = store.StreamInfo(ctx, "gone")
	is.True(errors.Is(err, es.ErrStreamNotFound))
	info, err := store.StreamInfo(ctx, "keep")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(1))
	_, err = store.ReadSnapshot(ctx, "gone")
	is.True(errors.Is(err, es.ErrSnapshotNotFound))
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 1)
	is.Equal(all[0].EventNumber, int64(1))
}

// A refused expected version is not a database error: the caller's transaction goes on.
func TestTxWrongExpectedVersionKeepsTxUsable(t *testing.T) {
	store, db, ctx, is := setupTx(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(2)))
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.True(errors.Is(store.AppendToStream(ctx, "s", 1, events(1), es.WithTx(tx)), es.ErrWrongExpectedVersion))
	is.True(errors.Is(store.AppendToStream(ctx, "s", es.NoStream, events(1), es.WithTx(tx)), es.ErrStreamExists))
	is.NoErr(store.AppendToStream(ctx, "s", 2, events(1), es.WithTx(tx)))
	is.NoErr(tx.Commit())
	info, err := store.StreamInfo(ctx, "s")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(3))
}

// While a caller's transaction that appended to stream A stays open, an append to stream B
// completes and becomes readable in $all: no global write lock.
func TestTxOpenAppendDoesNotBlockOtherStreams(t *testing.T) {
	store, db, ctx, is := setupTx(t)
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.AppendToStream(ctx, "A", es.NoStream, events(1), es.WithTx(tx)))

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		done <- store.AppendToStream(ctx, "B", es.NoStream, events(2))
	}()
	is.NoErr(<-done) // would time out if B waited for A's transaction

	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 2)
	is.Equal(all[0].StreamID, "B")
	is.Equal(all[1].EventNumber, int64(2))

	is.NoErr(tx.Commit())
	all, err = store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 3)
	is.Equal(all[2].StreamID, "A")
	is.Equal(all[2].EventNumber, int64(3))
}

// An unrelated transaction that holds a transaction id (and an old snapshot) does not stop $all
// from advancing: positions never wait on transaction-id horizons.
func TestTxUnrelatedLongTransactionDoesNotStallAll(t *testing.T) {
	store, db, ctx, is := setupTx(t)
	table := store.Schema() + ".unrelated"
	_, err := db.ExecContext(ctx, "CREATE TABLE "+table+" (x int)")
	is.NoErr(err)
	long, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	is.NoErr(err)
	defer long.Rollback()
	_, err = long.ExecContext(ctx, "INSERT INTO "+table+" VALUES (1)") // takes a transaction id
	is.NoErr(err)

	for i := range 5 {
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("s-%d", i), es.NoStream, events(2)))
		all, err := store.ReadAllForward(ctx, 0, 100)
		is.NoErr(err)
		is.Equal(len(all), 2*(i+1))
	}
	// The background sequencer advances too, without any $all read settling it.
	is.NoErr(store.AppendToStream(ctx, "bg", es.NoStream, events(1)))
	deadline := time.Now().Add(30 * time.Second)
	var last int64
	for time.Now().Before(deadline) {
		is.NoErr(db.QueryRowContext(ctx, "SELECT last_position FROM "+store.Schema()+".all_counter").Scan(&last))
		if last == 11 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	is.Equal(last, int64(11))
}

// openHardDeleteOfUnnumbered appends 2 events to stream, leaves them without $all positions, and
// hard deletes the stream in a transaction it leaves open (rolled back at the test's end).
func openHardDeleteOfUnnumbered(t *testing.T, stream string) (*es.Store, *sql.Tx, context.Context, *is.I) {
	t.Parallel()
	is := is.New(t)
	// An hour-long interval keeps the background sequencer from numbering the append.
	store := estest.NewStore(t, &es.Config{EnableHardDeletes: true, SequencerInterval: time.Hour})
	db, ctx := estest.DB(t), t.Context()
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, stream, es.NoStream, events(2), es.WithTx(tx))) // no wake-up
	is.NoErr(tx.Commit())

	del, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	t.Cleanup(func() { _ = del.Rollback() })
	is.NoErr(store.DeleteStream(ctx, stream, es.AnyVersion, es.HardDelete, es.WithTx(del)))
	return store, del, ctx, is
}

// A hard delete in a caller's open transaction, of a stream whose appends have no $all position
// yet, holds only that stream: other appends still get their positions and $all reads go on.
func TestTxOpenHardDeleteDoesNotStallAll(t *testing.T) {
	store, del, ctx, is := openHardDeleteOfUnnumbered(t, "doomed")

	bounded, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	is.NoErr(store.AppendToStream(bounded, "other", es.NoStream, events(1)))
	all, err := store.ReadAllForward(bounded, 0, 10) // would block behind the delete's locks
	is.NoErr(err)
	is.Equal(len(all), 1)
	is.Equal(all[0].StreamID, "other")

	is.NoErr(del.Commit())
	all, err = store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 1)
}

// When an open hard delete that held a stream's unnumbered events rolls back, those events reach
// $all after everything numbered meanwhile, as if their append had committed then: nothing ever
// appears below a position already read, and the stream's own order is kept.
func TestTxOpenHardDeleteRollsBackLate(t *testing.T) {
	store, del, ctx, is := openHardDeleteOfUnnumbered(t, "spared")
	is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, events(1)))
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(origins(all), []string{"other/1"})

	is.NoErr(del.Rollback())
	all, err = store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(origins(all), []string{"other/1", "spared/1", "spared/2"})
	is.Equal(eventNumbers(all), []int64{1, 2, 3})
}
