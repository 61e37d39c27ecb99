package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/go-eventstore/eventstore/db"
)

// DeleteSubscription stops a persistent subscription running in this process (its subscribers
// end with ErrSubscriptionNotFound) and removes its checkpoint, so the name can start over from
// any position. A subscription running in another process stops when it next writes its
// checkpoint. Deleting a missing subscription is not an error.
func (s *Store) DeleteSubscription(ctx context.Context, stream, name string, opts ...Option) error {
	const op = "delete subscription"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return err
	}
	if stream == "" || name == "" {
		return invalid(op, stream, "empty stream or subscription name")
	}
	s.subsMu.Lock()
	sub := s.subs[subKey{stream, name}]
	s.subsMu.Unlock()
	if sub != nil {
		sub.stop(ErrSubscriptionNotFound)
		<-sub.finished
	}
	_, err = s.q.DeleteSubscription(ctx, s.conn(o), db.DeleteSubscriptionParams{StreamName: stream, SubscriptionName: name})
	return mapDBError(op, stream, err)
}

// SubscriptionCheckpoint returns the last position a persistent subscription has checkpointed:
// every event up to it was acknowledged. Errors: ErrSubscriptionNotFound.
func (s *Store) SubscriptionCheckpoint(ctx context.Context, stream, name string, opts ...Option) (int64, error) {
	const op = "subscription checkpoint"
	o, err := s.options(op, stream, opts)
	if err != nil {
		return 0, err
	}
	pos, err := s.q.GetSubscription(ctx, s.conn(o), db.GetSubscriptionParams{StreamName: stream, SubscriptionName: name})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, opError(op, stream, fmt.Errorf("%w: %s", ErrSubscriptionNotFound, name))
	}
	return pos, mapDBError(op, stream, err)
}

// SetSubscriptionCheckpoint moves a persistent subscription's checkpoint, creating the
// subscription if needed, so that it next delivers the events after pos: 0 replays everything,
// to rebuild a projection. It is refused with ErrSubscriptionActive while a subscriber runs the
// subscription, in this process or another.
func (s *Store) SetSubscriptionCheckpoint(ctx context.Context, stream, name string, pos int64) error {
	const op = "set subscription checkpoint"
	if _, err := s.options(op, stream, nil); err != nil {
		return err
	}
	if stream == "" || name == "" || pos < 0 {
		return invalid(op, stream, "stream %q, subscription %q, position %d", stream, name, pos)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return mapDBError(op, stream, err)
	}
	defer conn.Close()
	key := subscriptionLockKey(s.Schema(), stream, name)
	ok, err := s.q.TryAdvisoryLock(ctx, conn, key)
	if err != nil {
		return mapDBError(op, stream, err)
	}
	if !ok {
		return opError(op, stream, fmt.Errorf("%w: %s", ErrSubscriptionActive, name))
	}
	defer s.q.AdvisoryUnlock(context.WithoutCancel(ctx), conn, key)
	q := s.tmpl.Wrap(conn)
	if _, err := s.q.CreateSubscription(ctx, q, db.CreateSubscriptionParams{StreamName: stream, SubscriptionName: name, Start: pos}); err != nil {
		return mapDBError(op, stream, err)
	}
	_, err = s.q.UpdateCheckpoint(ctx, q, db.UpdateCheckpointParams{LastSeen: pos, StreamName: stream, SubscriptionName: name})
	return mapDBError(op, stream, err)
}

// ResetSubscription moves a persistent subscription's checkpoint back to the origin, so it
// delivers every event again: SetSubscriptionCheckpoint with 0.
func (s *Store) ResetSubscription(ctx context.Context, stream, name string) error {
	return s.SetSubscriptionCheckpoint(ctx, stream, name, 0)
}
