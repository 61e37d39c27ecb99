package es_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/internal/pgerr"
)

// setupDelete returns a store with hard deletes enabled or not.
func setupDelete(t *testing.T, hard bool) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, &es.Config{EnableHardDeletes: hard}), t.Context(), is.New(t)
}

func readAllOrigins(t *testing.T, store *es.Store) []string {
	t.Helper()
	all, err := store.ReadAllForward(t.Context(), 0, 10_000)
	if err != nil {
		t.Fatalf("read $all: %v", err)
	}
	return origins(all)
}

func readOrigins(t *testing.T, store *es.Store, stream string) []string {
	t.Helper()
	evs, err := store.ReadStreamForward(t.Context(), stream, 0, 10_000)
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return origins(evs)
}

func TestDeleteSoft(t *testing.T) {
	store, ctx, is := setupDelete(t, false)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 3)
	b := appendAndRead(t, store, "B", es.NoStream, "b", 2)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a[:2])))
	before, err := store.StreamInfo(ctx, "A")
	is.NoErr(err)

	is.NoErr(store.DeleteStream(ctx, "A", es.AnyVersion, es.SoftDelete))

	// Neither read nor appended to nor linked to.
	_, err = store.ReadStreamForward(ctx, "A", 0, 10)
	is.True(errors.Is(err, es.ErrStreamDeleted))
	_, err = store.ReadStreamBackward(ctx, "A", -1, 10)
	is.True(errors.Is(err, es.ErrStreamDeleted))
	got, nerr, err := collect(store.StreamForward(ctx, "A", 0))
	is.True(errors.Is(err, es.ErrStreamDeleted))
	is.Equal(nerr, 1)
	is.Equal(len(got), 0)
	for _, expected := range []es.ExpectedVersion{es.AnyVersion, es.NoStream, es.StreamExists, 0, 3} {
		err := store.AppendToStream(ctx, "A", expected, typedEvents("a", 4, 1))
		if !errors.Is(err, es.ErrStreamDeleted) {
			t.Errorf("append expecting %d: got %v, want ErrStreamDeleted", expected, err)
		}
	}
	is.True(errors.Is(store.LinkToStream(ctx, "A", es.AnyVersion, es.EventIDs(b[:1])), es.ErrStreamDeleted))

	// StreamInfo says so, with the info.
	info, err := store.StreamInfo(ctx, "A")
	is.True(errors.Is(err, es.ErrStreamDeleted))
	is.Equal(info.StreamID, "A")
	is.Equal(info.Status, es.StreamDeleted)
	is.Equal(info.StreamVersion, int64(3))
	is.True(info.DeletedAt != nil)
	is.True(!info.DeletedAt.Before(info.CreatedAt))
	is.True(info.CreatedAt.Equal(before.CreatedAt))
	is.True(time.Since(*info.DeletedAt) < time.Minute)

	// Its events stay in $all and in link streams, under their original stream.
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2", "A/3", "B/1", "B/2"})
	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(es.EventIDs(all[:3]), es.EventIDs(a))
	is.Equal(readOrigins(t, store, "L"), []string{"A/1", "A/2"})
	it, _, err := collect(store.StreamAllForward(ctx, 0, es.WithBatchSize(2)))
	is.NoErr(err)
	is.Equal(len(it), 5)
	// And can still be linked elsewhere.
	is.NoErr(store.LinkToStream(ctx, "M", es.NoStream, es.EventIDs(a[2:])))
	is.Equal(readOrigins(t, store, "M"), []string{"A/3"})

	// Other streams are untouched.
	is.Equal(readOrigins(t, store, "B"), []string{"B/1", "B/2"})
	is.NoErr(store.AppendToStream(ctx, "B", 2, typedEvents("b", 3, 1)))
}

