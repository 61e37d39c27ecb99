package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// AppendToStream appends events to a stream atomically, whatever their number, if the stream is
// at the expected version. It locks only the stream's own row, so appends to different streams
// never wait on each other, inside or outside callers' transactions. The events get their $all
// positions after they commit.
//
// Appends are idempotent: re-sending an append whose event ids (chosen by the caller in
// EventData.EventID) are already the stream's events, in the same order, at contiguous versions
// its expected version asks for (exact n: n+1...; NoStream or 0: 1...; AnyVersion or
// StreamExists: anywhere) succeeds and writes nothing, after a restart too, since the ids are
// stored. Any other overlap with stored ids (some new, another stream's, another order or
// position) is ErrDuplicateEvent, and writes nothing.
//
// Errors: ErrWrongExpectedVersion, ErrStreamExists (NoStream), ErrStreamNotFound (StreamExists),
// ErrStreamDeleted (checked first, whatever the expected version), ErrCannotAppendToAll,
// ErrDuplicateEvent, and ErrInvalidArgument for bad input.
func (s *Store) AppendToStream(ctx context.Context, stream string, expected ExpectedVersion, events []EventData, opts ...Option) (err error) {
	const op = "append to stream"
	if s != nil && s.tel != nil {
		var span opSpan
		ctx, span = s.tel.start(ctx, "eventstore.append", op, stream)
		defer func() { span.endAppend(ctx, len(events), err) }()
	}
	o, err := s.options(op, stream, opts)
	if err != nil {
		return err
	}
	if err := checkWritable(op, stream, expected); err != nil {
		return err
	}
	if len(events) == 0 {
		return invalid(op, stream, "no events")
	}
	jsonb, err := s.isJSONB(ctx)
	if err != nil {
		return opError(op, stream, err)
	}
	p, err := s.prepareEvents(events, jsonb)
	if err != nil {
		return opError(op, stream, err)
	}
	if _, err := s.appendPrepared(ctx, s.conn(o), o.tx != nil, op, stream, expected, p); err != nil {
		return err
	}
	if o.result != nil {
		r, err := s.q.AppendedRange(ctx, s.conn(o), p.EventIds)
		if err != nil {
			return mapDBError(op, stream, err)
		}
		*o.result = AppendResult{Stream: stream, FirstVersion: r.FirstVersion, LastVersion: r.LastVersion, streamPK: r.StreamPk}
	}
	if o.tx == nil {
		s.seq.wake()
	}
	return nil
}

// appendPrepared runs one stream's append on conn; inTx says conn is a transaction that a
// database error would abort. written is false when the append was a re-sent one that is already
// stored (idempotent), and nothing was written.
func (s *Store) appendPrepared(ctx context.Context, conn sqltmpl.DBTX, inTx bool, op, stream string, expected ExpectedVersion, p db.AppendEventsParams) (written bool, err error) {
	p.StreamName, p.Expected, p.Count = stream, int64(expected), int64(len(p.EventIds))
	if len(p.EventIds) == 1 {
		given := uuid.NullUUID{}
		if len(p.GivenIds) == 1 {
			given = optionalUUID(p.GivenIds[0])
		}
		_, err = s.q.AppendEvent(ctx, conn, db.AppendEventParams{
			GivenID: given, StreamName: stream, Expected: int64(expected), EventID: p.EventIds[0], EventType: p.EventTypes[0],
			CausationID: optionalUUID(p.CausationIds[0]), CorrelationID: optionalUUID(p.CorrelationIds[0]),
			Data: p.Data[0], Metadata: p.Metadata[0], CreatedAt: p.CreatedAt,
		})
	} else {
		p.CausationIds, p.CorrelationIds = emptyIfNil(p.CausationIds), emptyIfNil(p.CorrelationIds)
		_, err = s.q.AppendEvents(ctx, conn, p)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		// The expected version does not hold, or an event id the caller chose is stored already.
		if len(p.GivenIds) > 0 {
			if done, err := s.alreadyAppended(ctx, conn, op, stream, expected, p.GivenIds, p.EventIds); done || err != nil {
				return false, err
			}
		}
		return false, s.expectedVersionError(ctx, conn, op, stream, expected)
	case pgerr.Is(err, pgerr.UniqueViolation) && !inTx && len(p.GivenIds) > 0:
		// A concurrent append stored one of the ids between our check and our insert: a re-send
		// racing the original. Outside a caller's transaction we can still tell which.
		if done, err := s.alreadyAppended(ctx, conn, op, stream, expected, p.GivenIds, p.EventIds); done || err != nil {
			return false, err
		}
	}
	return false, mapDBError(op, stream, err)
}

