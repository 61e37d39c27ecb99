package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// Handler applies a batch of events to a read model inside tx, the transaction the store began
// for it. The store moves the projection's checkpoint past the batch in the same transaction and
// commits it after Handler returns nil, so the handler's writes and the checkpoint commit together
// or not at all: exactly-once effects on the tables it writes through tx. Handler must not
// commit or roll back tx, and must do its database work through tx only (work done elsewhere is
// at least once). An error rolls the transaction back; the batch is retried (see
// ProjectionOptions). ctx is done when the projection stops.
type Handler func(ctx context.Context, tx *sql.Tx, batch []RecordedEvent) error

// Defaults of ProjectionOptions.
const (
	// DefaultProjectionBatchSize is the most events one Handler call receives.
	DefaultProjectionBatchSize = 100
	// DefaultHandlerAttempts is how many times a failing batch is tried before the failing
	// event is looked for and parked.
	DefaultHandlerAttempts = 5
	// DefaultMinBackoff is the wait after a handler's first failure; it doubles with each
	// failure up to MaxBackoff.
	DefaultMinBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff bounds the wait between two attempts.
	DefaultMaxBackoff = 5 * time.Second
)

// ProjectionOptions configure a projection (Store.Project). A nil *ProjectionOptions means all
// defaults.
type ProjectionOptions struct {
	// SubscriptionOptions configure the underlying persistent subscription, as for
	// SubscribeToStream, with these differences: BufferSize is the most events one Handler call
	// receives (defaults to DefaultProjectionBatchSize, 100); ConcurrencyLimit must be 0 or 1
	// (one handler at a time per process); Transient is refused (the checkpoint lives in the
	// database, beside the read model); SubscriberID is ignored; PartitionBy keys events for
	// parking (see ParkPolicy) and defaults to the event's stream.
	SubscriptionOptions
	// MaxAttempts is how many times a failing batch is tried. Defaults to
	// DefaultHandlerAttempts (5).
	MaxAttempts int
	// MinBackoff is the wait after the first failure; the wait doubles with each failure, up to
	// MaxBackoff. Defaults to DefaultMinBackoff (100ms).
	MinBackoff time.Duration
	// MaxBackoff bounds the wait between attempts; at most MaxSubscriptionInterval. Defaults to
	// DefaultMaxBackoff (5s).
	MaxBackoff time.Duration
	// TxOptions are the options of the transactions handlers run in. Defaults to nil (the
	// database's default isolation, read-write).
	TxOptions *sql.TxOptions
}

func (o *ProjectionOptions) withDefaults() (ProjectionOptions, SubscriptionOptions, error) {
	var c ProjectionOptions
	if o != nil {
		c = *o
	}
	switch {
	case c.Transient:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: a projection cannot be Transient", ErrInvalidArgument)
	case c.ConcurrencyLimit > 1:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: a projection's ConcurrencyLimit is 1 (got %d)", ErrInvalidArgument, c.ConcurrencyLimit)
	case c.MaxAttempts < 0, c.MinBackoff < 0, c.MaxBackoff < 0:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: negative projection option (MaxAttempts %d, MinBackoff %s, MaxBackoff %s)",
			ErrInvalidArgument, c.MaxAttempts, c.MinBackoff, c.MaxBackoff)
	case c.MaxBackoff > MaxSubscriptionInterval, c.MinBackoff > MaxSubscriptionInterval:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: MinBackoff %s and MaxBackoff %s must be at most %s",
			ErrInvalidArgument, c.MinBackoff, c.MaxBackoff, MaxSubscriptionInterval)
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultHandlerAttempts
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	so := c.SubscriptionOptions
	so.ConcurrencyLimit, so.SubscriberID, so.PartitionBy = 1, "", nil
	if so.BufferSize == 0 {
		so.BufferSize = DefaultProjectionBatchSize
	}
	so.forwardOnly = true
	so, err := so.withDefaults()
	return c, so, err
}

