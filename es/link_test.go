package es_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

func setupLink(t *testing.T) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, nil), t.Context(), is.New(t)
}

// appendAndRead appends n events to stream at the expected version and returns the whole stream.
func appendAndRead(t *testing.T, store *es.Store, stream string, expected es.ExpectedVersion, typ string, n int) []es.RecordedEvent {
	t.Helper()
	ctx := t.Context()
	if err := store.AppendToStream(ctx, stream, expected, typedEvents(typ, 1, n)); err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	evs, err := store.ReadStreamForward(ctx, stream, 0, 10_000)
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	return evs
}

// streamVersion returns a stream's version, failing the test if StreamInfo fails.
func streamVersion(t *testing.T, store *es.Store, stream string) int64 {
	t.Helper()
	info, err := store.StreamInfo(t.Context(), stream)
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	return info.StreamVersion
}

func TestLinkToStream(t *testing.T) {
	store, ctx, is := setupLink(t)
	source := appendAndRead(t, store, "source", es.NoStream, "t", 3)

	is.NoErr(store.LinkToStream(ctx, "linked", es.NoStream, es.EventIDs(source)))
	got, err := store.ReadStreamForward(ctx, "linked", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 2, 3}) // positions in the link stream
	for i, ev := range got {
		is.Equal(ev.StreamID, "source") // the original stream and version
		is.Equal(ev.StreamVersion, int64(i+1))
		is.Equal(ev.EventID, source[i].EventID)
		is.Equal(ev.EventType, source[i].EventType)
		is.Equal(ev.Data, source[i].Data)
		is.True(ev.CreatedAt.Equal(source[i].CreatedAt))
	}
	back, err := store.ReadStreamBackward(ctx, "linked", -1, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(back), []int64{3, 2})
	is.Equal(origins(back), []string{"source/3", "source/2"})
	mid, err := store.ReadStreamForward(ctx, "linked", 2, 1)
	is.NoErr(err)
	is.Equal(origins(mid), []string{"source/2"})
	is.Equal(streamVersion(t, store, "linked"), int64(3))
	is.Equal(streamVersion(t, store, "source"), int64(3)) // the source is unchanged

	// Events read from a link stream link the original events again.
	is.NoErr(store.LinkToStream(ctx, "relinked", 0, es.EventIDs(got[1:])))
	relinked, err := store.ReadStreamForward(ctx, "relinked", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(relinked), []int64{1, 2})
	is.Equal(origins(relinked), []string{"source/2", "source/3"})
}

func TestLinkEventIDs(t *testing.T) {
	is := is.New(t)
	a, b := uuid.New(), uuid.New()
	is.Equal(es.EventIDs([]es.RecordedEvent{{EventID: a}, {EventID: b}}), []uuid.UUID{a, b})
	is.Equal(len(es.EventIDs(nil)), 0)
}

func TestLinkFromSeveralStreams(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	b := appendAndRead(t, store, "B", es.NoStream, "b", 2)

	// Linked in the order given, whatever their origin.
	is.NoErr(store.LinkToStream(ctx, "L", es.AnyVersion, []uuid.UUID{a[1].EventID, b[0].EventID, a[0].EventID}))
	is.NoErr(store.LinkToStream(ctx, "L", 3, []uuid.UUID{b[1].EventID}))
	got, err := store.ReadStreamForward(ctx, "L", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 2, 3, 4})
	is.Equal(origins(got), []string{"A/2", "B/1", "A/1", "B/2"})
	is.Equal(got[1].EventType, "b")
	is.Equal(got[1].Data, map[string]any{"n": float64(1)})

	// The same event can be linked into many streams.
	is.NoErr(store.LinkToStream(ctx, "M", es.NoStream, []uuid.UUID{a[1].EventID}))
	m, err := store.ReadStreamForward(ctx, "M", 0, 100)
	is.NoErr(err)
	is.Equal(origins(m), []string{"A/2"})

	// An iterator pages through links like events.
	it, _, err := collect(store.StreamBackward(ctx, "L", -1, es.WithBatchSize(3)))
	is.NoErr(err)
	is.Equal(origins(it), []string{"B/2", "A/1", "B/1", "A/2"})
}

