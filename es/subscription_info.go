package es

import (
	"context"
	"math"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// SubscriptionInfo describes a persistent subscription as stored: where its checkpoint stands,
// who holds its lease, and how far behind it is. It is what operators look at (cmd/es-admin) and
// what the subscription metrics report.
type SubscriptionInfo struct {
	Stream string // the subscribed stream, or AllStream
	Name   string // the subscription's name
	// Segment and Segments: a segmented projection (ProjectionOptions.Segments) is listed once
	// per segment, each with its own checkpoint, lease and parked events; Segment counts from 0.
	// A subscription without segments is segment 0 of 1.
	Segment, Segments int
	Checkpoint        int64 // the last acknowledged position ($all) or stream version
	// Head is where the subscribed stream stands now: the last $all position, or the stream's
	// version (0 when it does not exist or is soft deleted).
	Head int64
	// Lag is the number of events after the checkpoint: Head minus Checkpoint, never negative (a
	// checkpoint counted in a stream's earlier, hard-deleted incarnation counts from 0). For a
	// segment, Lag and LagSeconds count the events after its checkpoint whatever their segment:
	// an upper bound of its own.
	Lag int64
	// LagSeconds is the age of the first event after the checkpoint, on the database's clock: how
	// long the oldest event not yet acknowledged has waited. 0 when none waits.
	LagSeconds float64
	// Holder is the process holding the lease ("" when free). It stays set after a lease ran out
	// until another process takes it; Held says whether the lease still runs.
	Holder         string
	Held           bool
	LeaseExpiresAt *time.Time // nil when free
	Epoch          int64      // bumped by every lease take and release, and every operator checkpoint change
	// Parked is the number of the subscription's parked events (see Store.Project and
	// ListParked), whatever their status: failed, waiting behind one, or marked for a retry.
	Parked    int64
	CreatedAt time.Time
}

// ListSubscriptionsOptions filters ListSubscriptions. The zero value lists every subscription.
type ListSubscriptionsOptions struct {
	// Stream keeps the subscriptions to this stream (AllStream for those to $all). Defaults to all.
	Stream string
	// NamePrefix keeps the subscriptions whose name starts with it. Defaults to all.
	NamePrefix string
	// Limit is the most subscriptions returned. Defaults to all.
	Limit int
}

// ListSubscriptions returns the schema's persistent subscriptions, of every process, ordered by
// stream, name and segment, with their checkpoints, leases, lag and parked events. It is read only, one query, and safe
// to call while subscriptions run.
func (s *Store) ListSubscriptions(ctx context.Context, lo ListSubscriptionsOptions, opts ...Option) ([]SubscriptionInfo, error) {
	const op = "list subscriptions"
	o, err := s.options(op, lo.Stream, opts)
	if err != nil {
		return nil, err
	}
	if lo.Stream != "" {
		if err := checkSubscriptionStream(op, lo.Stream); err != nil {
			return nil, err
		}
	}
	if lo.NamePrefix != "" {
		if err := checkText("subscription name prefix", lo.NamePrefix, MaxSubscriptionNameLen); err != nil {
			return nil, opError(op, lo.Stream, err)
		}
	}
	if lo.Limit < 0 {
		return nil, invalid(op, lo.Stream, "limit %d", lo.Limit)
	}
	limit := int64(math.MaxInt64)
	if lo.Limit > 0 {
		limit = int64(lo.Limit)
	}
	rows, err := s.q.ListSubscriptions(ctx, s.conn(o), db.ListSubscriptionsParams{
		StreamName: lo.Stream, NamePrefix: lo.NamePrefix, MaxCount: limit,
	})
	if err != nil {
		return nil, mapDBError(op, lo.Stream, err)
	}
	out := make([]SubscriptionInfo, len(rows))
	for i, r := range rows {
		in := SubscriptionInfo{
			Stream:     r.StreamName,
			Name:       r.SubscriptionName,
			Segment:    int(r.Segment),
			Segments:   int(r.Segments),
			Checkpoint: r.LastSeen,
			Head:       r.Head,
			Lag:        max(r.Head-r.CountedFrom, 0),
			LagSeconds: r.LagSeconds,
			Holder:     r.Holder.String,
			Held:       r.Held,
			Epoch:      r.Epoch,
			Parked:     r.Parked,
			CreatedAt:  r.CreatedAt,
		}
		if in.Lag == 0 {
			in.LagSeconds = 0
		}
		if r.LeaseExpiresAt.Valid {
			t := r.LeaseExpiresAt.Time
			in.LeaseExpiresAt = &t
		}
		out[i] = in
	}
	return out, nil
}