// A soft-deleted link stream hides its links only; the linked events are untouched.
func TestDeleteSoftLinkStream(t *testing.T) {
	store, ctx, is := setupDelete(t, false)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a)))
	is.NoErr(store.DeleteStream(ctx, "L", 2, es.SoftDelete))
	_, err := store.ReadStreamForward(ctx, "L", 0, 10)
	is.True(errors.Is(err, es.ErrStreamDeleted))
	is.Equal(readOrigins(t, store, "A"), []string{"A/1", "A/2"})
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2"})
}

func TestDeleteExpectedVersion(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	appendAndRead(t, store, "A", es.NoStream, "a", 3)

	cases := []struct {
		name     string
		stream   string
		expected es.ExpectedVersion
		mode     es.DeleteMode
		want     error
	}{
		{"soft wrong version", "A", 2, es.SoftDelete, es.ErrWrongExpectedVersion},
		{"soft version past end", "A", 4, es.SoftDelete, es.ErrWrongExpectedVersion},
		{"hard wrong version", "A", 2, es.HardDelete, es.ErrWrongExpectedVersion},
		{"soft NoStream", "A", es.NoStream, es.SoftDelete, es.ErrInvalidArgument},
		{"soft 0", "A", 0, es.SoftDelete, es.ErrInvalidArgument},
		{"hard NoStream", "A", es.NoStream, es.HardDelete, es.ErrInvalidArgument},
		{"hard 0", "A", 0, es.HardDelete, es.ErrInvalidArgument},
		{"bad expected", "A", -4, es.SoftDelete, es.ErrInvalidArgument},
		{"bad mode", "A", es.AnyVersion, es.DeleteMode(7), es.ErrInvalidArgument},
		{"empty stream", "", es.AnyVersion, es.SoftDelete, es.ErrInvalidArgument},
		{"soft $all", es.AllStream, es.AnyVersion, es.SoftDelete, es.ErrCannotDeleteAll},
		{"hard $all", es.AllStream, es.AnyVersion, es.HardDelete, es.ErrCannotDeleteAll},
		{"soft missing any", "missing", es.AnyVersion, es.SoftDelete, es.ErrStreamNotFound},
		{"soft missing exists", "missing", es.StreamExists, es.SoftDelete, es.ErrStreamNotFound},
		{"soft missing exact", "missing", 1, es.SoftDelete, es.ErrStreamNotFound},
		{"hard missing any", "missing", es.AnyVersion, es.HardDelete, es.ErrStreamNotFound},
		{"hard missing exact", "missing", 3, es.HardDelete, es.ErrStreamNotFound},
	}
	for _, c := range cases {
		err := store.DeleteStream(ctx, c.stream, c.expected, c.mode)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Nothing was deleted.
	info, err := store.StreamInfo(ctx, "A")
	is.NoErr(err)
	is.Equal(info.Status, es.StreamCreated)
	is.Equal(readOrigins(t, store, "A"), []string{"A/1", "A/2", "A/3"})
	_, err = store.StreamInfo(ctx, "missing")
	is.True(errors.Is(err, es.ErrStreamNotFound))

	// The exact version, and StreamExists.
	is.NoErr(store.DeleteStream(ctx, "A", 3, es.SoftDelete))
	appendAndRead(t, store, "B", es.NoStream, "b", 1)
	is.NoErr(store.DeleteStream(ctx, "B", es.StreamExists, es.SoftDelete))
	appendAndRead(t, store, "C", es.NoStream, "c", 2)
	is.NoErr(store.DeleteStream(ctx, "C", 2, es.HardDelete))
	appendAndRead(t, store, "D", es.NoStream, "d", 2)
	is.NoErr(store.DeleteStream(ctx, "D", es.StreamExists, es.HardDelete))
	for _, stream := range []string{"C", "D"} {
		_, err := store.StreamInfo(ctx, stream)
		is.True(errors.Is(err, es.ErrStreamNotFound))
	}
}

func TestDeleteSoftTwice(t *testing.T) {
	store, ctx, is := setupDelete(t, false)
	appendAndRead(t, store, "A", es.NoStream, "a", 2)
	is.NoErr(store.DeleteStream(ctx, "A", es.AnyVersion, es.SoftDelete))
	first, err := store.StreamInfo(ctx, "A")
	is.True(errors.Is(err, es.ErrStreamDeleted))

	for _, expected := range []es.ExpectedVersion{es.AnyVersion, es.StreamExists, 2} {
		err := store.DeleteStream(ctx, "A", expected, es.SoftDelete)
		if !errors.Is(err, es.ErrStreamDeleted) {
			t.Errorf("second soft delete expecting %d: got %v, want ErrStreamDeleted", expected, err)
		}
	}
	// The deletion time is the first one's.
	again, err := store.StreamInfo(ctx, "A")
	is.True(errors.Is(err, es.ErrStreamDeleted))
	is.True(again.DeletedAt.Equal(*first.DeletedAt))
}

func TestDeleteHardDisabled(t *testing.T) {
	store, ctx, is := setupDelete(t, false)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a)))

	for _, expected := range []es.ExpectedVersion{es.AnyVersion, es.StreamExists, 2} {
		err := store.DeleteStream(ctx, "A", expected, es.HardDelete)
		is.True(errors.Is(err, es.ErrHardDeletesDisabled))
	}
	is.True(errors.Is(store.DeleteStream(ctx, "L", es.AnyVersion, es.HardDelete), es.ErrHardDeletesDisabled))

	// Nothing changed.
	info, err := store.StreamInfo(ctx, "A")
	is.NoErr(err)
	is.Equal(info.Status, es.StreamCreated)
	is.Equal(info.StreamVersion, int64(2))
	is.Equal(readOrigins(t, store, "A"), []string{"A/1", "A/2"})
	is.Equal(readOrigins(t, store, "L"), []string{"A/1", "A/2"})
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2"})
}

