package db

// Hand-written, not generated: row-by-row variants of generated :many queries, for the hot read
// paths. They run the generated SQL and scan the generated row types, but hand each row to fn
// instead of collecting a slice that grows by copying: on reads of 100 events that slice was
// a third of the bytes allocated per read, and garbage collection competed with the server for
// the CPU. Keep each Scan in step with the generated method it mirrors (the es tests read every
// column).

import (
	"context"

	"github.com/lib/pq"
)

// ReadStreamForwardEach is ReadStreamForward, row by row; row is reused between calls.
func (q *Queries) ReadStreamForwardEach(ctx context.Context, db DBTX, arg ReadStreamForwardParams, fn func(row *ReadStreamForwardRow) error) error {
	return eachStreamRow(ctx, db, readStreamForward, arg.MaxRows, arg.StreamName, arg.Start, arg.MaxCount, fn)
}

// ReadStreamBackwardEach is ReadStreamBackward, row by row, in ReadStreamForward's row type
// (the two are identical).
func (q *Queries) ReadStreamBackwardEach(ctx context.Context, db DBTX, arg ReadStreamBackwardParams, fn func(row *ReadStreamForwardRow) error) error {
	return eachStreamRow(ctx, db, readStreamBackward, arg.MaxRows, arg.StreamName, arg.Start, arg.MaxCount, fn)
}

func eachStreamRow(ctx context.Context, db DBTX, query string, maxRows int64, stream string, start, maxCount int64, fn func(*ReadStreamForwardRow) error) error {
	rows, err := db.QueryContext(ctx, query, maxRows, stream, start, maxCount)
	if err != nil {
		return err
	}
	defer rows.Close()
	var i ReadStreamForwardRow
	for rows.Next() {
		if err := rows.Scan(
			&i.EventNumber,
			&i.EventID,
			&i.OriginName,
			&i.OriginVersion,
			&i.EventType,
			&i.CausationID,
			&i.CorrelationID,
			&i.Data,
			&i.Metadata,
			&i.CreatedAt,
			&i.Deleted,
		); err != nil {
			return err
		}
		if err := fn(&i); err != nil {
			return err
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// ReadAllRunsEach is ReadAllRuns, row by row; row is reused between calls.
func (q *Queries) ReadAllRunsEach(ctx context.Context, db DBTX, arg ReadAllRunsParams, fn func(row *ReadAllRunsRow) error) error {
	rows, err := db.QueryContext(ctx, readAllRuns, arg.Start, arg.MaxCount, pq.Array(arg.EventTypes))
	if err != nil {
		return err
	}
	defer rows.Close()
	var i ReadAllRunsRow
	for rows.Next() {
		if err := rows.Scan(
			&i.EventNumber,
			&i.EventID,
			&i.OriginName,
			&i.OriginVersion,
			&i.EventType,
			&i.CausationID,
			&i.CorrelationID,
			&i.Data,
			&i.Metadata,
			&i.CreatedAt,
			&i.Scanned,
		); err != nil {
			return err
		}
		if err := fn(&i); err != nil {
			return err
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}
