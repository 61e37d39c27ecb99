package es

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// DeleteSubscription removes a persistent subscription's row (its checkpoint and lease), so the
// name can start over from any position, then stops it in this process: its subscribers end with
// ErrSubscriptionNotFound (with WithTx, after the caller commits). In another process, the holder
// stops at its next checkpoint write or lease renewal, and a process waiting for the lease at its
// next try. Deleting a missing subscription is not an error.
func (s *Store) DeleteSubscription(ctx context.Context, stream, name string, opts ...Option) error {
	const op = "delete subscription"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return err
	}
	if err := checkSubscriptionName(op, stream, name); err != nil {
		return err
	}
	// The row goes first: a process waiting for the lease can then never take it over between
	// this process's release and the delete.
	if _, err = s.q.DeleteSubscription(ctx, s.conn(o), db.DeleteSubscriptionParams{StreamName: stream, SubscriptionName: name}); err != nil {
		return mapDBError(op, stream, err)
	}
	if o.tx != nil {
		// Until the caller commits, the row is locked and may come back: the subscription running
		// here stops at its next write or renewal after the commit, as one elsewhere does.
		return nil
	}
	subs := s.running(stream, name)
	for _, sub := range subs {
		sub.stop(ErrSubscriptionNotFound)
	}
	for _, sub := range subs {
		select {
		case <-sub.done:
		case <-ctx.Done():
			return opError(op, stream, ctx.Err())
		}
	}
	return nil
}

// running returns the subscription name of stream running in this process: one, or one per
// segment held or waited for, or none.
func (s *Store) running(stream, name string) []*subscription {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	var out []*subscription
	for k, sub := range s.subs {
		if k.stream == stream && k.name == name {
			out = append(out, sub)
		}
	}
	return out
}

// SubscriptionCheckpoint returns the last position a persistent subscription has checkpointed:
// every event up to it was acknowledged. For a segmented projection (ProjectionOptions.Segments)
// it is the least of its segments' checkpoints. Errors: ErrSubscriptionNotFound.
func (s *Store) SubscriptionCheckpoint(ctx context.Context, stream, name string, opts ...Option) (int64, error) {
	const op = "subscription checkpoint"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return 0, err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return 0, err
	}
	if err := checkSubscriptionName(op, stream, name); err != nil {
		return 0, err
	}
	r, err := s.q.GetSubscription(ctx, s.conn(o), db.GetSubscriptionParams{StreamName: stream, SubscriptionName: name})
	if err == nil && r.Rows == 0 {
		return 0, opError(op, stream, fmt.Errorf("%w: %s", ErrSubscriptionNotFound, name))
	}
	return r.LastSeen, mapDBError(op, stream, err)
}

// SetSubscriptionCheckpoint moves a persistent subscription's checkpoint, creating the
// subscription if needed, so that it next delivers the events after pos: 0 replays everything,
// to rebuild a projection. For a stream subscription, pos counts in the stream as it is now. A
// projection's parked events after pos are forgotten: they are delivered (and handled) again. It is
// refused with ErrSubscriptionActive while a process holds the subscription's lease (stop its
// subscribers first); a holder whose lease ran out cannot write over the new checkpoint. Every
// segment of a segmented projection moves to pos, and only while no segment's lease runs.
func (s *Store) SetSubscriptionCheckpoint(ctx context.Context, stream, name string, pos int64) error {
	const op = "set subscription checkpoint"
	if _, err := s.options(op, stream, nil); err != nil {
		return err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return err
	}
	if err := checkSubscriptionName(op, stream, name); err != nil {
		return err
	}
	if pos < 0 {
		return invalid(op, stream, "position %d: must be 0 (the origin) or a position", pos)
	}
	var pk int64
	if all, _, _ := subscriptionFilter(stream, nil, nil, nil); !all {
		var err error
		if _, pk, err = s.position(ctx, stream); err != nil {
			return mapDBError(op, stream, err)
		}
	}
	err := s.inTx(ctx, &callOptions{}, func(conn sqltmpl.DBTX) error {
		if _, err := s.q.CreateSubscription(ctx, conn, db.CreateSubscriptionParams{
			StreamName: stream, SubscriptionName: name, Start: pos, StreamPk: nullPK(pk),
		}); err != nil {
			return err
		}
		// Every segment's row, locked: all of them move, or none while any lease runs.
		rows, err := s.q.LockSubscription(ctx, conn, db.LockSubscriptionParams{StreamName: stream, SubscriptionName: name})
		if err != nil {
			return err
		}
		if slices.ContainsFunc(rows, func(r db.LockSubscriptionRow) bool { return r.Held }) {
			return opError(op, stream, fmt.Errorf("%w: %s: a process holds its lease", ErrSubscriptionActive, name))
		}
		if _, err := s.q.SetCheckpoint(ctx, conn, db.SetCheckpointParams{
			LastSeen: pos, StreamPk: nullPK(pk), StreamName: stream, SubscriptionName: name,
		}); err != nil {
			return err
		}
		// Events after pos are delivered again: a projection's parked rows for them go.
		_, err = s.q.ForgetParkedAfter(ctx, conn, db.ForgetParkedAfterParams{StreamName: stream, SubscriptionName: name, Position: pos})
		return err
	})
	if errors.Is(err, ErrSubscriptionActive) {
		return err
	}
	return mapDBError(op, stream, err)
}

// ResetSubscription moves a persistent subscription's checkpoint back to the origin, so it
// delivers every event again: SetSubscriptionCheckpoint with 0.
func (s *Store) ResetSubscription(ctx context.Context, stream, name string) error {
	return s.SetSubscriptionCheckpoint(ctx, stream, name, 0)
}
