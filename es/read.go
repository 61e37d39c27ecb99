package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/google/uuid"

	"github.com/go-eventstore/eventstore/db"
)

// ReadStreamForward returns at most count events of a stream, from event number start (1 is the
// first event; 0 means from the beginning), in order. Reading past the end returns no events.
// Reading AllStream reads $all. Errors: ErrStreamNotFound, ErrStreamDeleted (soft deleted).
//
// WithEventTypes keeps the events of the given types (event numbers stay the stream's); the
// stream's own events are found through an index on (stream, type, version), so the last event of
// type T in stream S is one cheap read: ReadStreamBackward(ctx, S, -1, 1, WithEventTypes(T)).
func (s *Store) ReadStreamForward(ctx context.Context, stream string, start int64, count int, opts ...Option) (evs []RecordedEvent, err error) {
	if stream == AllStream {
		return s.ReadAllForward(ctx, start, count, opts...)
	}
	const op = "read stream forward"
	if s != nil && s.tel != nil {
		var span opSpan
		ctx, span = s.tel.start(ctx, "eventstore.read", op, stream)
		defer func() { span.endRead(ctx, len(evs), err) }()
	}
	o, err := s.readOptions(op, stream, false, count, opts)
	if err != nil {
		return nil, err
	}
	if start < 0 {
		return nil, invalid(op, stream, "start %d, must be 0 or more", start)
	}
	conn, _, err := s.readConn(ctx, o)
	if err != nil {
		return nil, opError(op, stream, err)
	}
	if len(o.eventTypes) > 0 {
		return s.streamRows(op, stream, count, func(fn func(*db.ReadStreamForwardRow) error) error {
			rows, err := s.q.ReadStreamTypedForward(ctx, conn, db.ReadStreamTypedForwardParams{
				StreamName: stream, EventTypes: dedupe(o.eventTypes), Start: start, MaxCount: int64(count), MaxRows: plusOne(int64(count)),
			})
			return eachRow(rows, err, fn)
		})
	}
	return s.streamRows(op, stream, count, func(fn func(*db.ReadStreamForwardRow) error) error {
		return s.q.ReadStreamForwardEach(ctx, conn, db.ReadStreamForwardParams{
			StreamName: stream, Start: start, MaxCount: int64(count), MaxRows: plusOne(int64(count)),
		}, fn)
	})
}

// ReadStreamBackward returns at most count events of a stream, from event number start down; start
// -1 means from the last event. Reading AllStream reads $all backward.
func (s *Store) ReadStreamBackward(ctx context.Context, stream string, start int64, count int, opts ...Option) (evs []RecordedEvent, err error) {
	if stream == AllStream {
		return s.ReadAllBackward(ctx, start, count, opts...)
	}
	const op = "read stream backward"
	if s != nil && s.tel != nil {
		var span opSpan
		ctx, span = s.tel.start(ctx, "eventstore.read", op, stream)
		defer func() { span.endRead(ctx, len(evs), err) }()
	}
	o, err := s.readOptions(op, stream, false, count, opts)
	if err != nil {
		return nil, err
	}
	from, err := backwardStart(op, stream, start)
	if err != nil {
		return nil, err
	}
	conn, _, err := s.readConn(ctx, o)
	if err != nil {
		return nil, opError(op, stream, err)
	}
	if len(o.eventTypes) > 0 {
		return s.streamRows(op, stream, count, func(fn func(*db.ReadStreamForwardRow) error) error {
			rows, err := s.q.ReadStreamTypedBackward(ctx, conn, db.ReadStreamTypedBackwardParams{
				StreamName: stream, EventTypes: dedupe(o.eventTypes), Start: from, MaxCount: int64(count), MaxRows: plusOne(int64(count)),
			})
			return eachRow(rows, err, fn)
		})
	}
	return s.streamRows(op, stream, count, func(fn func(*db.ReadStreamForwardRow) error) error {
		return s.q.ReadStreamBackwardEach(ctx, conn, db.ReadStreamBackwardParams{
			StreamName: stream, Start: from, MaxCount: int64(count), MaxRows: plusOne(int64(count)),
		}, fn)
	})
}

// ReadAllForward returns at most count events of $all from position start (0 means from the
// beginning). It first gives positions to every append committed so far, so a process reads its
// own appends. Positions of hard-deleted events are skipped. WithEventTypes, WithCategories and
// WithStreamPrefixes filter the events, in SQL: with categories or event types the read walks
// their index, so its cost follows what it returns.
func (s *Store) ReadAllForward(ctx context.Context, start int64, count int, opts ...Option) ([]RecordedEvent, error) {
	return s.readAll(ctx, "read $all forward", true, start, count, opts)
}

// ReadAllBackward returns at most count events of $all from position start down; -1 means from the
// last position. It takes the filters of ReadAllForward.
func (s *Store) ReadAllBackward(ctx context.Context, start int64, count int, opts ...Option) ([]RecordedEvent, error) {
	return s.readAll(ctx, "read $all backward", false, start, count, opts)
}