// A stream holding its own events and links reads in version order.
func TestLinkMixedWithAppendedEvents(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	is.NoErr(store.AppendToStream(ctx, "L", es.NoStream, typedEvents("l", 1, 2)))
	is.NoErr(store.LinkToStream(ctx, "L", 2, es.EventIDs(a)))
	is.NoErr(store.AppendToStream(ctx, "L", 4, typedEvents("l", 5, 1)))
	is.Equal(streamVersion(t, store, "L"), int64(5))

	want := []string{"L/1", "L/2", "A/1", "A/2", "L/5"}
	got, err := store.ReadStreamForward(ctx, "L", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 2, 3, 4, 5})
	is.Equal(origins(got), want)
	is.Equal(got[4].Data, map[string]any{"n": float64(5)})

	page, err := store.ReadStreamForward(ctx, "L", 2, 2)
	is.NoErr(err)
	is.Equal(origins(page), []string{"L/2", "A/1"})
	page, err = store.ReadStreamForward(ctx, "L", 4, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(page), []int64{4, 5})
	back, err := store.ReadStreamBackward(ctx, "L", -1, 100)
	is.NoErr(err)
	is.Equal(origins(back), []string{"L/5", "A/2", "A/1", "L/2", "L/1"})
	back, err = store.ReadStreamBackward(ctx, "L", 4, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(back), []int64{4, 3})
	for _, size := range []int{1, 2, 5, 6} {
		it, _, err := collect(store.StreamForward(ctx, "L", 0, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(origins(it), want)
	}

	// $all holds the appended events only, the third of L's at its own version.
	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(origins(all), []string{"A/1", "A/2", "L/1", "L/2", "L/5"})
}

func TestLinkDuplicate(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 3)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a[:1])))

	// The same event twice into one stream, alone or with others.
	err := store.LinkToStream(ctx, "L", es.AnyVersion, es.EventIDs(a[:1]))
	is.True(errors.Is(err, es.ErrDuplicateEvent))
	err = store.LinkToStream(ctx, "L", 1, []uuid.UUID{a[1].EventID, a[0].EventID})
	is.True(errors.Is(err, es.ErrDuplicateEvent))
	// Twice in one call.
	err = store.LinkToStream(ctx, "L", 1, []uuid.UUID{a[2].EventID, a[2].EventID})
	is.True(errors.Is(err, es.ErrDuplicateEvent))
	// Into its own original stream.
	err = store.LinkToStream(ctx, "A", es.AnyVersion, es.EventIDs(a[1:2]))
	is.True(errors.Is(err, es.ErrDuplicateEvent))
	err = store.LinkToStream(ctx, "A", 3, es.EventIDs(a))
	is.True(errors.Is(err, es.ErrDuplicateEvent))

	// Nothing changed.
	is.Equal(streamVersion(t, store, "L"), int64(1))
	is.Equal(streamVersion(t, store, "A"), int64(3))
	l, err := store.ReadStreamForward(ctx, "L", 0, 100)
	is.NoErr(err)
	is.Equal(origins(l), []string{"A/1"})

	// An event appended to L cannot be linked into L either.
	is.NoErr(store.AppendToStream(ctx, "L", 1, typedEvents("l", 1, 1)))
	own, err := store.ReadStreamForward(ctx, "L", 2, 1)
	is.NoErr(err)
	is.True(errors.Is(store.LinkToStream(ctx, "L", 2, es.EventIDs(own)), es.ErrDuplicateEvent))

	// The refused events can still be linked where they are not yet.
	is.NoErr(store.LinkToStream(ctx, "L", 2, es.EventIDs(a[1:])))
	l, err = store.ReadStreamForward(ctx, "L", 0, 100)
	is.NoErr(err)
	is.Equal(origins(l), []string{"A/1", "L/2", "A/2", "A/3"})
}

func TestLinkUnknownEvent(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	unknown := uuid.New()

	err := store.LinkToStream(ctx, "L", es.AnyVersion, []uuid.UUID{unknown})
	is.True(errors.Is(err, es.ErrEventNotFound))
	_, err = store.StreamInfo(ctx, "L")
	is.True(errors.Is(err, es.ErrStreamNotFound)) // the stream was not created

	err = store.LinkToStream(ctx, "L", es.NoStream, []uuid.UUID{a[0].EventID, unknown})
	is.True(errors.Is(err, es.ErrEventNotFound))
	_, err = store.StreamInfo(ctx, "L")
	is.True(errors.Is(err, es.ErrStreamNotFound))

	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a[:1])))
	err = store.LinkToStream(ctx, "L", 1, []uuid.UUID{a[1].EventID, unknown})
	is.True(errors.Is(err, es.ErrEventNotFound))
	is.Equal(streamVersion(t, store, "L"), int64(1))
	l, err := store.ReadStreamForward(ctx, "L", 0, 100)
	is.NoErr(err)
	is.Equal(origins(l), []string{"A/1"})
	is.NoErr(store.LinkToStream(ctx, "L", 1, es.EventIDs(a[1:]))) // the known one alone is fine
	is.Equal(streamVersion(t, store, "L"), int64(2))
}

