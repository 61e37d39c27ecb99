package es_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

func setupInfo(t *testing.T) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, nil), t.Context(), is.New(t)
}

// pageIDs lists the stream ids of a page.
func pageIDs(p es.Page[es.StreamInfo]) []string {
	out := make([]string, len(p.Entries))
	for i, s := range p.Entries {
		out[i] = s.StreamID
	}
	return out
}

func TestStreamInfo(t *testing.T) {
	store, ctx, is := setupInfo(t)
	_, err := store.StreamInfo(ctx, "s")
	is.True(errors.Is(err, es.ErrStreamNotFound))
	_, err = store.StreamInfo(ctx, "")
	is.True(errors.Is(err, es.ErrInvalidArgument))

	start := time.Now()
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 3)))
	info, err := store.StreamInfo(ctx, "s")
	is.NoErr(err)
	is.Equal(info.StreamID, "s")
	is.Equal(info.StreamVersion, int64(3))
	is.Equal(info.Status, es.StreamCreated)
	is.Equal(info.DeletedAt, (*time.Time)(nil))
	is.True(!info.CreatedAt.IsZero())
	is.True(info.CreatedAt.After(start.Add(-time.Minute)) && info.CreatedAt.Before(time.Now().Add(time.Minute)))

	// Appends move the version, not the creation time.
	is.NoErr(store.AppendToStream(ctx, "s", 3, typedEvents("t", 4, 2)))
	later, err := store.StreamInfo(ctx, "s")
	is.NoErr(err)
	is.Equal(later.StreamVersion, int64(5))
	is.True(later.CreatedAt.Equal(info.CreatedAt))

	// The version counts links as well.
	evs, err := store.ReadStreamForward(ctx, "s", 0, 10)
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "mixed", es.NoStream, typedEvents("t", 1, 1)))
	is.NoErr(store.LinkToStream(ctx, "mixed", 1, es.EventIDs(evs[:2])))
	mixed, err := store.StreamInfo(ctx, "mixed")
	is.NoErr(err)
	is.Equal(mixed.StreamVersion, int64(3))

	// The info is read in a caller's transaction too.
	tx, err := estest.DB(t).BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.AppendToStream(ctx, "s", 5, typedEvents("t", 6, 1), es.WithTx(tx)))
	inTx, err := store.StreamInfo(ctx, "s", es.WithTx(tx))
	is.NoErr(err)
	is.Equal(inTx.StreamVersion, int64(6))
	outside, err := store.StreamInfo(ctx, "s")
	is.NoErr(err)
	is.Equal(outside.StreamVersion, int64(5))
}

func TestStreamInfoAll(t *testing.T) {
	store, ctx, is := setupInfo(t)
	empty, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(empty.StreamID, es.AllStream)
	is.Equal(empty.StreamVersion, int64(0))
	is.Equal(empty.Status, es.StreamCreated)
	is.Equal(empty.DeletedAt, (*time.Time)(nil))
	is.True(!empty.CreatedAt.IsZero())

	// Sequential appends of several sizes, then concurrent ones.
	total := 0
	for i, n := range []int{1, 5, 10, 2} {
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("seq-%d", i), es.NoStream, typedEvents("t", 1, n)))
		total += n
		info, err := store.StreamInfo(ctx, es.AllStream)
		is.NoErr(err)
		is.Equal(info.StreamVersion, int64(total)) // read right after the append: no waiting
	}
	const writers, each = 8, 3
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			errs[i] = store.AppendToStream(ctx, fmt.Sprintf("con-%d", i%3), es.AnyVersion, typedEvents("t", 1, each))
		})
	}
	wg.Wait()
	for _, err := range errs {
		is.NoErr(err)
	}
	total += writers * each

	info, err := store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(total))
	is.True(info.CreatedAt.Equal(empty.CreatedAt))
	all, err := store.ReadAllForward(ctx, 0, 1000)
	is.NoErr(err)
	is.Equal(len(all), total)
	is.Equal(all[total-1].EventNumber, int64(total))

	// Soft deletes change nothing in $all's info.
	is.NoErr(store.DeleteStream(ctx, "seq-1", es.AnyVersion, es.SoftDelete))
	info, err = store.StreamInfo(ctx, es.AllStream)
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(total))
}

