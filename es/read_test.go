package es_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// readPayload is the data of the events the read, link and delete tests append.
type readPayload struct {
	N    int    `json:"n"`
	Note string `json:"note,omitempty"`
}

func setupRead(t *testing.T) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, nil), t.Context(), is.New(t)
}

// typedEvents returns n events of type typ whose data numbers them first, first+1, ...
func typedEvents(typ string, first, n int) []es.EventData {
	out := make([]es.EventData, n)
	for i := range out {
		out[i] = es.EventData{EventType: typ, Data: readPayload{N: first + i}}
	}
	return out
}

// eventNumbers lists the events' EventNumber fields.
func eventNumbers(evs []es.RecordedEvent) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventNumber
	}
	return out
}

// origins lists the events' original stream and version, as "stream/version".
func origins(evs []es.RecordedEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%s/%d", ev.StreamID, ev.StreamVersion)
	}
	return out
}

// numbersTo returns from, from+1, ..., to (or downwards when from > to).
func numbersTo(from, to int64) []int64 {
	var out []int64
	if from <= to {
		for n := from; n <= to; n++ {
			out = append(out, n)
		}
	} else {
		for n := from; n >= to; n-- {
			out = append(out, n)
		}
	}
	return out
}

// collect drains an iterator. It returns the events yielded before the first error, the number of
// errors yielded (an iterator yields an error once, then stops) and the first error. An event
// yielded after an error is returned as a zero event, to make the test fail.
func collect(seq iter.Seq2[es.RecordedEvent, error]) ([]es.RecordedEvent, int, error) {
	var (
		out    []es.RecordedEvent
		first  error
		nerror int
	)
	for ev, err := range seq {
		if err != nil {
			nerror++
			if first == nil {
				first = err
			}
			continue
		}
		if first != nil {
			out = append(out, es.RecordedEvent{})
			continue
		}
		out = append(out, ev)
	}
	return out, nerror, first
}

func TestReadStreamForward(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 5)))
	is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, typedEvents("t", 100, 2)))

	all, err := store.ReadStreamForward(ctx, "s", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(all), numbersTo(1, 5))
	for i, ev := range all {
		is.Equal(ev.StreamID, "s")
		is.Equal(ev.StreamVersion, int64(i+1))
		is.Equal(ev.EventType, "t")
		is.Equal(ev.Data, map[string]any{"n": float64(i + 1)})
		is.True(ev.EventID != uuid.Nil)
	}

	cases := []struct {
		start int64
		count int
		want  []int64
	}{
		{0, 100, numbersTo(1, 5)},
		{1, 100, numbersTo(1, 5)}, // 1 is the first event, as 0 is
		{0, 2, []int64{1, 2}},
		{3, 100, []int64{3, 4, 5}},
		{2, 2, []int64{2, 3}},
		{5, 1, []int64{5}},
		{5, 10, []int64{5}},
		{6, 10, nil},   // just past the end
		{100, 10, nil}, // far past the end
	}
	for _, c := range cases {
		got, err := store.ReadStreamForward(ctx, "s", c.start, c.count)
		is.NoErr(err)
		if !slices.Equal(eventNumbers(got), c.want) {
			t.Errorf("forward from %d count %d: got %v, want %v", c.start, c.count, eventNumbers(got), c.want)
		}
		for _, ev := range got {
			is.Equal(ev.StreamID, "s")
			is.Equal(ev.EventID, all[ev.EventNumber-1].EventID)
		}
	}
}

func TestReadStreamBackward(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 5)))
	is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, typedEvents("t", 100, 2)))
	forward, err := store.ReadStreamForward(ctx, "s", 0, 100)
	is.NoErr(err)

	cases := []struct {
		start int64
		count int
		want  []int64
	}{
		{-1, 100, numbersTo(5, 1)},
		{-1, 2, []int64{5, 4}},
		{3, 2, []int64{3, 2}},
		{3, 100, []int64{3, 2, 1}},
		{1, 10, []int64{1}},
		{5, 1, []int64{5}},
		{10, 2, []int64{5, 4}}, // a start past the end reads from the end
	}
	for _, c := range cases {
		got, err := store.ReadStreamBackward(ctx, "s", c.start, c.count)
		is.NoErr(err)
		if !slices.Equal(eventNumbers(got), c.want) {
			t.Errorf("backward from %d count %d: got %v, want %v", c.start, c.count, eventNumbers(got), c.want)
		}
		for _, ev := range got {
			is.Equal(ev.StreamID, "s")
			is.Equal(ev.StreamVersion, ev.EventNumber)
			is.Equal(ev.EventID, forward[ev.EventNumber-1].EventID)
			is.Equal(ev.Data, map[string]any{"n": float64(ev.EventNumber)})
		}
	}
}

