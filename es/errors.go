package es

import (
	"errors"
	"fmt"

	"github.com/go-eventstore/eventstore/internal/pgerr"
)

// Sentinel errors. Every error the store returns wraps one of these, or a database or context
// error, with the operation and stream named; match them with errors.Is.
var (
	// ErrWrongExpectedVersion: the stream is not at the expected version.
	ErrWrongExpectedVersion = errors.New("wrong expected version")
	// ErrStreamExists: NoStream was expected but the stream exists.
	ErrStreamExists = errors.New("stream exists")
	// ErrStreamNotFound: the stream does not exist.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrStreamDeleted: the stream was soft deleted; it can be neither read nor appended to.
	ErrStreamDeleted = errors.New("stream deleted")
	// ErrCannotAppendToAll: $all is written by the store only.
	ErrCannotAppendToAll = errors.New("cannot append to $all")
	// ErrCannotDeleteAll: $all cannot be deleted.
	ErrCannotDeleteAll = errors.New("cannot delete $all")
	// ErrDuplicateEvent: an event id is already stored, or the stream already holds the event.
	ErrDuplicateEvent = errors.New("duplicate event")
	// ErrEventNotFound: an event to link does not exist.
	ErrEventNotFound = errors.New("event not found")
	// ErrHardDeletesDisabled: HardDelete needs Config.EnableHardDeletes.
	ErrHardDeletesDisabled = errors.New("hard deletes are disabled")
	// ErrSnapshotNotFound: there is no snapshot for the source.
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrInvalidArgument: a bad argument; nothing was changed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// opError names the operation and stream of a failure while keeping errors.Is working.
func opError(op, stream string, err error) error {
	if stream == "" {
		return fmt.Errorf("eventstore: %s: %w", op, err)
	}
	return fmt.Errorf("eventstore: %s %q: %w", op, shownName(stream), err)
}

func invalid(op, stream, format string, args ...any) error {
	return opError(op, stream, fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...)))
}

// mapDBError turns driver errors into the store's sentinels where one applies. It is the one
// place that interprets database errors.
func mapDBError(op, stream string, err error) error {
	if err == nil {
		return nil
	}
	switch pgerr.Code(err) {
	case pgerr.UniqueViolation: // an event id or a link that already exists
		return opError(op, stream, fmt.Errorf("%w: %w", ErrDuplicateEvent, err))
	case pgerr.ForeignKeyViolation: // a link to an event deleted meanwhile
		return opError(op, stream, fmt.Errorf("%w: %w", ErrEventNotFound, err))
	}
	return opError(op, stream, err)
}
