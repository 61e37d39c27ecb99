package es_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
)

func TestCategory(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for stream, want := range map[string]string{
		"account-42": "account", "account": "account", "a-b-c": "a", "-x": "", "order-": "order",
	} {
		is.Equal(es.Category(stream), want)
	}
}

// filterCase is a filter and what it keeps, checked against every event of $all.
type filterCase struct {
	name  string
	opts  []es.Option
	keeps func(es.RecordedEvent) bool
}

func anyOf[T comparable](v T, set ...T) bool { return slices.Contains(set, v) }

func hasPrefix(stream string, prefixes ...string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(stream, p) })
}

// Filtered reads of $all (categories, stream-name prefixes, event types, combined), forward and
// backward, paged and iterated, return exactly the events a filter over the whole of $all keeps,
// in $all order.
func TestFilteredReadsMatchFilteringAll(t *testing.T) {
	store, ctx, is := setupRead(t)
	rng := rand.New(rand.NewPCG(8, 8))
	streams := []string{"account-1", "account-2", "account", "accounts-9", "order-1", "order-2-x", "misc"}
	types := []string{"opened", "deposited", "closed"}
	for range 60 {
		stream := streams[rng.IntN(len(streams))]
		batch := make([]es.EventData, 1+rng.IntN(3))
		for j := range batch {
			batch[j] = es.EventData{EventType: types[rng.IntN(len(types))], Data: j}
		}
		is.NoErr(store.AppendToStream(ctx, stream, es.AnyVersion, batch))
	}
	is.NoErr(store.DeleteStream(ctx, "misc", es.AnyVersion, es.SoftDelete)) // still in $all
	all, err := store.ReadAllForward(ctx, 0, 10_000)
	is.NoErr(err)

	cases := []filterCase{
		{"category", []es.Option{es.WithCategories("account")},
			func(e es.RecordedEvent) bool { return es.Category(e.StreamID) == "account" }},
		{"two categories", []es.Option{es.WithCategories("order", "accounts")},
			func(e es.RecordedEvent) bool { return anyOf(es.Category(e.StreamID), "order", "accounts") }},
		{"prefix without dash (scans)", []es.Option{es.WithStreamPrefixes("acc")},
			func(e es.RecordedEvent) bool { return hasPrefix(e.StreamID, "acc") }},
		{"prefix with dash (category index)", []es.Option{es.WithStreamPrefixes("account-")},
			func(e es.RecordedEvent) bool { return hasPrefix(e.StreamID, "account-") }},
		{"prefixes of two categories", []es.Option{es.WithStreamPrefixes("account-1", "order-2")},
			func(e es.RecordedEvent) bool { return hasPrefix(e.StreamID, "account-1", "order-2") }},
		{"types", []es.Option{es.WithEventTypes("closed", "opened")},
			func(e es.RecordedEvent) bool { return anyOf(e.EventType, "closed", "opened") }},
		{"category and type", []es.Option{es.WithCategories("account"), es.WithEventTypes("deposited")},
			func(e es.RecordedEvent) bool {
				return es.Category(e.StreamID) == "account" && e.EventType == "deposited"
			}},
		{"prefix and type", []es.Option{es.WithStreamPrefixes("ord", "mi"), es.WithEventTypes("opened")},
			func(e es.RecordedEvent) bool { return hasPrefix(e.StreamID, "ord", "mi") && e.EventType == "opened" }},
		{"all three", []es.Option{es.WithCategories("account", "order"), es.WithStreamPrefixes("account-", "order-1"), es.WithEventTypes("opened", "closed")},
			func(e es.RecordedEvent) bool {
				return anyOf(es.Category(e.StreamID), "account", "order") && hasPrefix(e.StreamID, "account-", "order-1") &&
					anyOf(e.EventType, "opened", "closed")
			}},
		{"nothing matches", []es.Option{es.WithCategories("nope")}, func(es.RecordedEvent) bool { return false }},
	}
	for _, tc := range cases {
		var want []es.RecordedEvent
		for _, e := range all {
			if tc.keeps(e) {
				want = append(want, e)
			}
		}
		wantBack := slices.Clone(want)
		slices.Reverse(wantBack)
		check := func(what string, got, want []es.RecordedEvent) {
			t.Helper()
			if !slices.Equal(eventNumbers(got), eventNumbers(want)) || !slices.Equal(origins(got), origins(want)) {
				t.Errorf("%s, %s:\n got %v\nwant %v", tc.name, what, eventNumbers(got), eventNumbers(want))
			}
		}
		got, err := store.ReadAllForward(ctx, 0, 10_000, tc.opts...)
		is.NoErr(err)
		check("forward", got, want)
		got, err = store.ReadAllBackward(ctx, -1, 10_000, tc.opts...)
		is.NoErr(err)
		check("backward", got, wantBack)
		if len(want) > 2 {
			mid := want[len(want)/2].EventNumber
			got, err = store.ReadAllForward(ctx, mid, 2, tc.opts...)
			is.NoErr(err)
			check("forward from the middle", got, want[len(want)/2:len(want)/2+2])
			got, err = store.ReadAllBackward(ctx, mid, 2, tc.opts...)
			is.NoErr(err)
			check("backward from the middle", got, wantBack[len(want)-1-len(want)/2:][:2])
		}
		got, _, err = collect(store.StreamAllForward(ctx, 0, append(tc.opts, es.WithBatchSize(3))...))
		is.NoErr(err)
		check("iterated forward", got, want)
		got, _, err = collect(store.StreamAllBackward(ctx, -1, append(tc.opts, es.WithBatchSize(3))...))
		is.NoErr(err)
		check("iterated backward", got, wantBack)
	}
}