// alreadyAppended decides an append refused while some of its chosen event ids are stored. It
// is an idempotent re-send (done, nil error) when every event id is already the stream's own
// event, in the same order, at contiguous versions that the expected version asks for: exact n
// means versions n+1..., NoStream (or 0) means 1..., AnyVersion and StreamExists accept any
// position. A soft-deleted stream refuses with ErrStreamDeleted. Any other overlap is
// ErrDuplicateEvent. When none of the ids is stored, it returns (false, nil): the expected
// version decided.
func (s *Store) alreadyAppended(ctx context.Context, conn sqltmpl.DBTX, op, stream string, expected ExpectedVersion, given, ids []uuid.UUID) (bool, error) {
	rows, err := s.q.StoredEvents(ctx, conn, given)
	if err != nil {
		return false, mapDBError(op, stream, err)
	}
	if len(rows) == 0 {
		return false, nil
	}
	at := make(map[uuid.UUID]db.StoredEventsRow, len(rows))
	for _, r := range rows {
		at[r.EventID] = r
	}
	first, ok := at[ids[0]]
	for i, id := range ids {
		r, found := at[id]
		switch {
		case !found:
			return false, opError(op, stream, fmt.Errorf("%w: event %d (%s) is new but others of the append are stored: a partial overlap", ErrDuplicateEvent, i, id))
		case r.StreamName != stream:
			return false, opError(op, stream, fmt.Errorf("%w: event %d (%s) is stored in stream %q", ErrDuplicateEvent, i, id, shownName(r.StreamName)))
		case r.Deleted:
			return false, opError(op, stream, ErrStreamDeleted)
		case !ok || r.StreamVersion != first.StreamVersion+int64(i):
			return false, opError(op, stream, fmt.Errorf("%w: event %d (%s) is stored at version %d, not in the same order as the append", ErrDuplicateEvent, i, id, r.StreamVersion))
		}
	}
	want := int64(expected) + 1
	switch expected {
	case AnyVersion, StreamExists:
		return true, nil
	case NoStream:
		want = 1
	}
	if first.StreamVersion != want {
		return false, opError(op, stream, fmt.Errorf("%w: the events are stored at versions %d..%d, the append asks for %d..%d",
			ErrDuplicateEvent, first.StreamVersion, first.StreamVersion+int64(len(ids))-1, want, want+int64(len(ids))-1))
	}
	return true, nil
}

// emptyIfNil returns ids, or no ids when all are uuid.Nil: the append's unnest pads a shorter
// array with NULLs, so most appends need not send a column of zeros.
func emptyIfNil(ids []uuid.UUID) []uuid.UUID {
	for _, id := range ids {
		if id != uuid.Nil {
			return ids
		}
	}
	return []uuid.UUID{}
}

func optionalUUID(u uuid.UUID) uuid.NullUUID {
	return uuid.NullUUID{UUID: u, Valid: u != uuid.Nil}
}

func checkWritable(op, stream string, expected ExpectedVersion) error {
	if err := checkStreamName(op, stream); err != nil {
		return err
	}
	switch {
	case stream == AllStream:
		return opError(op, stream, ErrCannotAppendToAll)
	case strings.HasPrefix(stream, categoryPrefix):
		return invalid(op, stream, "stream names starting with %q name category subscriptions (CategoryStream)", categoryPrefix)
	case !expected.valid():
		return invalid(op, stream, "expected version %d", expected)
	}
	return nil
}

// prepareEvents encodes and checks events for an append; jsonb says the schema stores data as
// jsonb, which refuses some JSON.
func (s *Store) prepareEvents(events []EventData, jsonb bool) (db.AppendEventsParams, error) {
	n := len(events)
	p := db.AppendEventsParams{
		GivenIds:       []uuid.UUID{},
		EventIds:       make([]uuid.UUID, n),
		EventTypes:     make([]string, n),
		CausationIds:   make([]uuid.UUID, n),
		CorrelationIds: make([]uuid.UUID, n),
		Data:           make([][]byte, n),
		Metadata:       make([][]byte, n),
		CreatedAt:      time.Now().UTC().Truncate(time.Microsecond),
	}
	seen := make(map[uuid.UUID]struct{}, n)
	var (
		lastMap  uintptr
		lastMeta []byte
	)
	for i, e := range events {
		id := e.EventID
		if id == uuid.Nil {
			var err error
			// Version 7, time-ordered: random (v4) ids scattered the inserts over the whole
			// primary-key index, which at 3,000,000 events no longer fits in shared_buffers
			// (BENCHMARKS.md, "Event ids").
			if id, err = uuid.NewV7(); err != nil {
				return p, fmt.Errorf("event %d: generate id: %w", i, err)
			}
		} else {
			if _, dup := seen[id]; dup {
				return p, fmt.Errorf("%w: event %d: id %s appears twice in the append", ErrDuplicateEvent, i, id)
			}
			p.GivenIds = append(p.GivenIds, id)
		}
		seen[id] = struct{}{}
		typ := e.EventType
		if typ == "" {
			name, ok := s.serializer.TypeName(e.Data)
			if !ok {
				return p, fmt.Errorf("%w: event %d: no EventType, and the serializer cannot name data of type %T", ErrInvalidArgument, i, e.Data)
			}
			typ = name
		}
		data, err := s.serializer.Marshal(e.Data)
		if err != nil {
			return p, fmt.Errorf("%w: event %d (%s): encode data: %w", ErrInvalidArgument, i, typ, err)
		}
		if data == nil {
			data = []byte{} // a Serializer may encode to nothing; the column is NOT NULL
		}
		meta := lastMeta
		if m := reflect.ValueOf(e.Metadata).Pointer(); i == 0 || m != lastMap {
			// Events of one append often share one metadata map: encode it once.
			if meta, err = marshalMetadata(e.Metadata); err != nil {
				return p, fmt.Errorf("%w: event %d (%s): encode metadata: %w", ErrInvalidArgument, i, typ, err)
			}
			lastMap, lastMeta = m, meta
		}
		if err := checkEventType(typ, i); err != nil {
			return p, err
		}
		if jsonb {
			if err := checkJSONBEvent(data, meta); err != nil {
				return p, fmt.Errorf("event %d (%.40s): %w", i, typ, err)
			}
		}
		p.EventIds[i], p.EventTypes[i], p.Data[i], p.Metadata[i] = id, typ, data, meta
		p.CausationIds[i], p.CorrelationIds[i] = e.CausationID, e.CorrelationID
	}
	return p, nil
}

