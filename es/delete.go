package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// DeleteMode chooses how DeleteStream deletes.
type DeleteMode int

const (
	// SoftDelete marks the stream deleted: it can no longer be read or appended to, and its
	// subscribers receive nothing more, but its events stay in $all and in link streams.
	SoftDelete DeleteMode = iota
	// HardDelete removes the stream and its events for good, from $all and from every link stream
	// too; the stream can then be appended to again from version 0. Needs
	// Config.EnableHardDeletes. A soft-deleted stream can still be hard deleted, so its data can
	// be purged.
	HardDelete
)

// DeleteStream deletes a stream if it is at the expected version, which must be AnyVersion,
// StreamExists or an exact version. Errors: ErrStreamNotFound, ErrStreamDeleted (soft deleting a
// soft-deleted stream), ErrWrongExpectedVersion, ErrCannotDeleteAll, ErrHardDeletesDisabled.
func (s *Store) DeleteStream(ctx context.Context, stream string, expected ExpectedVersion, mode DeleteMode, opts ...Option) error {
	const op = "delete stream"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return err
	}
	if err := checkStreamName(op, stream); err != nil {
		return err
	}
	switch {
	case stream == AllStream:
		return opError(op, stream, ErrCannotDeleteAll)
	case expected == NoStream || expected == 0 || !expected.valid():
		return invalid(op, stream, "expected version %d: use AnyVersion, StreamExists or the stream's version", expected)
	}
	switch mode {
	case SoftDelete:
		err := s.inTx(ctx, o, func(conn sqltmpl.DBTX) error {
			_, err := s.q.SoftDeleteStream(ctx, conn, db.SoftDeleteStreamParams{StreamName: stream, Expected: int64(expected)})
			if errors.Is(err, sql.ErrNoRows) {
				return s.deleteError(ctx, conn, op, stream, expected)
			}
			if err != nil {
				return err
			}
			return s.announceDelete(ctx, conn)
		})
		return s.deleted(op, stream, o, err)
	case HardDelete:
		if !s.hardDelete {
			return opError(op, stream, ErrHardDeletesDisabled)
		}
		err := s.inTx(ctx, o, func(conn sqltmpl.DBTX) error {
			pk, err := s.q.LockStreamForHardDelete(ctx, conn, db.LockStreamForHardDeleteParams{StreamName: stream, Expected: int64(expected)})
			if errors.Is(err, sql.ErrNoRows) {
				return s.deleteError(ctx, conn, op, stream, expected)
			}
			if err != nil {
				return err
			}
			// The flag is transaction-local and switched off again, so the rest of a caller's
			// transaction stays unable to delete events.
			if err := s.q.EnableHardDeletes(ctx, conn, "on"); err != nil {
				return err
			}
			if err := s.q.HardDeleteStream(ctx, conn, pk); err != nil {
				return err
			}
			if err := s.q.EnableHardDeletes(ctx, conn, "off"); err != nil {
				return err
			}
			return s.announceDelete(ctx, conn)
		})
		return s.deleted(op, stream, o, err)
	default:
		return invalid(op, stream, "delete mode %d", mode)
	}
}

func (s *Store) deleteError(ctx context.Context, conn sqltmpl.DBTX, op, stream string, expected ExpectedVersion) error {
	st, err := s.q.GetStream(ctx, conn, stream)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return opError(op, stream, ErrStreamNotFound)
	case err != nil:
		return mapDBError(op, stream, err)
	case st.DeletedAt.Valid && expected < 0:
		return opError(op, stream, ErrStreamDeleted)
	case st.DeletedAt.Valid && st.StreamVersion == int64(expected):
		return opError(op, stream, ErrStreamDeleted)
	default:
		return opError(op, stream, fmt.Errorf("%w: expected %d, stream is at %d", ErrWrongExpectedVersion, expected, st.StreamVersion))
	}
}

// announceDelete tells subscriptions, at the delete's commit, to drop what they read ahead: it
// bumps the deletions generation (which every process's poller reads) and sends a NOTIFY. The
// generation's row lock makes concurrent deletes commit one at a time; deletes are rare.
func (s *Store) announceDelete(ctx context.Context, conn sqltmpl.DBTX) error {
	if err := s.q.BumpDeletions(ctx, conn); err != nil {
		return err
	}
	return s.q.Notify(ctx, conn, db.NotifyParams{Channel: s.channel, Payload: "delete"})
}

// deleted finishes a delete: this process's subscriptions learn of it before DeleteStream
// returns (for a caller's transaction, through the poller once it commits).
func (s *Store) deleted(op, stream string, o *callOptions, err error) error {
	if err != nil {
		if errors.Is(err, ErrStreamNotFound) || errors.Is(err, ErrWrongExpectedVersion) || errors.Is(err, ErrStreamDeleted) {
			return err
		}
		return mapDBError(op, stream, err)
	}
	if o.tx == nil {
		s.poller.deleted()
	}
	return nil
}
