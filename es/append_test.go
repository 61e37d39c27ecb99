package es_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

type deposited struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
}

func setupAppend(t *testing.T) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, nil), t.Context(), is.New(t)
}

func events(n int) []es.EventData {
	out := make([]es.EventData, n)
	for i := range out {
		out[i] = es.EventData{EventType: "deposited", Data: deposited{Account: "a", Amount: i + 1}}
	}
	return out
}

func TestAppendNewStream(t *testing.T) {
	store, ctx, is := setupAppend(t)
	for _, expected := range []es.ExpectedVersion{0, es.NoStream, es.AnyVersion} {
		stream := fmt.Sprintf("new-%d", expected)
		is.NoErr(store.AppendToStream(ctx, stream, expected, events(3)))
		got, err := store.ReadStreamForward(ctx, stream, 0, 10)
		is.NoErr(err)
		is.Equal(len(got), 3)
		for i, ev := range got {
			is.Equal(ev.EventNumber, int64(i+1))
			is.Equal(ev.StreamVersion, int64(i+1))
			is.Equal(ev.StreamID, stream)
			is.Equal(ev.EventType, "deposited")
		}
		info, err := store.StreamInfo(ctx, stream)
		is.NoErr(err)
		is.Equal(info.StreamVersion, int64(3))
	}
}

// The expected-version rules, in the seed's order: a soft-deleted stream refuses every append
// first, then each mode checks existence and version.
func TestAppendExpectedVersionRules(t *testing.T) {
	store, ctx, is := setupAppend(t)
	const missing, existing, deleted = "missing", "existing", "deleted"
	is.NoErr(store.AppendToStream(ctx, existing, es.NoStream, events(2)))
	is.NoErr(store.AppendToStream(ctx, deleted, es.NoStream, events(2)))
	is.NoErr(store.DeleteStream(ctx, deleted, es.AnyVersion, es.SoftDelete))

	cases := []struct {
		stream   string
		expected es.ExpectedVersion
		want     error
	}{
		{missing, es.StreamExists, es.ErrStreamNotFound},
		{missing, 1, es.ErrWrongExpectedVersion},
		{missing, 5, es.ErrWrongExpectedVersion},
		{existing, es.NoStream, es.ErrStreamExists},
		{existing, 0, es.ErrWrongExpectedVersion},
		{existing, 1, es.ErrWrongExpectedVersion},
		{existing, 3, es.ErrWrongExpectedVersion},
		{deleted, es.AnyVersion, es.ErrStreamDeleted},
		{deleted, es.NoStream, es.ErrStreamDeleted},
		{deleted, es.StreamExists, es.ErrStreamDeleted},
		{deleted, 0, es.ErrStreamDeleted},
		{deleted, 2, es.ErrStreamDeleted},
		{deleted, 3, es.ErrStreamDeleted},
	}
	for _, c := range cases {
		err := store.AppendToStream(ctx, c.stream, c.expected, events(1))
		if !errors.Is(err, c.want) {
			t.Errorf("append to %s expecting %d: got %v, want %v", c.stream, c.expected, err, c.want)
		}
		// A refused append changes nothing.
		info, _ := store.StreamInfo(ctx, c.stream)
		if c.stream != missing {
			is.Equal(info.StreamVersion, int64(2))
		}
	}
	_, err := store.StreamInfo(ctx, missing)
	is.True(errors.Is(err, es.ErrStreamNotFound))

	// And the ones that hold.
	is.NoErr(store.AppendToStream(ctx, existing, 2, events(1)))
	is.NoErr(store.AppendToStream(ctx, existing, es.StreamExists, events(1)))
	is.NoErr(store.AppendToStream(ctx, existing, es.AnyVersion, events(1)))
	info, err := store.StreamInfo(ctx, existing)
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(5))
}

