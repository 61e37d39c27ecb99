package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// SnapshotData is the saved state of a source (an aggregate, a process) at a version, so that it
// can be rebuilt without reading all its events.
type SnapshotData struct {
	// SourceID identifies the source; one snapshot per source is kept.
	SourceID string
	// SourceVersion is the version of the source's stream the state reflects.
	SourceVersion int64
	// SourceType names Data's type for the Serializer. Defaults to the serializer's name for it.
	SourceType string
	// Data is the state, encoded by the Serializer.
	Data any
	// Metadata is stored as JSON. Defaults to none.
	Metadata map[string]any
	// CreatedAt defaults to now when recording.
	CreatedAt time.Time
}

// ReadSnapshot returns the snapshot of a source. Errors: ErrSnapshotNotFound.
func (s *Store) ReadSnapshot(ctx context.Context, sourceID string, opts ...Option) (SnapshotData, error) {
	const op = "read snapshot"
	o, err := s.options(op, sourceID, opts)
	if err != nil {
		return SnapshotData{}, err
	}
	if err := checkText("source id", sourceID, MaxSourceIDLen); err != nil {
		return SnapshotData{}, opError(op, sourceID, err)
	}
	row, err := s.q.ReadSnapshot(ctx, s.conn(o), sourceID)
	if errors.Is(err, sql.ErrNoRows) {
		return SnapshotData{}, opError(op, sourceID, ErrSnapshotNotFound)
	}
	if err != nil {
		return SnapshotData{}, mapDBError(op, sourceID, err)
	}
	data, err := s.serializer.Unmarshal(row.SourceType, row.Data)
	if err != nil {
		return SnapshotData{}, opError(op, sourceID, fmt.Errorf("decode %s: %w", row.SourceType, err))
	}
	meta, err := unmarshalMetadata(row.Metadata)
	if err != nil {
		return SnapshotData{}, opError(op, sourceID, err)
	}
	return SnapshotData{
		SourceID: row.SourceID, SourceVersion: row.SourceVersion, SourceType: row.SourceType,
		Data: data, Metadata: meta, CreatedAt: row.CreatedAt,
	}, nil
}

// RecordSnapshot saves a snapshot, replacing any earlier one of the same source.
func (s *Store) RecordSnapshot(ctx context.Context, snap SnapshotData, opts ...Option) error {
	const op = "record snapshot"
	o, err := s.options(op, snap.SourceID, opts)
	if err != nil {
		return err
	}
	if err := checkText("source id", snap.SourceID, MaxSourceIDLen); err != nil {
		return opError(op, snap.SourceID, err)
	}
	if snap.SourceVersion < 0 {
		return invalid(op, snap.SourceID, "source version %d", snap.SourceVersion)
	}
	typ := snap.SourceType
	if typ == "" {
		name, ok := s.serializer.TypeName(snap.Data)
		if !ok {
			return invalid(op, snap.SourceID, "no SourceType, and the serializer cannot name data of type %T", snap.Data)
		}
		typ = name
	}
	if err := checkText("source type", typ, MaxSourceIDLen); err != nil {
		return opError(op, snap.SourceID, err)
	}
	data, err := s.serializer.Marshal(snap.Data)
	if err != nil {
		return invalid(op, snap.SourceID, "encode data: %v", err)
	}
	if data == nil {
		data = []byte{}
	}
	jsonb, err := s.isJSONB(ctx)
	if err != nil {
		return opError(op, snap.SourceID, err)
	}
	meta, err := marshalMetadata(snap.Metadata)
	if err != nil {
		return invalid(op, snap.SourceID, "encode metadata: %v", err)
	}
	if jsonb {
		if err := checkJSONBEvent(data, meta); err != nil {
			return opError(op, snap.SourceID, err)
		}
	}
	created := snap.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	err = s.q.RecordSnapshot(ctx, s.conn(o), db.RecordSnapshotParams{
		SourceID: snap.SourceID, SourceVersion: snap.SourceVersion, SourceType: typ,
		Data: data, Metadata: meta, CreatedAt: created.UTC().Truncate(time.Microsecond),
	})
	return mapDBError(op, snap.SourceID, err)
}

// DeleteSnapshot removes the snapshot of a source; a missing snapshot is not an error.
func (s *Store) DeleteSnapshot(ctx context.Context, sourceID string, opts ...Option) error {
	const op = "delete snapshot"
	o, err := s.options(op, sourceID, opts)
	if err != nil {
		return err
	}
	if err := checkText("source id", sourceID, MaxSourceIDLen); err != nil {
		return opError(op, sourceID, err)
	}
	return mapDBError(op, sourceID, s.q.DeleteSnapshot(ctx, s.conn(o), sourceID))
}