func (s *Store) readAll(ctx context.Context, op string, forward bool, start int64, count int, opts []Option) (evs []RecordedEvent, err error) {
	if s != nil && s.tel != nil {
		var span opSpan
		ctx, span = s.tel.start(ctx, "eventstore.read", op, AllStream)
		defer func() { span.endRead(ctx, len(evs), err) }()
	}
	o, err := s.readOptions(op, "", true, count, opts)
	if err != nil {
		return nil, err
	}
	from := start
	if forward && start < 0 {
		return nil, invalid(op, "", "start %d, must be 0 or more", start)
	}
	if !forward {
		if from, err = backwardStart(op, "", start); err != nil {
			return nil, err
		}
	}
	conn, onPrimary, err := s.readConn(ctx, o)
	if err != nil {
		return nil, opError(op, "", err)
	}
	// On the primary, number what was committed so far first, so a process reads its own
	// appends; a replica shows $all as far as it has replayed (see WithMinLSN).
	if onPrimary {
		if err := s.settle(ctx); err != nil {
			return nil, mapDBError(op, "", err)
		}
	}
	if f := o.filter(); !f.isZero() {
		q, _ := f.plan()
		if forward {
			evs, _, err := s.readFilteredForward(ctx, conn, op, q, from, math.MaxInt64, count)
			return evs, err
		}
		return s.readFilteredBackward(ctx, conn, op, q, from, count)
	}
	if forward {
		rows, err := s.q.ReadAllForward(ctx, conn, db.ReadAllForwardParams{Start: from, MaxCount: int64(count), EventTypes: []string{}})
		if err != nil {
			return nil, mapDBError(op, "", err)
		}
		return s.allRows(op, rows)
	}
	rows, err := s.q.ReadAllBackward(ctx, conn, db.ReadAllBackwardParams{Start: from, MaxCount: int64(count), EventTypes: []string{}})
	if err != nil {
		return nil, mapDBError(op, "", err)
	}
	converted := make([]db.ReadAllForwardRow, len(rows))
	for i, r := range rows {
		converted[i] = db.ReadAllForwardRow(r)
	}
	return s.allRows(op, converted)
}

// readOptions validates a read; stream is "" for $all.
func (s *Store) readOptions(op, stream string, all bool, count int, opts []Option) (*callOptions, error) {
	o, err := s.options(op, stream, opts)
	if err != nil {
		return nil, err
	}
	if !all && (len(o.categories) > 0 || len(o.prefixes) > 0) {
		return nil, invalid(op, stream, "WithCategories and WithStreamPrefixes apply to $all reads only")
	}
	if !all {
		if err := checkStreamName(op, stream); err != nil {
			return nil, err
		}
	}
	if err := checkCount(op, stream, count); err != nil {
		return nil, err
	}
	return o, nil
}

