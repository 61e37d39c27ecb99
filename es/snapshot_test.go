package es_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

type snapAccount struct {
	Owner   string   `json:"owner"`
	Balance int      `json:"balance"`
	Tags    []string `json:"tags,omitempty"`
}

// snapCounter is a named type that is never registered.
type snapCounter struct {
	Count int `json:"count"`
}

// setupSnapshot returns a store whose serializer maps "snap.account" to snapAccount.
func setupSnapshot(t *testing.T) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	is := is.New(t)
	ser := es.NewJSONSerializer()
	is.NoErr(ser.Register("snap.account", snapAccount{}))
	return estest.NewStore(t, &es.Config{Serializer: ser}), t.Context(), is
}

func TestSnapshotRecordAndReadTyped(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	start := time.Now()
	state := snapAccount{Owner: "ann", Balance: 120, Tags: []string{"gold"}}
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "acc-1", SourceVersion: 5, Data: state, // SourceType named by the serializer
		Metadata: map[string]any{"by": "test"},
	}))
	got, err := store.ReadSnapshot(ctx, "acc-1")
	is.NoErr(err)
	is.Equal(got.SourceID, "acc-1")
	is.Equal(got.SourceVersion, int64(5))
	is.Equal(got.SourceType, "snap.account")
	is.Equal(got.Data, state) // the registered Go type, as a value
	is.Equal(got.Metadata, map[string]any{"by": "test"})
	is.True(got.CreatedAt.After(start.Add(-time.Minute)) && got.CreatedAt.Before(time.Now().Add(time.Minute)))

	// A pointer to the registered type, and an explicit SourceType, decode the same way.
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "acc-2", SourceVersion: 1, Data: &snapAccount{Owner: "bob"}}))
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "acc-3", SourceVersion: 2, SourceType: "snap.account", Data: map[string]any{"owner": "cy", "balance": 3},
	}))
	two, err := store.ReadSnapshot(ctx, "acc-2")
	is.NoErr(err)
	is.Equal(two.SourceType, "snap.account")
	is.Equal(two.Data, snapAccount{Owner: "bob"})
	is.Equal(two.Metadata, map[string]any(nil))
	three, err := store.ReadSnapshot(ctx, "acc-3")
	is.NoErr(err)
	is.Equal(three.Data, snapAccount{Owner: "cy", Balance: 3})

	// The first is unchanged by the others.
	again, err := store.ReadSnapshot(ctx, "acc-1")
	is.NoErr(err)
	is.Equal(again.Data, state)
}

func TestSnapshotRecordAndReadGeneric(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "g-1", SourceVersion: 3, SourceType: "thing", Data: map[string]any{"a": 1, "b": []int{1, 2}},
	}))
	got, err := store.ReadSnapshot(ctx, "g-1")
	is.NoErr(err)
	is.Equal(got.SourceType, "thing")
	is.Equal(got.Data, map[string]any{"a": float64(1), "b": []any{float64(1), float64(2)}})

	// A named but unregistered type is stored under its Go name and read back generically.
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "g-2", SourceVersion: 1, Data: snapCounter{Count: 9}}))
	got, err = store.ReadSnapshot(ctx, "g-2")
	is.NoErr(err)
	is.Equal(got.SourceType, "es_test.snapCounter")
	is.Equal(got.Data, map[string]any{"count": float64(9)})

	// Scalars and null.
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "g-3", SourceType: "text", Data: "hello"}))
	got, err = store.ReadSnapshot(ctx, "g-3")
	is.NoErr(err)
	is.Equal(got.Data, "hello")
	is.Equal(got.SourceVersion, int64(0))
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "g-4", SourceType: "none", Data: nil}))
	got, err = store.ReadSnapshot(ctx, "g-4")
	is.NoErr(err)
	is.Equal(got.Data, nil)
}

// Recording again replaces the snapshot: version, type, data, metadata and time.
func TestSnapshotRecordAgainUpserts(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	first := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "acc", SourceVersion: 1, Data: snapAccount{Owner: "ann", Balance: 1},
		Metadata: map[string]any{"v": 1}, CreatedAt: first,
	}))
	second := first.Add(time.Hour)
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "acc", SourceVersion: 10, Data: snapAccount{Owner: "ann", Balance: 10}, CreatedAt: second,
	}))
	got, err := store.ReadSnapshot(ctx, "acc")
	is.NoErr(err)
	is.Equal(got.SourceVersion, int64(10))
	is.Equal(got.Data, snapAccount{Owner: "ann", Balance: 10})
	is.Equal(got.Metadata, map[string]any(nil))
	is.True(got.CreatedAt.Equal(second))

	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "acc", SourceVersion: 11, SourceType: "other", Data: []string{"x"}, Metadata: map[string]any{"v": 2},
	}))
	got, err = store.ReadSnapshot(ctx, "acc")
	is.NoErr(err)
	is.Equal(got.SourceVersion, int64(11))
	is.Equal(got.SourceType, "other")
	is.Equal(got.Data, []any{"x"})
	is.Equal(got.Metadata, map[string]any{"v": float64(2)})
	is.True(got.CreatedAt.After(second))
}