func TestPaginateStreamsDefaultsAndPages(t *testing.T) {
	store, ctx, is := setupInfo(t)
	empty, err := store.PaginateStreams(ctx, es.PageOptions{})
	is.NoErr(err)
	is.Equal(len(empty.Entries), 0)
	is.Equal(empty.TotalEntries, 0)
	is.Equal(empty.TotalPages, 0)
	is.Equal(empty.PageSize, 50)
	is.Equal(empty.PageNumber, 1)

	const n = 55
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s-%02d", i)
		is.NoErr(store.AppendToStream(ctx, names[i], es.NoStream, typedEvents("t", 1, 1+i%3)))
	}

	// Defaults: page 1 of 50, in creation order; $all is not listed.
	p, err := store.PaginateStreams(ctx, es.PageOptions{})
	is.NoErr(err)
	is.Equal(p.PageSize, 50)
	is.Equal(p.PageNumber, 1)
	is.Equal(p.TotalEntries, n)
	is.Equal(p.TotalPages, 2)
	is.Equal(pageIDs(p), names[:50])
	for i, s := range p.Entries {
		is.Equal(s.StreamVersion, int64(1+i%3))
		is.Equal(s.Status, es.StreamCreated)
		is.Equal(s.DeletedAt, (*time.Time)(nil))
		is.True(!s.CreatedAt.IsZero())
	}
	p, err = store.PaginateStreams(ctx, es.PageOptions{PageNumber: 2})
	is.NoErr(err)
	is.Equal(p.PageNumber, 2)
	is.Equal(pageIDs(p), names[50:])

	cases := []struct {
		size, number int
		want         []string
		totalPages   int
	}{
		{10, 1, names[:10], 6},
		{10, 3, names[20:30], 6},
		{10, 6, names[50:], 6},
		{10, 7, nil, 6}, // past the last page
		{7, 8, names[49:], 8},
		{55, 1, names, 1},
		{100, 1, names, 1},
		{1, 55, names[54:], 55},
		{1, 1, names[:1], 55},
	}
	for _, c := range cases {
		p, err := store.PaginateStreams(ctx, es.PageOptions{PageSize: c.size, PageNumber: c.number})
		is.NoErr(err)
		is.Equal(p.PageSize, c.size)
		is.Equal(p.PageNumber, c.number)
		is.Equal(p.TotalEntries, n)
		is.Equal(p.TotalPages, c.totalPages)
		if fmt.Sprint(pageIDs(p)) != fmt.Sprint(c.want) {
			t.Errorf("page %d of %d: got %v, want %v", c.number, c.size, pageIDs(p), c.want)
		}
	}
}

