package es

import (
	"time"

	"github.com/google/uuid"
)

// AllStream is the name of the stream of every event, in the order it was committed.
const AllStream = "$all"

// ExpectedVersion is an optimistic concurrency check on append, link and delete: n >= 0 means the
// stream must be at exactly version n (0: it must not exist yet), or one of the special values.
type ExpectedVersion int64

const (
	// AnyVersion skips the check: the stream may be at any version, or not exist.
	AnyVersion ExpectedVersion = -1
	// NoStream requires that the stream does not exist.
	NoStream ExpectedVersion = -2
	// StreamExists requires that the stream exists, at any version.
	StreamExists ExpectedVersion = -3
)

func (v ExpectedVersion) valid() bool { return v >= StreamExists }

// EventData is an event to append.
type EventData struct {
	// EventID identifies the event. Defaults, when zero, to a new time-ordered UUID (version 7):
	// consecutive appends then insert next to each other in the events' primary-key index
	// instead of anywhere in it, which keeps appends as fast with millions of events stored.
	EventID uuid.UUID
	// EventType names the event. Defaults to the serializer's name for Data's type.
	EventType string
	// Data is the event's payload, encoded by the store's Serializer.
	Data any
	// Metadata is stored as JSON. Defaults to none.
	Metadata map[string]any
	// CausationID is the id of what caused the event. Defaults to none (uuid.Nil).
	CausationID uuid.UUID
	// CorrelationID groups related events. Defaults to none (uuid.Nil).
	CorrelationID uuid.UUID
}

// RecordedEvent is an event as read or received.
type RecordedEvent struct {
	// EventNumber is the event's position in the stream read: its version there, or for $all its
	// global position.
	EventNumber int64
	// EventID identifies the event.
	EventID uuid.UUID
	// StreamID is the stream the event was originally appended to (also when read through a link).
	StreamID string
	// StreamVersion is the event's version in its original stream.
	StreamVersion int64
	// EventType names the event.
	EventType string
	// CausationID is uuid.Nil when none was given.
	CausationID uuid.UUID
	// CorrelationID is uuid.Nil when none was given.
	CorrelationID uuid.UUID
	// Data is decoded by the Serializer: the registered Go type for EventType, else a generic value.
	Data any
	// Metadata is nil when none was given.
	Metadata map[string]any
	// CreatedAt is when the event was appended.
	CreatedAt time.Time
}
