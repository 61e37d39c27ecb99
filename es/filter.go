package es

import (
	"context"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"

	"github.com/go-eventstore/eventstore/db"
)

// Category returns a stream's category: its name up to the first '-' ("account-42" is in
// "account"); a name without '-' is its own category.
func Category(stream string) string {
	if i := strings.IndexByte(stream, '-'); i >= 0 {
		return stream[:i]
	}
	return stream
}

// WithCategories restricts reads of $all (ReadAll*, StreamAll*) to events of streams in the given
// categories. ReadCategoryForward and friends read one category. Defaults to all categories.
func WithCategories(categories ...string) Option {
	return func(o *callOptions) {
		o.categories = append(o.categories, categories...)
		if o.err == nil {
			o.err = checkFilterValues("WithCategories", "category", categories, MaxStreamNameLen, len(o.categories))
		}
		for _, c := range categories {
			if o.err == nil && strings.IndexByte(c, '-') >= 0 {
				o.err = fmt.Errorf("%w: WithCategories: category %.40q holds a '-': a category is a stream name up to its first '-'", ErrInvalidArgument, c)
			}
		}
	}
}

// WithStreamPrefixes restricts reads of $all (ReadAll*, StreamAll*) to events of streams whose
// name starts with one of the prefixes. Defaults to all streams. Filters combine: an event must
// pass each of WithCategories, WithStreamPrefixes and WithEventTypes that is given.
//
// A prefix holding a '-' (such as "account-4") names its category, so such reads walk the
// category index; prefixes without one scan $all.
func WithStreamPrefixes(prefixes ...string) Option {
	return func(o *callOptions) {
		o.prefixes = append(o.prefixes, prefixes...)
		if o.err == nil {
			o.err = checkFilterValues("WithStreamPrefixes", "stream-name prefix", prefixes, MaxStreamNameLen, len(o.prefixes))
		}
	}
}

// filter selects events of $all: by the categories of their streams, by prefixes of their
// stream's name, and by their types. Values within one field are alternatives; the fields
// combine (an event must pass every non-empty one). The zero filter passes everything.
type filter struct {
	categories []string
	prefixes   []string
	eventTypes []string
	// segment of segments (> 1): the events of streams whose internal id modulo segments is
	// segment, for a segmented projection keyed by stream.
	segment, segments int
}

func (o *callOptions) filter() filter {
	return filter{categories: o.categories, prefixes: o.prefixes, eventTypes: o.eventTypes}
}

func (f filter) isZero() bool {
	return len(f.categories) == 0 && len(f.prefixes) == 0 && len(f.eventTypes) == 0 && f.segments <= 1
}

// check validates a filter built by code other than the options (the subscription runtime).
func (f filter) check() error {
	for _, c := range f.categories {
		if err := checkCategory("filter", c); err != nil {
			return err
		}
	}
	for _, kind := range []struct {
		name   string
		values []string
		max    int
	}{{"stream-name prefix", f.prefixes, MaxStreamNameLen}, {"event type", f.eventTypes, MaxEventTypeLen}} {
		if len(kind.values) > MaxFilterValues {
			return fmt.Errorf("%w: %d values of %s, at most %d are allowed", ErrInvalidArgument, len(kind.values), kind.name, MaxFilterValues)
		}
		for _, v := range kind.values {
			if err := checkText(kind.name, v, kind.max); err != nil {
				return err
			}
		}
	}
	return nil
}

// plan returns the filter as the filtered queries take it: values deduplicated, and when only
// prefixes are given and each holds a '-', their categories too, so the read walks the category
// index instead of scanning $all. scan reports that no index applies.
func (f filter) plan() (q filter, scan bool) {
	q = filter{categories: dedupe(f.categories), prefixes: dedupe(f.prefixes), eventTypes: dedupe(f.eventTypes),
		segment: f.segment, segments: f.segments}
	if len(q.categories) == 0 && len(q.prefixes) > 0 {
		var cats []string
		for _, p := range q.prefixes {
			i := strings.IndexByte(p, '-')
			if i < 0 {
				cats = nil
				break
			}
			cats = append(cats, p[:i])
		}
		q.categories = dedupe(cats)
	}
	return q, len(q.categories) == 0 && len(q.eventTypes) == 0
}

func dedupe(values []string) []string {
	out := slices.Clone(values)
	slices.Sort(out)
	return slices.Compact(nonNil(out))
}

// filteredScanWindow is how many $all positions one filtered read scans at most when no index
// applies (a prefix filter without categories or event types), so a subscription's read of a
// sparse filter returns within bounded work and moves its checkpoint on.
const filteredScanWindow = 10_000