func backwardStart(op, stream string, start int64) (int64, error) {
	switch {
	case start == -1:
		return math.MaxInt64, nil
	case start <= 0:
		return 0, invalid(op, stream, "start %d, must be -1 (the end) or positive", start)
	}
	return start, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// eachRow hands the rows of a stream read of another row type, one by one, to fn.
func eachRow[R ~struct {
	EventNumber   int64
	EventID       uuid.NullUUID
	OriginName    sql.NullString
	OriginVersion int64
	EventType     string
	CausationID   uuid.NullUUID
	CorrelationID uuid.NullUUID
	Data          []byte
	Metadata      []byte
	CreatedAt     sql.NullTime
	Deleted       bool
}](rows []R, err error, fn func(*db.ReadStreamForwardRow) error) error {
	if err != nil {
		return err
	}
	for i := range rows {
		r := db.ReadStreamForwardRow(rows[i])
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// errStreamDeleted stops a stream read at its first row.
var errStreamDeleted = errors.New("stream deleted")

// streamRows runs a stream read, row by row: its first row is the stream's own, the events
// follow. count is the most events it returns.
func (s *Store) streamRows(op, stream string, count int, each func(func(*db.ReadStreamForwardRow) error) error) ([]RecordedEvent, error) {
	var deleted bool
	var pk int64
	out, err := s.streamRowsPK(op, stream, count, &pk, &deleted, each)
	switch {
	case err != nil:
		return nil, err
	case deleted:
		return nil, opError(op, stream, ErrStreamDeleted)
	case pk == 0:
		return nil, opError(op, stream, ErrStreamNotFound)
	}
	return out, nil
}

// streamRowsPK is streamRows reporting the stream's incarnation (its row id; 0 when the stream
// does not exist) and whether it is soft deleted, instead of failing on either.
func (s *Store) streamRowsPK(op, stream string, count int, pk *int64, deleted *bool, each func(func(*db.ReadStreamForwardRow) error) error) ([]RecordedEvent, error) {
	var (
		out   []RecordedEvent
		found bool
		meta  metadataDecoder
	)
	err := each(func(r *db.ReadStreamForwardRow) error {
		if !found {
			found = true
			*pk = r.OriginVersion // the stream's own row carries its id there
			if r.Deleted {
				*deleted = true
				return errStreamDeleted
			}
			out = make([]RecordedEvent, 0, min(count, 1024)) // count may be far beyond the stream's end
			return nil
		}
		origin := stream
		if r.OriginName.Valid {
			origin = r.OriginName.String
		}
		out = append(out, RecordedEvent{
			EventNumber:   r.EventNumber,
			EventID:       r.EventID.UUID,
			StreamID:      origin,
			StreamVersion: r.OriginVersion,
			EventType:     r.EventType,
			CausationID:   nullUUID(r.CausationID),
			CorrelationID: nullUUID(r.CorrelationID),
			CreatedAt:     r.CreatedAt.Time,
		})
		return s.decode(&meta, &out[len(out)-1], r.Data, r.Metadata)
	})
	switch {
	case errors.Is(err, errStreamDeleted):
		return nil, nil
	case err != nil:
		return nil, mapDBError(op, stream, err)
	}
	return out, nil
}

func (s *Store) allRows(op string, rows []db.ReadAllForwardRow) ([]RecordedEvent, error) {
	out := make([]RecordedEvent, len(rows))
	var meta metadataDecoder
	for i, r := range rows {
		out[i] = RecordedEvent{
			EventNumber:   r.EventNumber,
			EventID:       r.EventID,
			StreamID:      r.OriginName,
			StreamVersion: r.OriginVersion,
			EventType:     r.EventType,
			CausationID:   nullUUID(r.CausationID),
			CorrelationID: nullUUID(r.CorrelationID),
			CreatedAt:     r.CreatedAt,
		}
		if err := s.decode(&meta, &out[i], r.Data, r.Metadata); err != nil {
			return out[:i], opError(op, "", err)
		}
	}
	return out, nil
}

// decode fills in an event's data and metadata.
func (s *Store) decode(md *metadataDecoder, ev *RecordedEvent, data, meta []byte) error {
	var err error
	if ev.Data, err = s.serializer.Unmarshal(ev.EventType, data); err != nil {
		return fmt.Errorf("decode event %s (%s): %w", ev.EventID, ev.EventType, err)
	}
	if ev.Metadata, err = md.decode(meta); err != nil {
		return fmt.Errorf("event %s: %w", ev.EventID, err)
	}
	return nil
}

func nullUUID(u uuid.NullUUID) uuid.UUID {
	if u.Valid {
		return u.UUID
	}
	return uuid.Nil
}

// StreamForward iterates over a stream's events from event number start (0: the beginning),
// reading WithBatchSize events per query (DefaultBatchSize by default). An error ends the
// iteration after being yielded once. AllStream iterates over $all.
func (s *Store) StreamForward(ctx context.Context, stream string, start int64, opts ...Option) iter.Seq2[RecordedEvent, error] {
	return s.iterate(ctx, start, true, opts, func(from int64, n int) ([]RecordedEvent, error) {
		return s.ReadStreamForward(ctx, stream, from, n, opts...)
	})
}

// StreamBackward iterates over a stream's events from event number start down (-1: the end).
func (s *Store) StreamBackward(ctx context.Context, stream string, start int64, opts ...Option) iter.Seq2[RecordedEvent, error] {
	return s.iterate(ctx, start, false, opts, func(from int64, n int) ([]RecordedEvent, error) {
		return s.ReadStreamBackward(ctx, stream, from, n, opts...)
	})
}

// StreamAllForward iterates over $all from position start (0: the beginning).
func (s *Store) StreamAllForward(ctx context.Context, start int64, opts ...Option) iter.Seq2[RecordedEvent, error] {
	return s.iterate(ctx, start, true, opts, func(from int64, n int) ([]RecordedEvent, error) {
		return s.ReadAllForward(ctx, from, n, opts...)
	})
}

// StreamAllBackward iterates over $all from position start down (-1: the end).
func (s *Store) StreamAllBackward(ctx context.Context, start int64, opts ...Option) iter.Seq2[RecordedEvent, error] {
	return s.iterate(ctx, start, false, opts, func(from int64, n int) ([]RecordedEvent, error) {
		return s.ReadAllBackward(ctx, from, n, opts...)
	})
}

// iterate pages through reads by event number. A short page is the last one: reads apply their
// limit after stepping over holes and filters.
func (s *Store) iterate(ctx context.Context, start int64, forward bool, opts []Option, read func(from int64, n int) ([]RecordedEvent, error)) iter.Seq2[RecordedEvent, error] {
	return func(yield func(RecordedEvent, error) bool) {
		o, err := s.options("iterate", "", opts)
		if err != nil {
			yield(RecordedEvent{}, err)
			return
		}
		from := start
		for {
			batch, err := read(from, o.batchSize)
			if err != nil {
				yield(RecordedEvent{}, err)
				return
			}
			for _, ev := range batch {
				if !yield(ev, nil) {
					return
				}
			}
			if len(batch) < o.batchSize {
				return
			}
			last := batch[len(batch)-1].EventNumber
			if forward {
				from = last + 1
			} else if from = last - 1; from < 1 {
				return
			}
			if ctx.Err() != nil {
				yield(RecordedEvent{}, ctx.Err())
				return
			}
		}
	}
}