// Projection runs a Handler over a persistent subscription (Store.Project). Like any persistent
// subscription it runs in one process at a time, the one holding its lease; the others wait and
// take over when it stops or dies.
type Projection struct {
	s       *Store
	stream  string
	name    string
	opts    ProjectionOptions
	handler Handler
	h       *Subscriber
	sub     *subscription

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	closeOnce sync.Once
}

// Project runs handler over the persistent subscription name of stream (a stream, AllStream or
// CategoryStream(c)), creating it if needed as SubscribeToStream does. For each batch, in order,
// the store begins a transaction, calls handler with it, moves the checkpoint past the batch in
// the same transaction (fenced by the subscription's lease: when another process took it over,
// the transaction is rolled back and nothing is applied) and commits. Every checkpoint write of
// a projection is forward-only, so a late write can never move it back and apply effects twice.
//
// A failing batch is retried with a doubling backoff (ProjectionOptions.MaxAttempts,
// MinBackoff, MaxBackoff). ctx bounds the projection's life, as Close does.
//
// Errors: ErrInvalidArgument (bad options, nil handler), ErrSubscriptionExists (the subscription
// already runs in this process), ErrClosed, or the database's error creating the subscription.
func (s *Store) Project(ctx context.Context, stream, name string, opts *ProjectionOptions, handler Handler) (*Projection, error) {
	const op = "project"
	if _, err := s.options(op, stream, nil); err != nil {
		return nil, err
	}
	if handler == nil {
		return nil, opError(op, stream, fmt.Errorf("%w: nil handler", ErrInvalidArgument))
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return nil, err
	}
	if err := checkSubscriptionName(op, stream, name); err != nil {
		return nil, err
	}
	po, so, err := opts.withDefaults()
	if err != nil {
		return nil, opError(op, stream, err)
	}
	if _, _, err := subscriptionFilter(stream, so.Categories, so.StreamPrefixes, so.EventTypes); err != nil {
		return nil, opError(op, stream, err)
	}
	h, err := s.subscribe(ctx, stream, name, so)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &Projection{
		s: s, stream: stream, name: name, opts: po, handler: handler, h: h, sub: h.sub,
		ctx: pctx, cancel: cancel, done: make(chan struct{}),
	}
	go p.run()
	return p, nil
}

// Subscribed is closed once this process holds the projection's lease and handles its events.
func (p *Projection) Subscribed() <-chan struct{} { return p.h.Subscribed() }

// Done is closed when the projection has stopped: after Close, its context's end, the
// subscription's deletion or the store's Close.
func (p *Projection) Done() <-chan struct{} { return p.done }

// Err says why the projection stopped: nil while it runs and after Close, ErrSubscriptionNotFound
// after a delete, ErrClosed when the store closed, or its context's error (cause).
func (p *Projection) Err() error { return p.h.Err() }

// Close stops the projection: a handler running is cancelled (its transaction rolls back), the
// checkpoint of what was committed is written (forward-only) and the lease released, so a
// waiting process takes over. Close waits for that. Safe to call more than once.
func (p *Projection) Close() error {
	p.closeOnce.Do(p.cancel)
	<-p.done
	return nil
}

func (p *Projection) run() {
	defer close(p.done)
	defer func() { _ = p.h.Close() }() // the last checkpoint and the lease's release
	for {
		select {
		case <-p.ctx.Done():
			return
		case b, ok := <-p.h.Events():
			if !ok {
				return
			}
			p.handle(b)
		}
	}
}