func TestReadInvalidArguments(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 3)))

	type read func() ([]es.RecordedEvent, error)
	cases := []struct {
		name string
		read read
	}{
		{"forward start -1", func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, "s", -1, 10) }},
		{"forward count 0", func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, "s", 0, 0) }},
		{"forward count -1", func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, "s", 0, -1) }},
		{"forward empty stream", func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, "", 0, 10) }},
		{"backward start 0", func() ([]es.RecordedEvent, error) { return store.ReadStreamBackward(ctx, "s", 0, 10) }},
		{"backward start -2", func() ([]es.RecordedEvent, error) { return store.ReadStreamBackward(ctx, "s", -2, 10) }},
		{"backward count 0", func() ([]es.RecordedEvent, error) { return store.ReadStreamBackward(ctx, "s", -1, 0) }},
		{"backward empty stream", func() ([]es.RecordedEvent, error) { return store.ReadStreamBackward(ctx, "", -1, 10) }},
		{"all forward start -1", func() ([]es.RecordedEvent, error) { return store.ReadAllForward(ctx, -1, 10) }},
		{"all forward count 0", func() ([]es.RecordedEvent, error) { return store.ReadAllForward(ctx, 0, 0) }},
		{"all backward start 0", func() ([]es.RecordedEvent, error) { return store.ReadAllBackward(ctx, 0, 10) }},
		{"all backward start -5", func() ([]es.RecordedEvent, error) { return store.ReadAllBackward(ctx, -5, 10) }},
		{"all backward count -3", func() ([]es.RecordedEvent, error) { return store.ReadAllBackward(ctx, -1, -3) }},
		{"$all by name count 0", func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, es.AllStream, 0, 0) }},
		{"$all by name backward start 0", func() ([]es.RecordedEvent, error) {
			return store.ReadStreamBackward(ctx, es.AllStream, 0, 10)
		}},
		{"no event types", func() ([]es.RecordedEvent, error) { return store.ReadAllForward(ctx, 0, 10, es.WithEventTypes()) }},
		{"nil tx", func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, "s", 0, 10, es.WithTx(nil)) }},
	}
	for _, c := range cases {
		got, err := c.read()
		if !errors.Is(err, es.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", c.name, err)
		}
		is.Equal(len(got), 0)
	}
}

func TestReadUnknownStream(t *testing.T) {
	store, ctx, is := setupRead(t)
	_, err := store.ReadStreamForward(ctx, "missing", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))

	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 2)))
	_, err = store.ReadStreamForward(ctx, "missing", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	_, err = store.ReadStreamBackward(ctx, "missing", -1, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	_, err = store.ReadStreamForward(ctx, "S", 0, 10) // names are case-sensitive
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.True(err.Error() != "") // the error names the stream
}

func TestReadAllForwardAndBackward(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "A", es.NoStream, typedEvents("a", 1, 2)))
	is.NoErr(store.AppendToStream(ctx, "B", es.NoStream, typedEvents("b", 1, 3)))
	is.NoErr(store.AppendToStream(ctx, "A", 2, typedEvents("a", 3, 1)))
	wantOrigins := []string{"A/1", "A/2", "B/1", "B/2", "B/3", "A/3"}

	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(all), numbersTo(1, 6))
	is.Equal(origins(all), wantOrigins)
	// The same events as the streams hold.
	a, err := store.ReadStreamForward(ctx, "A", 0, 10)
	is.NoErr(err)
	b, err := store.ReadStreamForward(ctx, "B", 0, 10)
	is.NoErr(err)
	is.Equal(es.EventIDs(all), []uuid.UUID{a[0].EventID, a[1].EventID, b[0].EventID, b[1].EventID, b[2].EventID, a[2].EventID})
	is.Equal(all[5].Data, map[string]any{"n": float64(3)})
	is.Equal(all[5].EventType, "a")
	is.Equal(all[5].CreatedAt, a[2].CreatedAt)

	from1, err := store.ReadAllForward(ctx, 1, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(from1), numbersTo(1, 6))
	mid, err := store.ReadAllForward(ctx, 3, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(mid), []int64{3, 4})
	is.Equal(origins(mid), []string{"B/1", "B/2"})
	past, err := store.ReadAllForward(ctx, 7, 10)
	is.NoErr(err)
	is.Equal(len(past), 0)

	back, err := store.ReadAllBackward(ctx, -1, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(back), numbersTo(6, 1))
	is.Equal(origins(back), []string{"A/3", "B/3", "B/2", "B/1", "A/2", "A/1"})
	backMid, err := store.ReadAllBackward(ctx, 4, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(backMid), []int64{4, 3})
	backFar, err := store.ReadAllBackward(ctx, 100, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(backFar), []int64{6, 5})

	// ReadStream* on AllStream read $all.
	byName, err := store.ReadStreamForward(ctx, es.AllStream, 0, 100)
	is.NoErr(err)
	is.Equal(es.EventIDs(byName), es.EventIDs(all))
	is.Equal(eventNumbers(byName), numbersTo(1, 6))
	byNameMid, err := store.ReadStreamForward(ctx, es.AllStream, 5, 100)
	is.NoErr(err)
	is.Equal(origins(byNameMid), []string{"B/3", "A/3"})
	byNameBack, err := store.ReadStreamBackward(ctx, es.AllStream, -1, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(byNameBack), []int64{6, 5})
}