func TestDeleteHard(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	// $all: 1 A/1, 2 A/2, 3 B/1, 4 A/3, 5 B/2
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	b := appendAndRead(t, store, "B", es.NoStream, "b", 1)
	is.NoErr(store.AppendToStream(ctx, "A", 2, typedEvents("a", 3, 1)))
	is.NoErr(store.AppendToStream(ctx, "B", 1, typedEvents("b", 2, 1)))
	a, err := store.ReadStreamForward(ctx, "A", 0, 10)
	is.NoErr(err)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, []uuid.UUID{a[0].EventID, b[0].EventID, a[2].EventID}))
	is.NoErr(store.LinkToStream(ctx, "M", es.NoStream, []uuid.UUID{a[1].EventID}))
	allBefore, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(allBefore.StreamVersion, int64(5))

	is.NoErr(store.DeleteStream(ctx, "A", 3, es.HardDelete))

	// The stream is gone, as if it never existed.
	_, err = store.ReadStreamForward(ctx, "A", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	_, err = store.ReadStreamBackward(ctx, "A", -1, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	_, err = store.StreamInfo(ctx, "A")
	is.True(errors.Is(err, es.ErrStreamNotFound))
	page, err := store.PaginateStreams(ctx, es.PageOptions{})
	is.NoErr(err)
	for _, s := range page.Entries {
		is.True(s.StreamID != "A")
	}
	is.Equal(page.TotalEntries, 3) // B, L, M

	// Its events left holes in $all; the others keep their positions.
	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(all), []int64{3, 5})
	is.Equal(origins(all), []string{"B/1", "B/2"})
	first, err := store.ReadAllForward(ctx, 0, 1)
	is.NoErr(err)
	is.Equal(eventNumbers(first), []int64{3}) // the count applies after the holes
	tail, err := store.ReadAllForward(ctx, 4, 10)
	is.NoErr(err)
	is.Equal(eventNumbers(tail), []int64{5})
	back, err := store.ReadAllBackward(ctx, -1, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(back), []int64{5, 3})
	back, err = store.ReadAllBackward(ctx, 4, 1)
	is.NoErr(err)
	is.Equal(eventNumbers(back), []int64{3})
	back, err = store.ReadAllBackward(ctx, 2, 10)
	is.NoErr(err)
	is.Equal(len(back), 0)
	for _, size := range []int{1, 2, 3} {
		it, _, err := collect(store.StreamAllForward(ctx, 0, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(it), []int64{3, 5})
		it, _, err = collect(store.StreamAllBackward(ctx, -1, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(it), []int64{5, 3})
	}
	allAfter, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(allAfter.StreamVersion, allBefore.StreamVersion) // positions are never reused

	// And left every link stream.
	l, err := store.ReadStreamForward(ctx, "L", 0, 100)
	is.NoErr(err)
	is.Equal(origins(l), []string{"B/1"})
	is.Equal(l[0].EventID, b[0].EventID)
	l, err = store.ReadStreamBackward(ctx, "L", -1, 100)
	is.NoErr(err)
	is.Equal(origins(l), []string{"B/1"})
	m, err := store.ReadStreamForward(ctx, "M", 0, 100)
	is.NoErr(err)
	is.Equal(len(m), 0)
	// Its events cannot be linked any more.
	is.True(errors.Is(store.LinkToStream(ctx, "N", es.AnyVersion, es.EventIDs(a[:1])), es.ErrEventNotFound))

	// Other streams are untouched.
	is.Equal(readOrigins(t, store, "B"), []string{"B/1", "B/2"})

	// The stream can be appended to again from the start; the new events get new positions.
	for _, expected := range []es.ExpectedVersion{es.StreamExists, 3} {
		is.True(store.AppendToStream(ctx, "A", expected, typedEvents("a", 1, 1)) != nil)
	}
	is.NoErr(store.AppendToStream(ctx, "A", es.NoStream, typedEvents("new", 1, 2)))
	again, err := store.ReadStreamForward(ctx, "A", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(again), []int64{1, 2})
	is.Equal(origins(again), []string{"A/1", "A/2"})
	is.Equal(again[0].EventType, "new")
	is.True(again[0].EventID != a[0].EventID)
	info, err := store.StreamInfo(ctx, "A")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(2))
	is.Equal(info.Status, es.StreamCreated)
	all, err = store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(all), []int64{3, 5, 6, 7})
	is.Equal(origins(all), []string{"B/1", "B/2", "A/1", "A/2"})
	is.Equal(all[2].EventType, "new")
	// The old links do not come back.
	is.Equal(readOrigins(t, store, "L"), []string{"B/1"})
}

