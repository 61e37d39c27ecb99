package es

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// StreamStatus says whether a stream is live or soft deleted.
type StreamStatus string

const (
	// StreamCreated is a live stream.
	StreamCreated StreamStatus = "created"
	// StreamDeleted is a soft-deleted stream.
	StreamDeleted StreamStatus = "deleted"
)

// StreamInfo describes a stream.
type StreamInfo struct {
	StreamID      string
	StreamVersion int64 // the number of events in the stream ($all: its last position)
	CreatedAt     time.Time
	DeletedAt     *time.Time // nil unless soft deleted
	Status        StreamStatus
}

// StreamInfo returns a stream's version, creation time and status. AllStream is allowed: its
// version is the last $all position. For a soft-deleted stream it returns the info together with
// ErrStreamDeleted. Errors: ErrStreamNotFound.
func (s *Store) StreamInfo(ctx context.Context, stream string, opts ...Option) (StreamInfo, error) {
	const op = "stream info"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return StreamInfo{}, err
	}
	if err := checkStreamName(op, stream); err != nil {
		return StreamInfo{}, err
	}
	conn := s.conn(o)
	if stream == AllStream {
		if err := s.settle(ctx); err != nil {
			return StreamInfo{}, mapDBError(op, stream, err)
		}
		c, err := s.q.GetAllCounter(ctx, conn)
		if err != nil {
			return StreamInfo{}, mapDBError(op, stream, err)
		}
		return StreamInfo{StreamID: AllStream, StreamVersion: c.LastPosition, CreatedAt: c.CreatedAt, Status: StreamCreated}, nil
	}
	row, err := s.q.GetStream(ctx, conn, stream)
	if errors.Is(err, sql.ErrNoRows) {
		return StreamInfo{}, opError(op, stream, ErrStreamNotFound)
	}
	if err != nil {
		return StreamInfo{}, mapDBError(op, stream, err)
	}
	info := streamInfo(row)
	if info.Status == StreamDeleted {
		return info, opError(op, stream, ErrStreamDeleted)
	}
	return info, nil
}

func streamInfo(r db.Stream) StreamInfo {
	info := StreamInfo{StreamID: r.StreamName, StreamVersion: r.StreamVersion, CreatedAt: r.CreatedAt, Status: StreamCreated}
	if r.DeletedAt.Valid {
		t := r.DeletedAt.Time
		info.DeletedAt, info.Status = &t, StreamDeleted
	}
	return info
}

// StreamSortField orders PaginateStreams.
type StreamSortField int

const (
	// SortByCreation orders streams as they were created (the default).
	SortByCreation StreamSortField = iota
	// SortByStreamID orders by stream name.
	SortByStreamID
	// SortByStreamVersion orders by version.
	SortByStreamVersion
	// SortByCreatedAt orders by creation time.
	SortByCreatedAt
	// SortByDeletedAt orders by soft-deletion time.
	SortByDeletedAt
	// SortByStatus orders by status.
	SortByStatus
)

var sortColumns = map[StreamSortField]string{
	SortByCreation:      "id",
	SortByStreamID:      "stream_name",
	SortByStreamVersion: "stream_version",
	SortByCreatedAt:     "created_at",
	SortByDeletedAt:     "deleted_at",
	SortByStatus:        "status",
}

// PageOptions selects a page of streams.
type PageOptions struct {
	// PageSize is the number of streams per page. Defaults to 50.
	PageSize int
	// PageNumber is the page, from 1. Defaults to 1.
	PageNumber int
	// Search keeps streams whose name contains it, case-insensitively. Defaults to all streams.
	Search string
	// SortBy is the sort field. Defaults to SortByCreation.
	SortBy StreamSortField
	// SortDesc sorts in descending order. Defaults to ascending.
	SortDesc bool
}

// Page is one page of results.
type Page[T any] struct {
	Entries      []T
	PageNumber   int
	PageSize     int
	TotalEntries int
	TotalPages   int
}

// PaginateStreams lists streams, soft-deleted ones included, a page at a time. $all is not listed.
func (s *Store) PaginateStreams(ctx context.Context, p PageOptions, opts ...Option) (Page[StreamInfo], error) {
	const op = "paginate streams"
	o, err := s.options(op, "", opts)
	if err != nil {
		return Page[StreamInfo]{}, err
	}
	if p.PageSize == 0 {
		p.PageSize = 50
	}
	if p.PageNumber == 0 {
		p.PageNumber = 1
	}
	sortBy, ok := sortColumns[p.SortBy]
	switch {
	case p.PageSize < 0:
		return Page[StreamInfo]{}, invalid(op, "", "page size %d", p.PageSize)
	case p.PageNumber < 0:
		return Page[StreamInfo]{}, invalid(op, "", "page number %d", p.PageNumber)
	case !ok:
		return Page[StreamInfo]{}, invalid(op, "", "sort field %d", p.SortBy)
	case int64(p.PageNumber-1) > math.MaxInt64/int64(p.PageSize):
		return Page[StreamInfo]{}, invalid(op, "", "page %d of %d streams is beyond any store", p.PageNumber, p.PageSize)
	}
	if p.Search != "" {
		if err := checkText("search", p.Search, MaxSearchLen); err != nil {
			return Page[StreamInfo]{}, opError(op, "", err)
		}
	}
	search := likeEscaper.Replace(p.Search)
	conn := s.conn(o)
	total, err := s.q.CountStreams(ctx, conn, search)
	if err != nil {
		return Page[StreamInfo]{}, mapDBError(op, "", err)
	}
	rows, err := s.q.PaginateStreams(ctx, conn, db.PaginateStreamsParams{
		Search:     search,
		SortBy:     sortBy,
		SortDesc:   p.SortDesc,
		PageSize:   int64(p.PageSize),
		PageOffset: int64(p.PageNumber-1) * int64(p.PageSize),
	})
	if err != nil {
		return Page[StreamInfo]{}, mapDBError(op, "", err)
	}
	page := Page[StreamInfo]{
		Entries:      make([]StreamInfo, len(rows)),
		PageNumber:   p.PageNumber,
		PageSize:     p.PageSize,
		TotalEntries: int(total),
		TotalPages:   int((total + int64(p.PageSize) - 1) / int64(p.PageSize)),
	}
	for i, r := range rows {
		page.Entries[i] = streamInfo(r)
	}
	return page, nil
}

// likeEscaper makes a search string match literally inside ILIKE's default escape character.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