func TestReadAllEmptyStore(t *testing.T) {
	store, ctx, is := setupRead(t)
	fwd, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(fwd), 0)
	back, err := store.ReadAllBackward(ctx, -1, 10)
	is.NoErr(err)
	is.Equal(len(back), 0)
	got, nerr, err := collect(store.StreamAllForward(ctx, 0))
	is.NoErr(err)
	is.Equal(nerr, 0)
	is.Equal(len(got), 0)
}

func TestReadAllWithEventTypes(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s1", es.NoStream, []es.EventData{
		{EventType: "a", Data: 1}, {EventType: "b", Data: 2}, {EventType: "a", Data: 3},
	}))
	is.NoErr(store.AppendToStream(ctx, "s2", es.NoStream, []es.EventData{
		{EventType: "c", Data: 4}, {EventType: "b", Data: 5},
	}))
	// $all: 1 a, 2 b, 3 a, 4 c, 5 b

	read := func(start int64, count int, types ...string) []int64 {
		t.Helper()
		got, err := store.ReadAllForward(ctx, start, count, es.WithEventTypes(types...))
		is.NoErr(err)
		for _, ev := range got {
			is.True(slices.Contains(types, ev.EventType))
		}
		return eventNumbers(got)
	}
	is.Equal(read(0, 100, "b"), []int64{2, 5})
	is.Equal(read(0, 100, "a", "c"), []int64{1, 3, 4})
	is.Equal(read(0, 2, "a", "c"), []int64{1, 3}) // the count applies after the filter
	is.Equal(read(2, 100, "a"), []int64{3})
	is.Equal(len(read(0, 100, "unknown")), 0)
	is.Equal(read(0, 100, "a", "b", "c"), numbersTo(1, 5))

	back, err := store.ReadAllBackward(ctx, -1, 100, es.WithEventTypes("a", "c"))
	is.NoErr(err)
	is.Equal(eventNumbers(back), []int64{4, 3, 1})
	back, err = store.ReadAllBackward(ctx, 3, 1, es.WithEventTypes("b"))
	is.NoErr(err)
	is.Equal(eventNumbers(back), []int64{2})

	// Repeated options add up.
	both, err := store.ReadAllForward(ctx, 0, 100, es.WithEventTypes("a"), es.WithEventTypes("c"))
	is.NoErr(err)
	is.Equal(eventNumbers(both), []int64{1, 3, 4})

	// Through ReadStreamForward(AllStream) too.
	byName, err := store.ReadStreamForward(ctx, es.AllStream, 0, 100, es.WithEventTypes("b"))
	is.NoErr(err)
	is.Equal(eventNumbers(byName), []int64{2, 5})

	// The iterators page through filtered reads: full pages, then a short last one.
	for _, size := range []int{1, 2, 3, 100} {
		got, _, err := collect(store.StreamAllForward(ctx, 0, es.WithEventTypes("a", "c"), es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), []int64{1, 3, 4})
		got, _, err = collect(store.StreamAllBackward(ctx, -1, es.WithEventTypes("a", "c"), es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), []int64{4, 3, 1})
	}
	got, _, err := collect(store.StreamAllForward(ctx, 2, es.WithEventTypes("b"), es.WithBatchSize(1)))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{2, 5})
}