func TestLinkExpectedVersion(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 6)
	id := func(i int) []uuid.UUID { return []uuid.UUID{a[i-1].EventID} }

	// The stream does not exist yet.
	is.True(errors.Is(store.LinkToStream(ctx, "L", es.StreamExists, id(1)), es.ErrStreamNotFound))
	is.True(errors.Is(store.LinkToStream(ctx, "L", 1, id(1)), es.ErrWrongExpectedVersion))
	is.True(errors.Is(store.LinkToStream(ctx, "L", 3, id(1)), es.ErrWrongExpectedVersion))
	_, err := store.StreamInfo(ctx, "L")
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.NoErr(store.LinkToStream(ctx, "L", 0, id(1)))

	// It exists, at version 1.
	cases := []struct {
		expected es.ExpectedVersion
		want     error
	}{
		{es.NoStream, es.ErrStreamExists},
		{0, es.ErrWrongExpectedVersion},
		{2, es.ErrWrongExpectedVersion},
		{5, es.ErrWrongExpectedVersion},
		{-4, es.ErrInvalidArgument},
	}
	for _, c := range cases {
		err := store.LinkToStream(ctx, "L", c.expected, id(2))
		if !errors.Is(err, c.want) {
			t.Errorf("link expecting %d: got %v, want %v", c.expected, err, c.want)
		}
	}
	is.Equal(streamVersion(t, store, "L"), int64(1))

	is.NoErr(store.LinkToStream(ctx, "L", 1, id(2)))
	is.NoErr(store.LinkToStream(ctx, "L", es.StreamExists, id(3)))
	is.NoErr(store.LinkToStream(ctx, "L", es.AnyVersion, id(4)))
	is.NoErr(store.LinkToStream(ctx, "M", es.AnyVersion, id(4))) // AnyVersion creates a stream too
	is.Equal(streamVersion(t, store, "L"), int64(4))
	is.Equal(streamVersion(t, store, "M"), int64(1))

	// A soft-deleted stream refuses links whatever the expected version.
	is.NoErr(store.DeleteStream(ctx, "L", es.AnyVersion, es.SoftDelete))
	for _, expected := range []es.ExpectedVersion{es.AnyVersion, es.NoStream, es.StreamExists, 0, 4} {
		err := store.LinkToStream(ctx, "L", expected, id(5))
		if !errors.Is(err, es.ErrStreamDeleted) {
			t.Errorf("link to deleted stream expecting %d: got %v, want ErrStreamDeleted", expected, err)
		}
	}
}

// Links are references: $all gains nothing.
func TestLinkDoesNotAddToAll(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 3)
	before, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(before.StreamVersion, int64(3))

	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a)))
	is.NoErr(store.LinkToStream(ctx, "M", es.NoStream, es.EventIDs(a[:1])))
	after, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(after.StreamVersion, before.StreamVersion)
	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(origins(all), []string{"A/1", "A/2", "A/3"})
	is.Equal(es.EventIDs(all), es.EventIDs(a))
}

func TestLinkBadInput(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 1)
	ids := es.EventIDs(a)

	is.True(errors.Is(store.LinkToStream(ctx, es.AllStream, es.AnyVersion, ids), es.ErrCannotAppendToAll))
	is.True(errors.Is(store.LinkToStream(ctx, es.AllStream, 1, ids), es.ErrCannotAppendToAll))
	is.True(errors.Is(store.LinkToStream(ctx, "", es.AnyVersion, ids), es.ErrInvalidArgument))
	is.True(errors.Is(store.LinkToStream(ctx, "L", es.AnyVersion, nil), es.ErrInvalidArgument))
	is.True(errors.Is(store.LinkToStream(ctx, "L", es.AnyVersion, []uuid.UUID{uuid.Nil}), es.ErrInvalidArgument))
	_, err := store.StreamInfo(ctx, "L")
	is.True(errors.Is(err, es.ErrStreamNotFound))
	all, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(all.StreamVersion, int64(1))
}

// A link in a caller's transaction is visible to it only, and gone when it rolls back.
func TestLinkInTransaction(t *testing.T) {
	store, ctx, is := setupLink(t)
	a := appendAndRead(t, store, "A", es.NoStream, "a", 2)
	db := estest.DB(t)

	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a), es.WithTx(tx)))
	inside, err := store.ReadStreamForward(ctx, "L", 0, 10, es.WithTx(tx))
	is.NoErr(err)
	is.Equal(origins(inside), []string{"A/1", "A/2"})
	_, err = store.ReadStreamForward(ctx, "L", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.NoErr(tx.Rollback())
	_, err = store.StreamInfo(ctx, "L")
	is.True(errors.Is(err, es.ErrStreamNotFound))

	tx, err = db.BeginTx(ctx, nil)
	is.NoErr(err)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(a[1:]), es.WithTx(tx)))
	is.NoErr(tx.Commit())
	l, err := store.ReadStreamForward(ctx, "L", 0, 10)
	is.NoErr(err)
	is.Equal(origins(l), []string{"A/2"})
}