// expectedVersionError explains why a write found its expected version unmet; the write changed
// nothing, so the caller's transaction is still usable.
func (s *Store) expectedVersionError(ctx context.Context, conn sqltmpl.DBTX, op, stream string, expected ExpectedVersion) error {
	st, err := s.q.GetStream(ctx, conn, stream)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if expected == StreamExists {
			return opError(op, stream, ErrStreamNotFound)
		}
		return opError(op, stream, fmt.Errorf("%w: expected %d, stream does not exist", ErrWrongExpectedVersion, expected))
	case err != nil:
		return mapDBError(op, stream, err)
	case st.DeletedAt.Valid:
		return opError(op, stream, ErrStreamDeleted)
	case expected == NoStream:
		return opError(op, stream, ErrStreamExists)
	default:
		return opError(op, stream, fmt.Errorf("%w: expected %d, stream is at %d", ErrWrongExpectedVersion, expected, st.StreamVersion))
	}
}

// LinkToStream adds existing events to a stream by reference, with the same expected-version rules
// as AppendToStream. Linked events keep their original stream and version; an event can be in a
// stream once. Links are not new events: $all is unchanged.
//
// Errors: those of AppendToStream, ErrEventNotFound for an unknown event, and ErrDuplicateEvent
// when the stream already holds one of the events.
func (s *Store) LinkToStream(ctx context.Context, stream string, expected ExpectedVersion, eventIDs []uuid.UUID, opts ...Option) error {
	const op = "link to stream"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return err
	}
	if err := checkWritable(op, stream, expected); err != nil {
		return err
	}
	if len(eventIDs) == 0 {
		return invalid(op, stream, "no event ids")
	}
	seen := make(map[uuid.UUID]struct{}, len(eventIDs))
	for i, id := range eventIDs {
		if id == uuid.Nil {
			return invalid(op, stream, "event id %d is the nil UUID", i)
		}
		if _, dup := seen[id]; dup {
			return opError(op, stream, fmt.Errorf("%w: id %s appears twice in the link", ErrDuplicateEvent, id))
		}
		seen[id] = struct{}{}
	}
	conn := s.conn(o)
	checks, err := s.q.CheckLinkEvents(ctx, conn, db.CheckLinkEventsParams{EventIds: eventIDs, StreamName: stream})
	if err != nil {
		return mapDBError(op, stream, err)
	}
	for _, c := range checks {
		if !c.Found {
			return opError(op, stream, fmt.Errorf("%w: %s", ErrEventNotFound, c.EventID))
		}
		if c.Duplicate {
			return opError(op, stream, fmt.Errorf("%w: %s is already in the stream", ErrDuplicateEvent, c.EventID))
		}
	}
	_, err = s.q.LinkEvents(ctx, conn, db.LinkEventsParams{
		StreamName: stream, Count: int64(len(eventIDs)), Expected: int64(expected), EventIds: eventIDs,
	})
	if errors.Is(err, sql.ErrNoRows) {
		return s.expectedVersionError(ctx, conn, op, stream, expected)
	}
	if err != nil {
		return mapDBError(op, stream, err)
	}
	// Links get no $all position, so no sequencer pass announces them: wake the link stream's
	// subscribers here (at commit, for a caller's transaction). Links are rare enough for NOTIFY's
	// commit-time lock.
	if err := s.q.Notify(ctx, conn, db.NotifyParams{Channel: s.channel, Payload: "link"}); err != nil {
		return mapDBError(op, stream, err)
	}
	if o.tx == nil {
		s.poller.wake()
	}
	return nil
}

// EventIDs returns the ids of events, for LinkToStream.
func EventIDs(events []RecordedEvent) []uuid.UUID {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.EventID
	}
	return ids
}