func TestAppendBadInput(t *testing.T) {
	store, ctx, is := setupAppend(t)
	cases := []struct {
		name     string
		stream   string
		expected es.ExpectedVersion
		events   []es.EventData
		want     error
	}{
		{"empty stream", "", es.AnyVersion, events(1), es.ErrInvalidArgument},
		{"$all", es.AllStream, es.AnyVersion, events(1), es.ErrCannotAppendToAll},
		{"no events", "s", es.AnyVersion, nil, es.ErrInvalidArgument},
		{"bad expected", "s", -4, events(1), es.ErrInvalidArgument},
		{"no type, unnameable data", "s", es.AnyVersion, []es.EventData{{Data: map[string]any{"a": 1}}}, es.ErrInvalidArgument},
		{"unencodable data", "s", es.AnyVersion, []es.EventData{{EventType: "x", Data: func() {}}}, es.ErrInvalidArgument},
		{"invalid raw JSON", "s", es.AnyVersion, []es.EventData{{EventType: "x", Data: json.RawMessage(`{"a":`)}}, es.ErrInvalidArgument},
		{"unencodable metadata", "s", es.AnyVersion, []es.EventData{{EventType: "x", Data: 1, Metadata: map[string]any{"c": make(chan int)}}}, es.ErrInvalidArgument},
	}
	for _, c := range cases {
		err := store.AppendToStream(ctx, c.stream, c.expected, c.events)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	_, err := store.StreamInfo(ctx, "s")
	is.True(errors.Is(err, es.ErrStreamNotFound)) // nothing was written
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 0)

	var nilStore *es.Store
	is.True(errors.Is(nilStore.AppendToStream(ctx, "s", es.AnyVersion, events(1)), es.ErrInvalidArgument))
}

func TestAppendDuplicateEventID(t *testing.T) {
	store, ctx, is := setupAppend(t)
	id := uuid.New()
	twice := []es.EventData{{EventID: id, EventType: "a", Data: 1}, {EventID: id, EventType: "a", Data: 2}}
	is.True(errors.Is(store.AppendToStream(ctx, "s", es.AnyVersion, twice), es.ErrDuplicateEvent))

	is.NoErr(store.AppendToStream(ctx, "s", es.AnyVersion, twice[:1]))
	err := store.AppendToStream(ctx, "other", es.AnyVersion, append(events(3), twice[1]))
	is.True(errors.Is(err, es.ErrDuplicateEvent))
	_, err = store.StreamInfo(ctx, "other")
	is.True(errors.Is(err, es.ErrStreamNotFound)) // the whole append was refused
}

// An append of any size is one atomic statement.
func TestAppendLargeBatchIsAtomic(t *testing.T) {
	store, ctx, is := setupAppend(t)
	const n = 12_000
	is.NoErr(store.AppendToStream(ctx, "big", es.NoStream, events(n)))
	count := 0
	for ev, err := range store.StreamForward(ctx, "big", 0, es.WithBatchSize(5000)) {
		is.NoErr(err)
		count++
		is.Equal(ev.EventNumber, int64(count))
	}
	is.Equal(count, n)

	// A failure at the very last event leaves nothing of the append behind.
	batch := events(n)
	first, err := store.ReadStreamForward(ctx, "big", 1, 1)
	is.NoErr(err)
	batch[n-1].EventID = first[0].EventID
	is.True(errors.Is(store.AppendToStream(ctx, "big", n, batch), es.ErrDuplicateEvent))
	info, err := store.StreamInfo(ctx, "big")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(n))
	all, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(all.StreamVersion, int64(n))
}

func TestAppendEventFieldsRoundTrip(t *testing.T) {
	store, ctx, is := setupAppend(t)
	id, cause, corr := uuid.New(), uuid.New(), uuid.New()
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{{
		EventID: id, EventType: "deposited", Data: deposited{"acc", 5},
		Metadata: map[string]any{"user": "u@example.com"}, CausationID: cause, CorrelationID: corr,
	}, {EventType: "plain", Data: "text"}}))
	got, err := store.ReadStreamForward(ctx, "s", 0, 10)
	is.NoErr(err)
	is.Equal(len(got), 2)
	is.Equal(got[0].EventID, id)
	is.Equal(got[0].CausationID, cause)
	is.Equal(got[0].CorrelationID, corr)
	is.Equal(got[0].Metadata["user"], "u@example.com")
	is.Equal(got[0].Data, map[string]any{"account": "acc", "amount": float64(5)}) // not registered: generic
	is.True(!got[0].CreatedAt.IsZero())
	is.Equal(got[1].CausationID, uuid.Nil)
	is.Equal(got[1].Metadata, map[string]any(nil))
	is.Equal(got[1].Data, "text")
	is.True(got[1].EventID != uuid.Nil) // generated

	// No causation at all (its column is sent empty) and a correlation on the last event only.
	is.NoErr(store.AppendToStream(ctx, "t", es.NoStream, []es.EventData{
		{EventType: "e", Data: 1}, {EventType: "e", Data: 2}, {EventType: "e", Data: 3, CorrelationID: corr},
	}))
	got, err = store.ReadStreamForward(ctx, "t", 0, 10)
	is.NoErr(err)
	is.Equal(len(got), 3)
	for i, ev := range got {
		is.Equal(ev.CausationID, uuid.Nil)
		is.Equal(ev.Data, float64(i+1))
	}
	is.Equal([]uuid.UUID{got[0].CorrelationID, got[1].CorrelationID, got[2].CorrelationID}, []uuid.UUID{uuid.Nil, uuid.Nil, corr})
}