func TestSnapshotNotFoundAndDelete(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	_, err := store.ReadSnapshot(ctx, "missing")
	is.True(errors.Is(err, es.ErrSnapshotNotFound))
	is.NoErr(store.DeleteSnapshot(ctx, "missing")) // deleting a missing snapshot is fine

	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "a", SourceVersion: 1, Data: snapAccount{Owner: "a"}}))
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "b", SourceVersion: 2, Data: snapAccount{Owner: "b"}}))
	is.NoErr(store.DeleteSnapshot(ctx, "a"))
	_, err = store.ReadSnapshot(ctx, "a")
	is.True(errors.Is(err, es.ErrSnapshotNotFound))
	is.NoErr(store.DeleteSnapshot(ctx, "a")) // twice is fine too
	b, err := store.ReadSnapshot(ctx, "b")   // others are untouched
	is.NoErr(err)
	is.Equal(b.Data, snapAccount{Owner: "b"})

	// A deleted snapshot can be recorded again.
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "a", SourceVersion: 3, Data: snapAccount{Owner: "a2"}}))
	a, err := store.ReadSnapshot(ctx, "a")
	is.NoErr(err)
	is.Equal(a.SourceVersion, int64(3))
	is.Equal(a.Data, snapAccount{Owner: "a2"})

	// Snapshots are not streams.
	_, err = store.StreamInfo(ctx, "a")
	is.True(errors.Is(err, es.ErrStreamNotFound))
}

func TestSnapshotBadInput(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	cases := []struct {
		name string
		snap es.SnapshotData
	}{
		{"empty source id", es.SnapshotData{SourceVersion: 1, SourceType: "t", Data: 1}},
		{"empty source id, typed", es.SnapshotData{Data: snapAccount{}}},
		{"no type, map data", es.SnapshotData{SourceID: "s", Data: map[string]any{"a": 1}}},
		{"no type, slice data", es.SnapshotData{SourceID: "s", Data: []int{1}}},
		{"no type, nil data", es.SnapshotData{SourceID: "s"}},
		{"negative version", es.SnapshotData{SourceID: "s", SourceVersion: -1, SourceType: "t", Data: 1}},
		{"unencodable data", es.SnapshotData{SourceID: "s", SourceType: "t", Data: func() {}}},
		{"unencodable metadata", es.SnapshotData{SourceID: "s", SourceType: "t", Data: 1, Metadata: map[string]any{"c": make(chan int)}}},
	}
	for _, c := range cases {
		err := store.RecordSnapshot(ctx, c.snap)
		if !errors.Is(err, es.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", c.name, err)
		}
	}
	_, err := store.ReadSnapshot(ctx, "s")
	is.True(errors.Is(err, es.ErrSnapshotNotFound)) // nothing was recorded
	_, err = store.ReadSnapshot(ctx, "")
	is.True(errors.Is(err, es.ErrInvalidArgument))
	is.True(errors.Is(store.DeleteSnapshot(ctx, ""), es.ErrInvalidArgument))
	is.True(errors.Is(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "s", SourceType: "t"}, es.WithTx(nil)), es.ErrInvalidArgument))
}

func TestSnapshotMetadataAndTime(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	meta := map[string]any{
		"user":   "u@example.com",
		"count":  3,
		"nested": map[string]any{"list": []any{"a", 1.5, true, nil}},
		"empty":  map[string]any{},
	}
	at := time.Date(2023, 6, 7, 8, 9, 10, 123456789, time.FixedZone("X", 5*3600))
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{
		SourceID: "m", SourceVersion: 7, Data: snapAccount{Owner: "m"}, Metadata: meta, CreatedAt: at,
	}))
	got, err := store.ReadSnapshot(ctx, "m")
	is.NoErr(err)
	is.Equal(got.Metadata, map[string]any{
		"user":   "u@example.com",
		"count":  float64(3),
		"nested": map[string]any{"list": []any{"a", 1.5, true, nil}},
		"empty":  map[string]any{},
	})
	is.True(got.CreatedAt.Equal(at.Truncate(time.Microsecond))) // stored to the microsecond

	// An empty metadata map is kept as empty, no metadata as none.
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "e", SourceType: "t", Data: 1, Metadata: map[string]any{}}))
	got, err = store.ReadSnapshot(ctx, "e")
	is.NoErr(err)
	is.Equal(got.Metadata, map[string]any{})
}

// Snapshots follow the caller's transaction.
func TestSnapshotInTransaction(t *testing.T) {
	store, ctx, is := setupSnapshot(t)
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "keep", SourceVersion: 1, Data: snapAccount{Owner: "k"}}))
	tx, err := estest.DB(t).BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "new", SourceVersion: 1, Data: snapAccount{Owner: "n"}}, es.WithTx(tx)))
	is.NoErr(store.DeleteSnapshot(ctx, "keep", es.WithTx(tx)))
	inside, err := store.ReadSnapshot(ctx, "new", es.WithTx(tx))
	is.NoErr(err)
	is.Equal(inside.Data, snapAccount{Owner: "n"})
	_, err = store.ReadSnapshot(ctx, "keep", es.WithTx(tx))
	is.True(errors.Is(err, es.ErrSnapshotNotFound))
	_, err = store.ReadSnapshot(ctx, "new")
	is.True(errors.Is(err, es.ErrSnapshotNotFound)) // not visible outside before commit
	is.NoErr(tx.Commit())

	got, err := store.ReadSnapshot(ctx, "new")
	is.NoErr(err)
	is.Equal(got.Data, snapAccount{Owner: "n"})
	_, err = store.ReadSnapshot(ctx, "keep")
	is.True(errors.Is(err, es.ErrSnapshotNotFound))
}