// handle applies one delivered batch, retrying it while it fails.
func (p *Projection) handle(batch []RecordedEvent) {
	epoch, pk, ok := p.sub.claimBatch(p.h, batch)
	if !ok {
		return // delivered under a lease since lost: delivered again from the checkpoint
	}
	backoff := p.opts.MinBackoff
	for attempt := 1; ; attempt++ {
		err := p.apply(batch, epoch, pk)
		switch {
		case err == nil:
			p.sub.committed(p.h, epoch, batch[len(batch)-1].EventNumber)
			return
		case p.ctx.Err() != nil:
			return
		case errors.Is(err, errLeaseLost), errors.Is(err, ErrSubscriptionNotFound):
			p.sub.lost() // the runner stops delivering and takes the lease again
			return
		}
		p.s.logger.Warn("projection handler failed; retrying", "stream", p.stream, "subscription", p.name,
			"first", batch[0].EventNumber, "last", batch[len(batch)-1].EventNumber, "attempt", attempt, "error", err)
		if !p.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
		if !p.sub.holds(epoch) {
			return
		}
	}
}

// sleep waits d, or until the projection stops (false).
func (p *Projection) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// apply runs the handler for batch in a transaction that also moves the checkpoint, fenced by
// epoch. Events at or below the stored checkpoint (a commit that went through although its
// outcome was unknown) are not applied again.
func (p *Projection) apply(batch []RecordedEvent, epoch, pk int64) error {
	return p.inTx(epoch, pk, func(tx *sql.Tx, checkpoint int64) (int64, error) {
		i := slices.IndexFunc(batch, func(ev RecordedEvent) bool { return ev.EventNumber > checkpoint })
		if i < 0 {
			return checkpoint, nil
		}
		if err := p.handler(p.ctx, tx, batch[i:]); err != nil {
			return 0, err
		}
		return batch[len(batch)-1].EventNumber, nil
	})
}

// inTx runs f in a transaction and writes the checkpoint f returns in it, fenced by epoch and
// forward-only. f gets the stored checkpoint (-1 when the stream was re-created since).
func (p *Projection) inTx(epoch, pk int64, f func(tx *sql.Tx, checkpoint int64) (int64, error)) error {
	s := p.s
	tx, err := s.db.BeginTx(p.ctx, p.opts.TxOptions)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	row, err := s.q.ProjectionCheckpoint(p.ctx, s.tmpl.Wrap(tx), db.ProjectionCheckpointParams{ID: p.sub.start.id, Epoch: epoch})
	if errors.Is(err, sql.ErrNoRows) {
		return p.sub.refused(p.ctx)
	}
	if err != nil {
		return err
	}
	checkpoint := row.LastSeen
	if row.StreamPk.Int64 != pk {
		checkpoint = -1
	}
	pos, err := f(tx, checkpoint)
	if err != nil {
		return err
	}
	if pos > checkpoint {
		n, err := s.q.WriteCheckpoint(p.ctx, s.tmpl.Wrap(tx), db.WriteCheckpointParams{
			Forward: true, Durable: true, LastSeen: pos, StreamPk: nullPK(pk), ID: p.sub.start.id, Epoch: epoch,
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return p.sub.refused(p.ctx)
		}
	}
	return tx.Commit()
}

// claimBatch says whether batch, received by h, is still in flight under the current lease (a
// batch handed over before a lease loss is not), and returns that lease's epoch and the stream
// incarnation.
func (sub *subscription) claimBatch(h *Subscriber, batch []RecordedEvent) (epoch, pk int64, ok bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.leaseValid() || len(batch) == 0 || len(h.inflight) < len(batch) {
		return 0, 0, false
	}
	for i, ev := range batch {
		if h.inflight[i].EventNumber != ev.EventNumber {
			return 0, 0, false
		}
	}
	return sub.epoch, sub.streamPK, true
}

// holds says whether this process still holds the lease of epoch.
func (sub *subscription) holds(epoch int64) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.leaseValid() && sub.epoch == epoch
}

// committed acknowledges, in memory, a batch whose checkpoint (last) a projection committed.
func (sub *subscription) committed(h *Subscriber, epoch, last int64) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	defer sub.wake()
	if !sub.active || sub.epoch != epoch || h.closed {
		return
	}
	acked, _ := sub.d.ack(h.member, []int64{last})
	sub.cp.progress(acked, time.Now())
	sub.cp.wrote(last, acked)
}