// WithEventTypes on stream reads: own events and links, both directions, paged; the last event
// of a type is one read.
func TestReadStreamWithEventTypes(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{
		{EventType: "a", Data: 1}, {EventType: "b", Data: 2}, {EventType: "a", Data: 3}, {EventType: "c", Data: 4},
	}))
	is.NoErr(store.AppendToStream(ctx, "s", 4, typedEvents("b", 5, 50))) // 5..54
	is.NoErr(store.AppendToStream(ctx, "t", es.NoStream, typedEvents("c", 1, 2)))

	last, err := store.ReadStreamBackward(ctx, "s", -1, 1, es.WithEventTypes("a"))
	is.NoErr(err)
	is.Equal(eventNumbers(last), []int64{3})
	is.Equal(last[0].Data, float64(3))
	got, err := store.ReadStreamForward(ctx, "s", 0, 100, es.WithEventTypes("a", "c"))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 3, 4})
	got, err = store.ReadStreamForward(ctx, "s", 2, 2, es.WithEventTypes("a", "c", "a"))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{3, 4})
	got, err = store.ReadStreamBackward(ctx, "s", 3, 100, es.WithEventTypes("a", "b"))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{3, 2, 1})
	got, err = store.ReadStreamForward(ctx, "s", 0, 100, es.WithEventTypes("none"))
	is.NoErr(err)
	is.Equal(len(got), 0)
	got, _, err = collect(store.StreamForward(ctx, "s", 0, es.WithEventTypes("b"), es.WithBatchSize(7)))
	is.NoErr(err)
	is.Equal(eventNumbers(got), append([]int64{2}, numbersTo(5, 54)...))
	got, _, err = collect(store.StreamBackward(ctx, "s", -1, es.WithEventTypes("a", "c"), es.WithBatchSize(1)))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{4, 3, 1})

	// Links are filtered by their event's type, and numbered in the link stream.
	tEvents, err := store.ReadStreamForward(ctx, "t", 0, 10)
	is.NoErr(err)
	sEvents, err := store.ReadStreamForward(ctx, "s", 0, 4)
	is.NoErr(err)
	is.NoErr(store.LinkToStream(ctx, "L", es.NoStream, es.EventIDs(append(sEvents, tEvents...)))) // a b a c c c
	got, err = store.ReadStreamForward(ctx, "L", 0, 100, es.WithEventTypes("c"))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{4, 5, 6})
	is.Equal(origins(got), []string{"s/4", "t/1", "t/2"})
	got, err = store.ReadStreamBackward(ctx, "L", -1, 1, es.WithEventTypes("a"))
	is.NoErr(err)
	is.Equal(origins(got), []string{"s/3"})

	// Missing and soft-deleted streams answer as unfiltered reads do.
	_, err = store.ReadStreamForward(ctx, "missing", 0, 10, es.WithEventTypes("a"))
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.NoErr(store.DeleteStream(ctx, "t", es.AnyVersion, es.SoftDelete))
	_, err = store.ReadStreamBackward(ctx, "t", -1, 1, es.WithEventTypes("c"))
	is.True(errors.Is(err, es.ErrStreamDeleted))
	_, err = store.ReadStreamForward(ctx, "s", 0, 10, es.WithEventTypes("a\x00"))
	is.True(errors.Is(err, es.ErrInvalidArgument))
}