func TestPaginateStreamsSearch(t *testing.T) {
	store, ctx, is := setupInfo(t)
	for _, name := range []string{
		"Order-1", "order-2", "ORDER_3", "customer_1", "customerX1", "50%-off", "50x-off", `back\slash`, "backxslash",
	} {
		is.NoErr(store.AppendToStream(ctx, name, es.NoStream, typedEvents("t", 1, 1)))
	}
	cases := []struct {
		search string
		want   []string
	}{
		{"order", []string{"Order-1", "order-2", "ORDER_3"}}, // case-insensitive
		{"ORDER-", []string{"Order-1", "order-2"}},
		{"der-2", []string{"order-2"}}, // a substring anywhere
		{"_", []string{"ORDER_3", "customer_1"}},
		{"r_1", []string{"customer_1"}}, // '_' is not a wildcard
		{"%", []string{"50%-off"}},      // nor is '%'
		{"50%", []string{"50%-off"}},
		{"%-off", []string{"50%-off"}},
		{`\`, []string{`back\slash`}},
		{`k\s`, []string{`back\slash`}},
		{"nothing", nil},
		{"", []string{"Order-1", "order-2", "ORDER_3", "customer_1", "customerX1", "50%-off", "50x-off", `back\slash`, "backxslash"}},
	}
	for _, c := range cases {
		p, err := store.PaginateStreams(ctx, es.PageOptions{Search: c.search})
		is.NoErr(err)
		if fmt.Sprint(pageIDs(p)) != fmt.Sprint(c.want) {
			t.Errorf("search %q: got %v, want %v", c.search, pageIDs(p), c.want)
		}
		is.Equal(p.TotalEntries, len(c.want))
	}

	// The totals count matches only, across pages.
	p, err := store.PaginateStreams(ctx, es.PageOptions{Search: "order", PageSize: 2, PageNumber: 2})
	is.NoErr(err)
	is.Equal(pageIDs(p), []string{"ORDER_3"})
	is.Equal(p.TotalEntries, 3)
	is.Equal(p.TotalPages, 2)
	p, err = store.PaginateStreams(ctx, es.PageOptions{Search: "nothing"})
	is.NoErr(err)
	is.Equal(p.TotalPages, 0)

	// Search and sort together.
	p, err = store.PaginateStreams(ctx, es.PageOptions{Search: "ORDER", SortBy: es.SortByCreatedAt, SortDesc: true})
	is.NoErr(err)
	is.Equal(pageIDs(p), []string{"ORDER_3", "order-2", "Order-1"})
}

func TestPaginateStreamsSort(t *testing.T) {
	store, ctx, is := setupInfo(t)
	// Created in the order c, a, d, b with versions 2, 5, 1, 3; then d and a soft deleted, in
	// that order.
	for _, s := range []struct {
		name string
		n    int
	}{{"c", 2}, {"a", 5}, {"d", 1}, {"b", 3}} {
		is.NoErr(store.AppendToStream(ctx, s.name, es.NoStream, typedEvents("t", 1, s.n)))
	}
	is.NoErr(store.DeleteStream(ctx, "d", es.AnyVersion, es.SoftDelete))
	is.NoErr(store.DeleteStream(ctx, "a", es.AnyVersion, es.SoftDelete))

	cases := []struct {
		name string
		by   es.StreamSortField
		asc  []string
		desc []string
	}{
		{"creation", es.SortByCreation, []string{"c", "a", "d", "b"}, []string{"b", "d", "a", "c"}},
		{"stream id", es.SortByStreamID, []string{"a", "b", "c", "d"}, []string{"d", "c", "b", "a"}},
		{"stream version", es.SortByStreamVersion, []string{"d", "c", "b", "a"}, []string{"a", "b", "c", "d"}},
		{"created at", es.SortByCreatedAt, []string{"c", "a", "d", "b"}, []string{"b", "d", "a", "c"}},
		// Postgres order: no deletion time sorts last ascending, first descending.
		{"deleted at", es.SortByDeletedAt, []string{"d", "a", "c", "b"}, []string{"b", "c", "a", "d"}},
		// "created" < "deleted"; ties keep creation order (reversed when descending).
		{"status", es.SortByStatus, []string{"c", "b", "a", "d"}, []string{"d", "a", "b", "c"}},
	}
	for _, c := range cases {
		p, err := store.PaginateStreams(ctx, es.PageOptions{SortBy: c.by})
		is.NoErr(err)
		if fmt.Sprint(pageIDs(p)) != fmt.Sprint(c.asc) {
			t.Errorf("sort by %s: got %v, want %v", c.name, pageIDs(p), c.asc)
		}
		p, err = store.PaginateStreams(ctx, es.PageOptions{SortBy: c.by, SortDesc: true})
		is.NoErr(err)
		if fmt.Sprint(pageIDs(p)) != fmt.Sprint(c.desc) {
			t.Errorf("sort by %s desc: got %v, want %v", c.name, pageIDs(p), c.desc)
		}
		// Sorting applies before paging.
		p, err = store.PaginateStreams(ctx, es.PageOptions{SortBy: c.by, SortDesc: true, PageSize: 3, PageNumber: 2})
		is.NoErr(err)
		is.Equal(pageIDs(p), c.desc[3:])
	}

	// Soft-deleted streams are listed, with their status and deletion time.
	p, err := store.PaginateStreams(ctx, es.PageOptions{SortBy: es.SortByStreamID})
	is.NoErr(err)
	is.Equal(p.TotalEntries, 4)
	for _, s := range p.Entries {
		switch s.StreamID {
		case "a", "d":
			is.Equal(s.Status, es.StreamDeleted)
			is.True(s.DeletedAt != nil)
		default:
			is.Equal(s.Status, es.StreamCreated)
			is.Equal(s.DeletedAt, (*time.Time)(nil))
		}
	}
	is.Equal(p.Entries[0].StreamVersion, int64(5)) // a keeps its version
	info, err := store.StreamInfo(ctx, "a")
	is.True(errors.Is(err, es.ErrStreamDeleted))
	is.True(p.Entries[0].DeletedAt.Equal(*info.DeletedAt))
	is.True(p.Entries[0].CreatedAt.Equal(info.CreatedAt))
}

func TestPaginateStreamsInvalid(t *testing.T) {
	store, ctx, is := setupInfo(t)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, typedEvents("t", 1, 1)))
	for _, p := range []es.PageOptions{
		{PageSize: -1},
		{PageNumber: -1},
		{PageSize: -10, PageNumber: 2},
		{SortBy: es.StreamSortField(99)},
		{SortBy: es.StreamSortField(-1)},
	} {
		_, err := store.PaginateStreams(ctx, p)
		if !errors.Is(err, es.ErrInvalidArgument) {
			t.Errorf("%+v: got %v, want ErrInvalidArgument", p, err)
		}
	}
	_, err := store.PaginateStreams(ctx, es.PageOptions{}, es.WithTx(nil))
	is.True(errors.Is(err, es.ErrInvalidArgument))
}
