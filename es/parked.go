package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/go-eventstore/eventstore/db"
)

// ParkedStatus is the state of a parked event.
type ParkedStatus string

// Parked event states.
const (
	// ParkedFailed: the handler kept failing on the event; it waits for RetryParked or
	// DiscardParked.
	ParkedFailed ParkedStatus = "parked"
	// ParkedWaiting: a later event of a parked event's partition key, held back (ParkWaitKey)
	// until that one is retried successfully or discarded; the handler has not seen it.
	ParkedWaiting ParkedStatus = "waiting"
	// ParkedRetrying: a retry was asked for; the projection holding the lease runs it.
	ParkedRetrying ParkedStatus = "retry"
)

// ParkedEvent is an event a projection parked (see Store.Project).
type ParkedEvent struct {
	// ID identifies the parked event for RetryParked and DiscardParked.
	ID int64
	// Position is the event's number in what the projection reads: its $all position for $all
	// and category projections, its version for a stream's.
	Position int64
	EventID  uuid.UUID
	// Stream is the stream the event was appended to.
	Stream string
	// PartitionKey is the projection's PartitionBy key of the event (its stream by default).
	PartitionKey string
	// Error is the handler's last error (at most 4,000 bytes of it), or why it waits.
	Error string
	// Attempts is how many times the handler was called with the event (0 for a waiting one).
	Attempts int
	// ParkedAt is when it was parked, on the database's clock.
	ParkedAt time.Time
	Status   ParkedStatus
}

// ListParked returns the parked events of the projection name of stream, in position order.
// A projection that never parked anything, or does not exist, has none.
func (s *Store) ListParked(ctx context.Context, stream, name string) ([]ParkedEvent, error) {
	const op = "list parked events"
	if err := s.checkParkedArgs(op, stream, name); err != nil {
		return nil, err
	}
	rows, err := s.q.ListParked(ctx, s.tmpl.Wrap(s.db), db.ListParkedParams{StreamName: stream, SubscriptionName: name})
	if err != nil {
		return nil, mapDBError(op, stream, err)
	}
	out := make([]ParkedEvent, len(rows))
	for i, r := range rows {
		out[i] = ParkedEvent{
			ID: r.ID, Position: r.Position, EventID: r.EventID, Stream: r.StreamName, PartitionKey: r.PartitionKey,
			Error: r.Error, Attempts: int(r.Attempts), ParkedAt: r.ParkedAt, Status: ParkedStatus(r.Status),
		}
	}
	return out, nil
}

// RetryParked asks the projection name of stream to run its handler again for the listed parked
// events (ParkedFailed ones; every one of them when ids is empty). The projection holding the
// lease runs the retries in its process, in position order per partition key, each with the
// projection's attempts and backoff, followed by the events waiting behind them; at once when
// it runs in this process, else within its ParkedCheckInterval. An event that fails again is
// parked again, and the rest of its key keeps waiting. It returns how many events were marked
// for a retry.
func (s *Store) RetryParked(ctx context.Context, stream, name string, ids ...int64) (int, error) {
	const op = "retry parked events"
	if err := s.checkParkedArgs(op, stream, name); err != nil {
		return 0, err
	}
	n, err := s.q.MarkRetry(ctx, s.tmpl.Wrap(s.db), db.MarkRetryParams{StreamName: stream, SubscriptionName: name, Ids: nonNilIDs(ids)})
	if err != nil {
		return 0, mapDBError(op, stream, err)
	}
	if n == 0 {
		if err := s.subscriptionExists(ctx, op, stream, name); err != nil {
			return 0, err
		}
	}
	s.parkedChanged(stream, name)
	return int(n), nil
}

// DiscardParked drops the listed parked events (ParkedFailed or ParkedRetrying ones; every one of
// them when ids is empty) of the projection name of stream: their handler will not run for them.
// The events waiting behind them are handed to the projection, as by RetryParked. It returns how
// many events were dropped.
func (s *Store) DiscardParked(ctx context.Context, stream, name string, ids ...int64) (int, error) {
	const op = "discard parked events"
	if err := s.checkParkedArgs(op, stream, name); err != nil {
		return 0, err
	}
	n, err := s.q.DiscardParked(ctx, s.tmpl.Wrap(s.db), db.DiscardParkedParams{StreamName: stream, SubscriptionName: name, Ids: nonNilIDs(ids)})
	if err != nil {
		return 0, mapDBError(op, stream, err)
	}
	if n == 0 {
		if err := s.subscriptionExists(ctx, op, stream, name); err != nil {
			return 0, err
		}
	}
	s.parkedChanged(stream, name)
	return int(n), nil
}

// subscriptionExists is ErrSubscriptionNotFound for an unknown subscription, so that a typo in
// a name does not look like "nothing parked".
func (s *Store) subscriptionExists(ctx context.Context, op, stream, name string) error {
	r, err := s.q.GetSubscription(ctx, s.tmpl.Wrap(s.db), db.GetSubscriptionParams{StreamName: stream, SubscriptionName: name})
	if err == nil && r.Rows == 0 {
		return opError(op, stream, fmt.Errorf("%w: %s", ErrSubscriptionNotFound, name))
	}
	return mapDBError(op, stream, err)
}

func nonNilIDs(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}