func TestAppendRegisteredTypes(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ser := es.NewJSONSerializer()
	is.NoErr(ser.Register("bank.deposited", deposited{}))
	is.True(errors.Is(ser.Register("other", &deposited{}), es.ErrInvalidArgument)) // one name per type
	store := estest.NewStore(t, &es.Config{Serializer: ser})
	ctx := t.Context()

	// No EventType: the serializer names registered data.
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{{Data: &deposited{"x", 7}}}))
	got, err := store.ReadStreamForward(ctx, "s", 0, 1)
	is.NoErr(err)
	is.Equal(got[0].EventType, "bank.deposited")
	is.Equal(got[0].Data, deposited{"x", 7})
}

// Concurrent appends with the same exact expected version: one wins, the others are refused.
func TestAppendConcurrentExpectedVersion(t *testing.T) {
	store, ctx, is := setupAppend(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(1)))
	const writers = 10
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() { errs[i] = store.AppendToStream(ctx, "s", 1, events(2)) })
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else {
			is.True(errors.Is(err, es.ErrWrongExpectedVersion))
		}
	}
	is.Equal(won, 1)
	info, err := store.StreamInfo(ctx, "s")
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(3))
}

// Concurrent AnyVersion appends, new stream included, all succeed with contiguous versions.
func TestAppendConcurrentAnyVersion(t *testing.T) {
	store, ctx, is := setupAppend(t)
	const writers, each = 10, 5
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() { errs[i] = store.AppendToStream(ctx, "s", es.AnyVersion, events(each)) })
	}
	wg.Wait()
	for _, err := range errs {
		is.NoErr(err)
	}
	got, err := store.ReadStreamForward(ctx, "s", 0, 1000)
	is.NoErr(err)
	is.Equal(len(got), writers*each)
	for i, ev := range got {
		is.Equal(ev.StreamVersion, int64(i+1))
	}
}

// Events of one append sharing a metadata map, or each with its own, all read back their own,
// and every read event's metadata is a map of its own.
func TestAppendMetadataSharedAndDistinct(t *testing.T) {
	store, ctx, is := setupAppend(t)
	shared := map[string]any{"user": "u-1"}
	other := map[string]any{"user": "u-2", "tags": []any{"a"}}
	evs := []es.EventData{
		{EventType: "e", Data: 1, Metadata: shared},
		{EventType: "e", Data: 2, Metadata: shared},
		{EventType: "e", Data: 3, Metadata: other},
		{EventType: "e", Data: 4},
		{EventType: "e", Data: 5, Metadata: other},
		{EventType: "e", Data: 6, Metadata: shared},
	}
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, evs))
	want := []map[string]any{
		{"user": "u-1"}, {"user": "u-1"}, {"user": "u-2", "tags": []any{"a"}}, nil,
		{"user": "u-2", "tags": []any{"a"}}, {"user": "u-1"},
	}
	for _, read := range []func() ([]es.RecordedEvent, error){
		func() ([]es.RecordedEvent, error) { return store.ReadStreamForward(ctx, "s", 0, 10) },
		func() ([]es.RecordedEvent, error) { return store.ReadAllForward(ctx, 0, 10) },
	} {
		got, err := read()
		is.NoErr(err)
		is.Equal(len(got), len(want))
		for i, ev := range got {
			is.Equal(ev.Metadata, want[i])
		}
		got[0].Metadata["user"] = "changed"
		is.Equal(got[1].Metadata["user"], "u-1") // not the same map
	}
}

// Data registered as json.RawMessage is stored and read back byte for byte (a jsonb schema keeps
// the JSON value, in its own text form).
func TestAppendRawMessageRoundTrip(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ser := es.NewJSONSerializer()
	is.NoErr(ser.Register("raw", json.RawMessage(nil)))
	store := estest.NewStore(t, &es.Config{Serializer: ser})
	ctx := t.Context()
	data := json.RawMessage(`{ "spaced" : [1, 2.50, "x"] }`)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{{EventType: "raw", Data: data}, {EventType: "raw", Data: data}}))
	got, err := store.ReadStreamForward(ctx, "s", 0, 10)
	is.NoErr(err)
	is.Equal(len(got), 2)
	for _, ev := range got {
		if os.Getenv("ES_TEST_DATA_TYPE") == "jsonb" {
			var want, have any
			is.NoErr(json.Unmarshal(data, &want))
			is.NoErr(json.Unmarshal(ev.Data.(json.RawMessage), &have))
			is.Equal(have, want)
			continue
		}
		is.Equal(ev.Data, data)
	}
}