// Category reads return a category's events in $all order, numbered by $all position, and step
// over hard-deleted events.
func TestReadCategory(t *testing.T) {
	t.Parallel()
	store, ctx, is := estest.NewStore(t, &es.Config{EnableHardDeletes: true}), t.Context(), is.New(t)
	is.NoErr(store.AppendToStream(ctx, "account-1", es.NoStream, typedEvents("opened", 1, 1)))  // 1
	is.NoErr(store.AppendToStream(ctx, "order-1", es.NoStream, typedEvents("placed", 2, 2)))    // 2, 3
	is.NoErr(store.AppendToStream(ctx, "account-2", es.NoStream, typedEvents("opened", 4, 2)))  // 4, 5
	is.NoErr(store.AppendToStream(ctx, "account", es.NoStream, typedEvents("opened", 6, 1)))    // 6
	is.NoErr(store.AppendToStream(ctx, "accounts-1", es.NoStream, typedEvents("opened", 7, 1))) // 7
	is.NoErr(store.AppendToStream(ctx, "account-1", 1, typedEvents("deposited", 8, 1)))         // 8

	got, err := store.ReadCategoryForward(ctx, "account", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 4, 5, 6, 8})
	is.Equal(origins(got), []string{"account-1/1", "account-2/1", "account-2/2", "account/1", "account-1/2"})
	got, err = store.ReadCategoryForward(ctx, "account", 5, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{5, 6})
	got, err = store.ReadCategoryBackward(ctx, "account", -1, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{8, 6})
	got, err = store.ReadCategoryForward(ctx, "account", 0, 100, es.WithEventTypes("deposited"))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{8})
	got, _, err = collect(store.StreamCategoryForward(ctx, "account", 0, es.WithBatchSize(2)))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 4, 5, 6, 8})
	got, _, err = collect(store.StreamCategoryBackward(ctx, "account", -1, es.WithBatchSize(2)))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{8, 6, 5, 4, 1})
	got, err = store.ReadCategoryForward(ctx, "unknown", 0, 100)
	is.NoErr(err)
	is.Equal(len(got), 0)

	// Hard-deleted events leave holes that category reads step over, full pages included.
	is.NoErr(store.DeleteStream(ctx, "account-2", es.AnyVersion, es.HardDelete))
	got, err = store.ReadCategoryForward(ctx, "account", 0, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 6})
	got, _, err = collect(store.StreamCategoryForward(ctx, "account", 0, es.WithBatchSize(1)))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 6, 8})

	for _, bad := range []string{"", "account-1", "a\x00", strings.Repeat("a", es.MaxStreamNameLen+1)} {
		_, err := store.ReadCategoryForward(ctx, bad, 0, 10)
		is.True(errors.Is(err, es.ErrInvalidArgument))
		_, err = store.ReadAllForward(ctx, 0, 10, es.WithCategories(bad))
		is.True(errors.Is(err, es.ErrInvalidArgument))
	}
	_, err = store.ReadStreamForward(ctx, "account-1", 0, 10, es.WithCategories("account"))
	is.True(errors.Is(err, es.ErrInvalidArgument))
	_, err = store.ReadStreamForward(ctx, "account-1", 0, 10, es.WithStreamPrefixes("account"))
	is.True(errors.Is(err, es.ErrInvalidArgument))
}