func (s *Store) checkParkedArgs(op, stream, name string) error {
	if _, err := s.options(op, stream, nil); err != nil {
		return err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return err
	}
	return checkSubscriptionName(op, stream, name)
}

// parkedChanged tells the projection (each of its segments) running in this process to look at
// its parked events.
func (s *Store) parkedChanged(stream, name string) {
	for _, sub := range s.running(stream, name) {
		sub.mu.Lock()
		f := sub.onParked
		sub.mu.Unlock()
		if f != nil {
			f()
		}
	}
}

// errParkedGone: the parked event was retried or discarded meanwhile by another process.
var errParkedGone = errors.New("parked event gone")

// retryParked runs the retries asked for, while this process holds the lease: per partition
// key, in position order, the events marked for a retry and (ParkWaitKey) those waiting behind
// them. A key stops at its first event that fails again.
func (p *projector) retryParked() {
	epoch, pk, ok := p.sub.lease()
	if !ok || !p.sync(epoch) {
		return
	}
	rows, err := p.s.q.RetryQueue(p.ctx, p.s.tmpl.Wrap(p.s.db), p.sub.start.id)
	if err != nil {
		if p.ctx.Err() == nil {
			p.s.logger.Warn("projection cannot read its parked events", "stream", p.stream, "subscription", p.name, "error", err)
		}
		return
	}
	if len(rows) == 0 {
		return
	}
	failed := map[string]bool{}
	for _, r := range rows {
		if p.opts.ParkPolicy == ParkSkip && r.Status != string(ParkedRetrying) {
			continue
		}
		if failed[r.PartitionKey] && p.opts.ParkPolicy == ParkWaitKey { // ParkSkip: each on its own
			if r.Status == string(ParkedRetrying) {
				p.setParked(r.ID, ParkedWaiting, "", 0)
			}
			continue
		}
		ev, found, err := p.readParked(r.Position, r.EventID)
		if err != nil {
			if p.ctx.Err() == nil {
				p.s.logger.Warn("projection cannot read a parked event", "stream", p.stream, "subscription", p.name, "error", err)
			}
			return
		}
		attempts, err := p.retryOne(r.ID, ev, found, epoch, pk)
		switch {
		case err == nil, errors.Is(err, errParkedGone):
		case p.ctx.Err() != nil, errors.Is(err, errLeaseLost), errors.Is(err, ErrSubscriptionNotFound):
			return
		default:
			msg := err.Error()
			if len(msg) > maxParkedError {
				msg = msg[:maxParkedError]
			}
			p.setParked(r.ID, ParkedFailed, msg, attempts)
			failed[r.PartitionKey] = true
		}
	}
	if !p.loadBlocked() {
		p.epoch = -1 // read them again before the next batch
	}
}

// retryOne runs the handler for one parked event, with the projection's attempts and backoff, in
// a transaction that deletes its row (found false: the event no longer exists, its row is
// dropped). It returns the attempts made and the last error.
func (p *projector) retryOne(id int64, ev RecordedEvent, found bool, epoch, pk int64) (int, error) {
	backoff := p.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		err := p.inTx(epoch, pk, func(tx *sql.Tx, checkpoint int64) (int64, error) {
			n, err := p.s.q.TakeParked(p.ctx, p.s.tmpl.Wrap(tx), id)
			if err != nil {
				return 0, err
			}
			if n == 0 {
				return 0, errParkedGone
			}
			if found {
				return checkpoint, p.call(tx, []RecordedEvent{ev}) // a panic is its error here too
			}
			return checkpoint, nil
		})
		if err == nil || errors.Is(err, errParkedGone) || p.stopped(err) {
			return attempt, err
		}
		if p.outage(err) {
			attempt-- // the database's failure, not the handler's: no attempt spent
		} else if attempt >= p.opts.MaxAttempts {
			return attempt, err
		}
		p.s.logger.Warn("projection handler failed on a parked event", "stream", p.stream, "subscription", p.name,
			"event", ev.EventNumber, "attempt", attempt, "error", err)
		if !p.sleep(backoff) || !p.sub.holds(epoch) {
			return attempt, p.ctx.Err()
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
}

// readParked reads a parked event again, as the projection received it.
func (p *projector) readParked(pos int64, id uuid.UUID) (RecordedEvent, bool, error) {
	sub := p.sub
	events, _, _, _, err := p.s.readSource(p.ctx, sub.stream, sub.all, sub.f, pos-1, 1)
	if err != nil || len(events) == 0 || events[0].EventNumber != pos || events[0].EventID != id {
		return RecordedEvent{}, false, err
	}
	ev := events[0]
	if sub.opts.Mapper != nil {
		ev = sub.opts.Mapper(ev)
	}
	return ev, true, nil
}

func (p *projector) setParked(id int64, status ParkedStatus, msg string, attempts int) {
	err := p.s.q.SetParked(p.ctx, p.s.tmpl.Wrap(p.s.db), db.SetParkedParams{
		ID: id, Status: string(status), Error: msg, Attempts: int32(min(attempts, 1<<30)),
	})
	if err != nil && p.ctx.Err() == nil {
		p.s.logger.Warn("projection cannot update a parked event", "stream", p.stream, "subscription", p.name, "error", err)
	}
}