func TestDeleteHardSoftDeleted(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	appendAndRead(t, store, "A", es.NoStream, "a", 2)
	appendAndRead(t, store, "B", es.NoStream, "b", 1)
	is.NoErr(store.DeleteStream(ctx, "A", es.AnyVersion, es.SoftDelete))
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2", "B/1"})

	is.NoErr(store.DeleteStream(ctx, "A", 2, es.HardDelete))
	_, err := store.StreamInfo(ctx, "A")
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.Equal(readAllOrigins(t, store), []string{"B/1"})
	is.NoErr(store.AppendToStream(ctx, "A", es.NoStream, typedEvents("a", 1, 1)))
	is.Equal(readOrigins(t, store, "A"), []string{"A/1"})
}

// Hard deleting a stream that holds links removes the links only.
func TestDeleteHardLinkStream(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a)))
	is.NoErr(store.LinkToStream(ctx, "M", es.NoStream, es.EventIDs(a)))

	is.NoErr(store.DeleteStream(ctx, "L", es.AnyVersion, es.HardDelete))
	_, err := store.ReadStreamForward(ctx, "L", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.Equal(readOrigins(t, store, "A"), []string{"A/1", "A/2"})
	is.Equal(readOrigins(t, store, "M"), []string{"A/1", "A/2"})
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2"})
	// L can be made again, and the same events linked into it.
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a[1:])))
	is.Equal(readOrigins(t, store, "L"), []string{"A/2"})
}