// The category migration gives events already in $all their category and type.
func TestCategoryMigrationFillsExistingEvents(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	schema := "t_cat_" + fmt.Sprint(rand.Uint64())
	t.Cleanup(func() { _, _ = db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`) })
	is.NoErr(goose.EnsureSchema(ctx, db, schema))
	p, err := goose.NewProvider(db, schema)
	is.NoErr(err)
	_, err = p.UpTo(ctx, 3) // before categories
	is.NoErr(err)

	// Events written by the previous version: rows as its appends wrote them, numbered by its
	// sequencer (today's library refuses to open a schema that is behind, so this is SQL).
	sequence := func() int64 {
		var last int64
		is.NoErr(db.QueryRowContext(ctx, `SELECT coalesce(max(last_position), 0) FROM `+schema+`.sequence_all(1000, 'test_channel')`).Scan(&last))
		is.NoErr(db.QueryRowContext(ctx, `SELECT last_position FROM `+schema+`.all_counter`).Scan(&last))
		return last
	}
	for _, st := range []struct {
		name  string
		types []string
	}{{"account-1", []string{"opened", "deposited"}}, {"order-1", []string{"placed"}}, {"account-2", []string{"opened"}}, {"gone-1", []string{"opened"}}} {
		var pk int64
		is.NoErr(db.QueryRowContext(ctx, `INSERT INTO `+schema+`.streams (stream_name, stream_version) VALUES ($1, $2) RETURNING id`,
			st.name, len(st.types)).Scan(&pk))
		for v, typ := range st.types {
			_, err := db.ExecContext(ctx, `INSERT INTO `+schema+`.events (event_id, stream_pk, stream_version, event_type, data) VALUES ($1, $2, $3, $4, '{}')`,
				uuid.New(), pk, v+1, typ)
			is.NoErr(err)
		}
		_, err := db.ExecContext(ctx, `INSERT INTO `+schema+`.pending (stream_pk, first_version, last_version) VALUES ($1, 1, $2)`, pk, len(st.types))
		is.NoErr(err)
		is.True(sequence() > 0) // the old sequencer
	}
	is.Equal(sequence(), int64(5))
	// A hole: gone-1 hard deleted, as the previous version did it.
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	_, err = tx.ExecContext(ctx, `SELECT set_config('eventstore.enable_hard_deletes', 'on', true)`)
	is.NoErr(err)
	_, err = tx.ExecContext(ctx, `DELETE FROM `+schema+`.events WHERE stream_pk = (SELECT id FROM `+schema+`.streams WHERE stream_name = 'gone-1')`)
	is.NoErr(err)
	_, err = tx.ExecContext(ctx, `DELETE FROM `+schema+`.streams WHERE stream_name = 'gone-1'`)
	is.NoErr(err)
	is.NoErr(tx.Commit())

	_, err = goose.Up(ctx, db, schema)
	is.NoErr(err)
	store, err := es.New(db, &es.Config{Schema: schema})
	is.NoErr(err)
	defer store.Close()
	got, err := store.ReadCategoryForward(ctx, "account", 0, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{1, 2, 4})
	got, err = store.ReadAllForward(ctx, 0, 100, es.WithEventTypes("placed"))
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{3})
	// New appends get their category from the sequencer.
	is.NoErr(store.AppendToStream(ctx, "account-3", es.NoStream, typedEvents("opened", 6, 1)))
	got, err = store.ReadCategoryForward(ctx, "account", 3, 100)
	is.NoErr(err)
	is.Equal(eventNumbers(got), []int64{4, 6})
}

// readFilteredAfter, the read behind filtered subscriptions: lastScanned moves past filtered-out
// events, within a bounded scan when no index applies.
func TestReadFilteredAfter(t *testing.T) {
	store, ctx, is := setupRead(t)
	const noise = es.FilteredScanWindow*2 + 500
	for i := 0; i < noise; i += 5000 {
		is.NoErr(store.AppendToStream(ctx, "noise-1", es.AnyVersion, typedEvents("tick", i, min(5000, noise-i))))
	}
	is.NoErr(store.AppendToStream(ctx, "rare-1", es.NoStream, typedEvents("found", 0, 3)))
	last := int64(noise + 3)
	info, err := store.StreamInfo(ctx, es.AllStream) // settles $all
	is.NoErr(err)
	is.Equal(info.StreamVersion, last)

	// A prefix without '-' scans $all: each read examines at most the window.
	var found []int64
	pos, reads := int64(0), 0
	for pos < last {
		evs, scanned, err := es.ReadFilteredAfter(ctx, store, nil, []string{"rare"}, nil, pos, 2)
		is.NoErr(err)
		is.True(scanned > pos)
		is.True(scanned-pos <= es.FilteredScanWindow)
		for _, ev := range evs {
			is.True(ev.EventNumber > pos && ev.EventNumber <= scanned)
			found = append(found, ev.EventNumber)
		}
		pos = scanned
		reads++
	}
	is.Equal(found, []int64{last - 2, last - 1, last})
	is.Equal(reads, 4) // three windows, then the last event

	// Indexed filters (category, event type) reach the end of $all in one read.
	evs, scanned, err := es.ReadFilteredAfter(ctx, store, []string{"rare"}, nil, nil, 0, 10)
	is.NoErr(err)
	is.Equal(eventNumbers(evs), []int64{last - 2, last - 1, last})
	is.Equal(scanned, last)
	evs, scanned, err = es.ReadFilteredAfter(ctx, store, nil, nil, []string{"found"}, 0, 2)
	is.NoErr(err)
	is.Equal(eventNumbers(evs), []int64{last - 2, last - 1})
	is.Equal(scanned, last-1) // a full read stops at its last event
	evs, scanned, err = es.ReadFilteredAfter(ctx, store, nil, nil, []string{"nothing"}, 7, 2)
	is.NoErr(err)
	is.Equal(len(evs), 0)
	is.Equal(scanned, last)
	evs, scanned, err = es.ReadFilteredAfter(ctx, store, []string{"noise"}, []string{"noise-"}, []string{"tick"}, 100, 3)
	is.NoErr(err)
	is.Equal(eventNumbers(evs), []int64{101, 102, 103})
	is.Equal(scanned, int64(103))
	// Past the end: nothing examined.
	evs, scanned, err = es.ReadFilteredAfter(ctx, store, nil, []string{"x"}, nil, last+10, 2)
	is.NoErr(err)
	is.Equal(len(evs), 0)
	is.Equal(scanned, last+10)

	for _, bad := range [][3][]string{{{"a-b"}, nil, nil}, {nil, {"\x00"}, nil}, {nil, nil, {""}}} {
		_, _, err := es.ReadFilteredAfter(ctx, store, bad[0], bad[1], bad[2], 0, 1)
		is.True(errors.Is(err, es.ErrInvalidArgument))
	}
}