// readFilteredAfter reads up to n events of $all after position pos that pass f, in position
// order, without settling $all first (as readAfter: the subscription runtime is woken by the
// sequencer). It runs on the pool, not in a caller's transaction.
//
// lastScanned is the highest $all position the read examined: every event in pos+1..lastScanned
// that passes f is in events. It is the last event's position when n events came back; else
// the last position sequenced when the read ran (or, for a filter that scans $all, the end of
// the scanned window of filteredScanWindow positions, if that comes first). A subscription can
// checkpoint lastScanned once events are acknowledged, so a sparse filter never rescans the
// events it filtered out. lastScanned >= pos; it equals pos when nothing was examined.
//
// An invalid filter is ErrInvalidArgument (see filter.check); n must be positive.
func (s *Store) readFilteredAfter(ctx context.Context, f filter, pos int64, n int) (events []RecordedEvent, lastScanned int64, err error) {
	const op = "filtered read"
	if err := f.check(); err != nil {
		return nil, pos, opError(op, AllStream, err)
	}
	if n <= 0 || pos < 0 {
		return nil, pos, invalid(op, AllStream, "position %d and count %d", pos, n)
	}
	q, scan := f.plan()
	upto := int64(math.MaxInt64)
	if scan && pos <= math.MaxInt64-filteredScanWindow {
		upto = pos + max(filteredScanWindow, int64(n))
	}
	conn, err := s.catchUpConn(ctx) // the replica, when the store has one (es/replica.go)
	if err != nil {
		return nil, pos, mapDBError(op, "", err)
	}
	events, last, err := s.readFilteredForward(ctx, conn, op, q, pos+1, upto, n)
	if err != nil {
		return nil, pos, err
	}
	switch {
	case len(events) == n:
		lastScanned = events[n-1].EventNumber
	default:
		lastScanned = min(last, upto)
	}
	return events, max(lastScanned, pos), nil
}

// readFilteredForward runs the filtered read forward from start; last is the last $all position
// the read's snapshot saw.
func (s *Store) readFilteredForward(ctx context.Context, conn db.DBTX, op string, q filter, start, upto int64, n int) (events []RecordedEvent, last int64, err error) {
	rows, err := s.q.ReadAllFilteredForward(ctx, conn, db.ReadAllFilteredForwardParams{
		Categories: q.categories, Start: start, Upto: upto, EventTypes: q.eventTypes, Prefixes: q.prefixes,
		Segments: int32(q.segments), Segment: int32(q.segment), MaxCount: int64(n),
	})
	if err != nil {
		return nil, 0, mapDBError(op, "", err)
	}
	converted := make([]db.ReadAllForwardRow, 0, len(rows))
	for _, r := range rows {
		if !r.EventID.Valid { // the marker row
			last = r.OriginVersion
			continue
		}
		converted = append(converted, db.ReadAllForwardRow{
			EventNumber: r.EventNumber, EventID: r.EventID.UUID, OriginName: r.OriginName.String,
			OriginVersion: r.OriginVersion, EventType: r.EventType, CausationID: r.CausationID,
			CorrelationID: r.CorrelationID, Data: r.Data, Metadata: r.Metadata, CreatedAt: r.CreatedAt.Time,
		})
	}
	events, err = s.allRows(op, converted)
	return events, last, err
}

func (s *Store) readFilteredBackward(ctx context.Context, conn db.DBTX, op string, q filter, start int64, n int) ([]RecordedEvent, error) {
	rows, err := s.q.ReadAllFilteredBackward(ctx, conn, db.ReadAllFilteredBackwardParams{
		Categories: q.categories, Start: start, Downto: 0, EventTypes: q.eventTypes, Prefixes: q.prefixes,
		MaxCount: int64(n),
	})
	if err != nil {
		return nil, mapDBError(op, "", err)
	}
	converted := make([]db.ReadAllForwardRow, len(rows))
	for i, r := range rows {
		converted[i] = db.ReadAllForwardRow(r)
	}
	return s.allRows(op, converted)
}

// ReadCategoryForward returns at most count events of the streams of a category (see Category),
// in $all order, from $all position start (0: the beginning). EventNumber is the $all position.
// The read walks an index on (category, position), so its cost follows the category's size, not
// the store's. Other filters (WithEventTypes, WithStreamPrefixes) combine with it.
func (s *Store) ReadCategoryForward(ctx context.Context, category string, start int64, count int, opts ...Option) ([]RecordedEvent, error) {
	const op = "read category forward"
	if err := checkCategory(op, category); err != nil {
		return nil, err
	}
	return s.readAll(ctx, op, true, start, count, append(slices.Clip(opts), WithCategories(category)))
}

// ReadCategoryBackward returns at most count events of a category from $all position start down
// (-1: from the end), newest first.
func (s *Store) ReadCategoryBackward(ctx context.Context, category string, start int64, count int, opts ...Option) ([]RecordedEvent, error) {
	const op = "read category backward"
	if err := checkCategory(op, category); err != nil {
		return nil, err
	}
	return s.readAll(ctx, op, false, start, count, append(slices.Clip(opts), WithCategories(category)))
}

// StreamCategoryForward iterates over a category's events in $all order from position start
// (0: the beginning), WithBatchSize events per query.
func (s *Store) StreamCategoryForward(ctx context.Context, category string, start int64, opts ...Option) iter.Seq2[RecordedEvent, error] {
	return s.iterate(ctx, start, true, opts, func(from int64, n int) ([]RecordedEvent, error) {
		return s.ReadCategoryForward(ctx, category, from, n, opts...)
	})
}

// StreamCategoryBackward iterates over a category's events from $all position start down (-1:
// the end).
func (s *Store) StreamCategoryBackward(ctx context.Context, category string, start int64, opts ...Option) iter.Seq2[RecordedEvent, error] {
	return s.iterate(ctx, start, false, opts, func(from int64, n int) ([]RecordedEvent, error) {
		return s.ReadCategoryBackward(ctx, category, from, n, opts...)
	})
}