// A hard delete in a caller's transaction is invisible outside until it commits, and undone by a
// rollback.
func TestDeleteHardInTransactionRollback(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	appendAndRead(t, store, "B", es.NoStream, "b", 1)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a)))
	// Settle $all first: pending rows held by the open delete would be numbered after B's once it
	// rolls back (TestTxOpenHardDeleteRollsBackLate).
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2", "B/1"})
	db := estest.DB(t)

	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.DeleteStream(ctx, "A", es.AnyVersion, es.HardDelete, es.WithTx(tx)))
	_, err = store.ReadStreamForward(ctx, "A", 0, 10, es.WithTx(tx))
	is.True(errors.Is(err, es.ErrStreamNotFound)) // the transaction sees its delete
	inside, err := store.ReadStreamForward(ctx, "L", 0, 10, es.WithTx(tx))
	is.NoErr(err)
	is.Equal(len(inside), 0)
	is.Equal(readOrigins(t, store, "A"), []string{"A/1", "A/2"}) // others do not
	is.NoErr(tx.Rollback())

	is.Equal(readOrigins(t, store, "A"), []string{"A/1", "A/2"})
	is.Equal(readOrigins(t, store, "L"), []string{"A/1", "A/2"})
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2", "B/1"})
	info, err := store.StreamInfo(ctx, "A")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(2))

	// A soft delete in a transaction rolls back too.
	tx, err = db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.DeleteStream(ctx, "A", 2, es.SoftDelete, es.WithTx(tx)))
	_, err = store.StreamInfo(ctx, "A", es.WithTx(tx))
	is.True(errors.Is(err, es.ErrStreamDeleted))
	is.NoErr(tx.Rollback())
	_, err = store.StreamInfo(ctx, "A")
	is.NoErr(err)
}

// A hard delete committed with the caller's transaction, including of a stream appended in the
// same transaction, which then never reaches $all.
func TestDeleteHardInTransactionCommit(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	appendAndRead(t, store, "A", es.NoStream, "a", 2)
	appendAndRead(t, store, "B", es.NoStream, "b", 1)
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2", "B/1"}) // A's events have positions 1, 2
	db := estest.DB(t)

	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.AppendToStream(ctx, "C", es.NoStream, typedEvents("c", 1, 2), es.WithTx(tx)))
	is.NoErr(store.DeleteStream(ctx, "C", 2, es.HardDelete, es.WithTx(tx)))
	is.NoErr(store.DeleteStream(ctx, "A", es.StreamExists, es.HardDelete, es.WithTx(tx)))
	is.NoErr(tx.Commit())

	for _, stream := range []string{"A", "C"} {
		_, err := store.StreamInfo(ctx, stream)
		is.True(errors.Is(err, es.ErrStreamNotFound))
	}
	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(all), []int64{3})
	is.Equal(origins(all), []string{"B/1"})
	info, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(3)) // C's events never got positions

	is.NoErr(store.AppendToStream(ctx, "D", es.NoStream, typedEvents("d", 1, 1)))
	all, err = store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(all), []int64{3, 4})
}