func TestReadIterators(t *testing.T) {
	store, ctx, is := setupRead(t)
	const n = 12
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, n)))
	is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, typedEvents("t", 100, 3)))

	// 1, 3, 4, 6 and 12 divide the count exactly; 5, 7, 13 and the default do not.
	sizes := []int{1, 3, 4, 5, 6, 7, 12, 13, 0}
	for _, size := range sizes {
		var opts []es.Option
		if size > 0 {
			opts = append(opts, es.WithBatchSize(size))
		}
		check := func(name string, seq iter.Seq2[es.RecordedEvent, error], want []int64) {
			t.Helper()
			got, _, err := collect(seq)
			is.NoErr(err)
			if !slices.Equal(eventNumbers(got), want) {
				t.Errorf("%s batch %d: got %v, want %v", name, size, eventNumbers(got), want)
			}
			for _, ev := range got {
				is.Equal(ev.StreamID, "s")
				is.Equal(ev.StreamVersion, ev.EventNumber)
				is.Equal(ev.Data, map[string]any{"n": float64(ev.EventNumber)})
			}
		}
		check("forward", store.StreamForward(ctx, "s", 0, opts...), numbersTo(1, n))
		check("forward from 1", store.StreamForward(ctx, "s", 1, opts...), numbersTo(1, n))
		check("forward from 5", store.StreamForward(ctx, "s", 5, opts...), numbersTo(5, n))
		check("forward past end", store.StreamForward(ctx, "s", n+1, opts...), nil)
		check("backward", store.StreamBackward(ctx, "s", -1, opts...), numbersTo(n, 1))
		check("backward from 8", store.StreamBackward(ctx, "s", 8, opts...), numbersTo(8, 1))
		check("backward from 1", store.StreamBackward(ctx, "s", 1, opts...), []int64{1})
	}
}

func TestReadAllIterators(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "A", es.NoStream, typedEvents("t", 1, 3)))
	is.NoErr(store.AppendToStream(ctx, "B", es.NoStream, typedEvents("t", 1, 3)))
	wantOrigins := []string{"A/1", "A/2", "A/3", "B/1", "B/2", "B/3"}
	reversed := slices.Clone(wantOrigins)
	slices.Reverse(reversed)

	for _, size := range []int{1, 2, 3, 4, 6, 7} { // 1, 2, 3, 6 divide the six events; 4, 7 do not
		got, _, err := collect(store.StreamAllForward(ctx, 0, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), numbersTo(1, 6))
		is.Equal(origins(got), wantOrigins)

		got, _, err = collect(store.StreamAllBackward(ctx, -1, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), numbersTo(6, 1))
		is.Equal(origins(got), reversed)

		got, _, err = collect(store.StreamAllForward(ctx, 3, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), numbersTo(3, 6))

		got, _, err = collect(store.StreamAllBackward(ctx, 4, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), numbersTo(4, 1))

		got, _, err = collect(store.StreamBackward(ctx, es.AllStream, -1, es.WithBatchSize(size)))
		is.NoErr(err)
		is.Equal(eventNumbers(got), numbersTo(6, 1))
	}
	got, _, err := collect(store.StreamAllForward(ctx, 0)) // default batch size
	is.NoErr(err)
	is.Equal(eventNumbers(got), numbersTo(1, 6))
}

func TestReadIteratorBreakEarly(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 10)))

	seqs := map[string]struct {
		seq  iter.Seq2[es.RecordedEvent, error]
		want []int64
	}{
		"forward":     {store.StreamForward(ctx, "s", 0, es.WithBatchSize(3)), []int64{1, 2, 3, 4}},
		"backward":    {store.StreamBackward(ctx, "s", -1, es.WithBatchSize(3)), []int64{10, 9, 8, 7}},
		"all forward": {store.StreamAllForward(ctx, 0, es.WithBatchSize(3)), []int64{1, 2, 3, 4}},
		"all back":    {store.StreamAllBackward(ctx, -1, es.WithBatchSize(3)), []int64{10, 9, 8, 7}},
		"in batch":    {store.StreamForward(ctx, "s", 0, es.WithBatchSize(10)), []int64{1, 2, 3, 4}},
	}
	for name, c := range seqs {
		// Breaking stops the iteration (range-over-func panics if the iterator yields again).
		var got []int64
		for ev, err := range c.seq {
			is.NoErr(err)
			got = append(got, ev.EventNumber)
			if len(got) == 4 {
				break
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %v, want %v", name, got, c.want)
		}
		// A sequence can be iterated again, from its start.
		again, _, err := collect(c.seq)
		is.NoErr(err)
		is.Equal(len(again), 10)
		is.Equal(again[0].EventNumber, c.want[0])
	}
}

