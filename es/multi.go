package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// StreamAppend is one stream's part of AppendToStreams.
type StreamAppend struct {
	// Stream is the stream's name.
	Stream string
	// Expected is the version the stream must be at, as for AppendToStream.
	Expected ExpectedVersion
	// Events are appended to the stream. With none, the stream is only checked against Expected
	// (and locked until the call's transaction ends), not written.
	Events []EventData
}

// AppendToStreams appends to several streams atomically: each with its own expected version,
// plus streams that are only checked (a StreamAppend without events). Either every append is
// written or none is. Each stream's append follows AppendToStream's rules, idempotency included
// (a stream whose events are already stored is left as it is, the others are written).
//
// Stream rows are locked in one global order (by name, bytewise), whatever the order of appends,
// so concurrent calls over overlapping streams never deadlock each other. A checked stream's row
// is locked as a written one's, so its check holds until the transaction commits; a checked
// stream that does not exist cannot be locked, so NoStream on it holds when checked only.
//
// With WithTx, the call runs in a savepoint of the caller's transaction: a refusal undoes what
// the call wrote and leaves the transaction usable. (Locks taken by a refused call are kept until
// the transaction ends, as Postgres keeps them.)
//
// Errors: those of AppendToStream, naming the stream refused; ErrInvalidArgument when no stream
// has events, when a stream appears twice, or for bad input.
func (s *Store) AppendToStreams(ctx context.Context, appends []StreamAppend, opts ...Option) (err error) {
	const op = "append to streams"
	if s != nil && s.tel != nil {
		var span opSpan
		ctx, span = s.tel.start(ctx, "eventstore.append", op, "")
		defer func() {
			n := 0
			for _, a := range appends {
				n += len(a.Events)
			}
			span.endAppend(ctx, n, err)
		}()
	}
	o, err := s.options(op, "", opts)
	if err != nil {
		return err
	}
	type prepared struct {
		StreamAppend
		p db.AppendEventsParams
	}
	jsonb, err := s.isJSONB(ctx)
	if err != nil {
		return opError(op, "", err)
	}
	parts := make([]prepared, len(appends))
	writes := 0
	ids := map[uuid.UUID]string{}
	for i, a := range appends {
		if err := checkWritable(op, a.Stream, a.Expected); err != nil {
			return err
		}
		parts[i].StreamAppend = a
		if len(a.Events) == 0 {
			continue
		}
		writes++
		if parts[i].p, err = s.prepareEvents(a.Events, jsonb); err != nil {
			return opError(op, a.Stream, err)
		}
		for _, id := range parts[i].p.GivenIds {
			if other, dup := ids[id]; dup {
				return opError(op, a.Stream, fmt.Errorf("%w: id %s appears twice in the call (also for %q)", ErrDuplicateEvent, id, shownName(other)))
			}
			ids[id] = a.Stream
		}
	}
	if writes == 0 {
		return invalid(op, "", "no stream has events to append")
	}
	slices.SortFunc(parts, func(a, b prepared) int { return strings.Compare(a.Stream, b.Stream) })
	for i := 1; i < len(parts); i++ {
		if parts[i].Stream == parts[i-1].Stream {
			return invalid(op, parts[i].Stream, "the stream appears twice in the call")
		}
	}
	run := func(conn sqltmpl.DBTX) error {
		for _, part := range parts {
			if len(part.Events) == 0 {
				if err := s.checkStream(ctx, conn, op, part.Stream, part.Expected); err != nil {
					return err
				}
				continue
			}
			if _, err := s.appendPrepared(ctx, conn, true, op, part.Stream, part.Expected, part.p); err != nil {
				return err
			}
		}
		return nil
	}
	if o.tx == nil {
		err := s.inTx(ctx, o, run)
		if err != nil && len(ids) > 0 && pgerr.Is(err, pgerr.UniqueViolation) {
			// A concurrent re-send stored chosen ids between this call's check and its insert,
			// which failed and took the transaction with it. In a new one the ids are stored, and
			// each append is decided as AppendToStream decides it: a re-send or a duplicate.
			err = s.inTx(ctx, o, run)
		}
		if err != nil {
			return wrapDB(op, err)
		}
		s.seq.wake()
		return nil
	}
	conn := s.conn(o)
	if err := s.q.SavepointAppend(ctx, conn); err != nil {
		return mapDBError(op, "", err)
	}
	if err := run(conn); err != nil {
		// Also after a database error: the savepoint makes the transaction usable again.
		if rbErr := s.q.RollbackToSavepointAppend(ctx, conn); rbErr != nil {
			return errors.Join(wrapDB(op, err), mapDBError(op, "", rbErr))
		}
		if relErr := s.q.ReleaseSavepointAppend(ctx, conn); relErr != nil {
			return errors.Join(wrapDB(op, err), mapDBError(op, "", relErr))
		}
		return wrapDB(op, err)
	}
	return mapDBError(op, "", s.q.ReleaseSavepointAppend(ctx, conn))
}

// wrapDB names the operation of a bare database error (the store's own errors already do).
func wrapDB(op string, err error) error {
	if err == nil || strings.HasPrefix(err.Error(), "eventstore: ") {
		return err
	}
	return mapDBError(op, "", err)
}

// checkStream checks a stream's expected version, for a stream that a multi-stream append only
// checks, and locks its row.
func (s *Store) checkStream(ctx context.Context, conn sqltmpl.DBTX, op, stream string, expected ExpectedVersion) error {
	st, err := s.q.LockStreamForCheck(ctx, conn, stream)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return mapDBError(op, stream, err)
	case exists && st.Deleted:
		return opError(op, stream, ErrStreamDeleted)
	case expected == AnyVersion:
		return nil
	case expected == StreamExists && !exists:
		return opError(op, stream, ErrStreamNotFound)
	case expected == StreamExists:
		return nil
	case expected == NoStream && exists:
		return opError(op, stream, ErrStreamExists)
	case expected == NoStream:
		return nil
	case !exists && expected != 0:
		return opError(op, stream, fmt.Errorf("%w: expected %d, stream does not exist", ErrWrongExpectedVersion, expected))
	case exists && st.StreamVersion != int64(expected):
		return opError(op, stream, fmt.Errorf("%w: expected %d, stream is at %d", ErrWrongExpectedVersion, expected, st.StreamVersion))
	}
	return nil
}