// Stored events are immutable: plain SQL can neither delete nor change them, whatever the store's
// configuration.
func TestDeleteTriggersRefuseDirectSQL(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a)))
	db := estest.DB(t)
	schema := store.Schema()

	for _, stmt := range []string{
		"DELETE FROM " + schema + ".events",
		"DELETE FROM " + schema + ".events WHERE stream_version = 1",
		"UPDATE " + schema + ".events SET event_type = 'x'",
		"UPDATE " + schema + ".events SET data = metadata WHERE stream_version = 2", // either data type
		"DELETE FROM " + schema + ".links",
		"UPDATE " + schema + ".links SET link_version = link_version + 10",
		"DELETE FROM " + schema + ".all_events",
		"UPDATE " + schema + ".all_events SET position = position + 10",
		"DELETE FROM " + schema + ".streams",
	} {
		_, err := db.ExecContext(ctx, stmt)
		if err == nil {
			t.Errorf("%s: succeeded", stmt)
			continue
		}
		if !pgerr.Is(err, pgerr.RestrictViolation) {
			t.Errorf("%s: got %v (SQLSTATE %q), want restrict_violation", stmt, err, pgerr.Code(err))
		}
	}

	got, err := store.ReadStreamForward(ctx, "A", 0, 10)
	is.NoErr(err)
	is.Equal(es.EventIDs(got), es.EventIDs(a))
	is.Equal(got[0].EventType, "a")
	is.Equal(got[1].Data, map[string]any{"n": float64(2)})
	is.Equal(readOrigins(t, store, "L"), []string{"A/1", "A/2"})
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(eventNumbers(all), []int64{1, 2})
}

// After a hard delete in a caller's transaction, the rest of that transaction still cannot delete
// events by SQL: the store switches its permission off again.
func TestDeleteHardInTransactionThenSQLRefused(t *testing.T) {
	store, ctx, is := setupDelete(t, true)
	appendAndRead(t, store, "A", es.NoStream, "a", 2)
	appendAndRead(t, store, "B", es.NoStream, "b", 2)
	db := estest.DB(t)
	schema := store.Schema()
	// Positions first: an open hard delete holds its stream's unsequenced appends back, and
	// others would then be numbered before them.
	_, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)

	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.DeleteStream(ctx, "A", es.AnyVersion, es.HardDelete, es.WithTx(tx)))

	var setting sql.NullString
	is.NoErr(tx.QueryRowContext(ctx, "SELECT current_setting('eventstore.enable_hard_deletes', true)").Scan(&setting))
	is.True(setting.String != "on")

	for _, stmt := range []string{
		"DELETE FROM " + schema + ".events",
		"UPDATE " + schema + ".events SET event_type = 'x'",
		"DELETE FROM " + schema + ".links",
		"DELETE FROM " + schema + ".all_events",
	} {
		_, err = tx.ExecContext(ctx, "SAVEPOINT before_sql")
		is.NoErr(err)
		_, err = tx.ExecContext(ctx, stmt)
		if !pgerr.Is(err, pgerr.RestrictViolation) {
			t.Errorf("%s in the deleting transaction: got %v, want restrict_violation", stmt, err)
		}
		_, err = tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT before_sql")
		is.NoErr(err)
	}
	// A second hard delete in the same transaction still works.
	is.NoErr(store.DeleteStream(ctx, "B", 2, es.HardDelete, es.WithTx(tx)))
	_, err = tx.ExecContext(ctx, "DELETE FROM "+schema+".events")
	is.True(err != nil)
	is.NoErr(tx.Rollback())

	// The refused SQL removed nothing, and the rollback undid both hard deletes.
	is.Equal(readAllOrigins(t, store), []string{"A/1", "A/2", "B/1", "B/2"})

	// The same, committed: the hard delete takes effect, the refused SQL does not.
	tx, err = db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.DeleteStream(ctx, "A", es.AnyVersion, es.HardDelete, es.WithTx(tx)))
	_, err = tx.ExecContext(ctx, "SAVEPOINT before_sql")
	is.NoErr(err)
	_, err = tx.ExecContext(ctx, "DELETE FROM "+schema+".events")
	is.True(err != nil)
	_, err = tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT before_sql")
	is.NoErr(err)
	is.NoErr(tx.Commit())
	is.Equal(readAllOrigins(t, store), []string{"B/1", "B/2"})
	_, err = store.StreamInfo(ctx, "A")
	is.True(errors.Is(err, es.ErrStreamNotFound))
}