func TestReadIteratorErrors(t *testing.T) {
	store, ctx, is := setupRead(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 3)))

	cases := []struct {
		name string
		seq  iter.Seq2[es.RecordedEvent, error]
		want error
	}{
		{"forward missing", store.StreamForward(ctx, "missing", 0), es.ErrStreamNotFound},
		{"backward missing", store.StreamBackward(ctx, "missing", -1, es.WithBatchSize(2)), es.ErrStreamNotFound},
		{"batch size 0", store.StreamForward(ctx, "s", 0, es.WithBatchSize(0)), es.ErrInvalidArgument},
		{"batch size -1 $all", store.StreamAllForward(ctx, 0, es.WithBatchSize(-1)), es.ErrInvalidArgument},
		{"forward start -1", store.StreamForward(ctx, "s", -1), es.ErrInvalidArgument},
		{"backward start 0", store.StreamBackward(ctx, "s", 0), es.ErrInvalidArgument},
		{"all backward start 0", store.StreamAllBackward(ctx, 0), es.ErrInvalidArgument},
		{"empty stream", store.StreamForward(ctx, "", 0), es.ErrInvalidArgument},
	}
	for _, c := range cases {
		got, nerr, err := collect(c.seq)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		is.Equal(nerr, 1) // yielded once, then the iteration ended
		is.Equal(len(got), 0)
	}

	// A cancelled context ends the iteration with the context's error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	got, nerr, err := collect(store.StreamForward(cctx, "s", 0, es.WithBatchSize(1)))
	is.True(errors.Is(err, context.Canceled))
	is.Equal(nerr, 1)
	is.Equal(len(got), 0)
}

// Event types the serializer has not registered decode to generic values; registered ones to
// their Go type, in stream reads, $all reads and iterators alike.
func TestReadDecodesData(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ser := es.NewJSONSerializer()
	is.NoErr(ser.Register("read.registered", readPayload{}))
	store := estest.NewStore(t, &es.Config{Serializer: ser})
	ctx := t.Context()

	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{
		{Data: readPayload{N: 1, Note: "typed"}}, // named by the serializer
		{EventType: "read.unknown", Data: readPayload{N: 2, Note: "generic"}},
		{EventType: "read.string", Data: "text"},
		{EventType: "read.number", Data: 42},
		{EventType: "read.list", Data: []int{1, 2}},
		{EventType: "read.null", Data: nil},
		{EventType: "read.registered", Data: map[string]any{"n": 7}, Metadata: map[string]any{"k": "v", "nested": map[string]any{"x": 1}}},
	}))
	want := []struct {
		typ  string
		data any
	}{
		{"read.registered", readPayload{N: 1, Note: "typed"}},
		{"read.unknown", map[string]any{"n": float64(2), "note": "generic"}},
		{"read.string", "text"},
		{"read.number", float64(42)},
		{"read.list", []any{float64(1), float64(2)}},
		{"read.null", nil},
		{"read.registered", readPayload{N: 7}},
	}
	check := func(got []es.RecordedEvent) {
		t.Helper()
		is.Equal(len(got), len(want))
		for i, ev := range got {
			is.Equal(ev.EventType, want[i].typ)
			is.Equal(ev.Data, want[i].data)
		}
		is.Equal(got[6].Metadata, map[string]any{"k": "v", "nested": map[string]any{"x": float64(1)}})
		is.Equal(got[0].Metadata, map[string]any(nil))
	}
	fwd, err := store.ReadStreamForward(ctx, "s", 0, 100)
	is.NoErr(err)
	check(fwd)
	all, err := store.ReadAllForward(ctx, 0, 100)
	is.NoErr(err)
	check(all)
	back, err := store.ReadAllBackward(ctx, -1, 100)
	is.NoErr(err)
	slices.Reverse(back)
	check(back)
	iterated, _, err := collect(store.StreamForward(ctx, "s", 0, es.WithBatchSize(2)))
	is.NoErr(err)
	check(iterated)

	// A store without the registration reads the same events generically.
	plain, err := es.New(estest.DB(t), &es.Config{Schema: store.Schema()})
	is.NoErr(err)
	defer plain.Close()
	generic, err := plain.ReadStreamForward(ctx, "s", 1, 1)
	is.NoErr(err)
	is.Equal(generic[0].Data, map[string]any{"n": float64(1), "note": "typed"})
}
