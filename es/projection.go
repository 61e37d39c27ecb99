package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
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
	// DefaultParkedCheckInterval is how often a projection looks for retries asked for by other
	// processes.
	DefaultParkedCheckInterval = 5 * time.Second
	// MaxSegments bounds ProjectionOptions.Segments: each segment is a row, a lease and a reader.
	MaxSegments = 1024
)

// ErrSegmentCount: a subscription exists with another number of segments than asked for
// (ProjectionOptions.Segments; a plain subscription has 1). The number cannot change while the
// subscription exists: its checkpoints are per segment.
var ErrSegmentCount = errors.New("subscription has another number of segments")

// ParkPolicy is what a projection does with the later events of a parked event's partition key
// (ProjectionOptions.PartitionBy, the stream by default).
type ParkPolicy int

const (
	// ParkWaitKey parks the later events of the key behind it, as ParkedWaiting, without
	// calling the handler: the key's order holds. They are handled, in order, when the parked
	// event is retried successfully or discarded. Keys of other events flow. The default.
	ParkWaitKey ParkPolicy = iota
	// ParkSkip parks the failing event only: the later events of its key are handled as usual,
	// so the key's order is broken around it.
	ParkSkip
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
	// ParkPolicy says what happens to the later events of a parked event's partition key.
	// Defaults to ParkWaitKey: they wait behind it, in order.
	ParkPolicy ParkPolicy
	// ParkedCheckInterval is how often the projection holding the lease looks for parked events
	// that a process other than its own asked to retry or discard (in its own process,
	// RetryParked and DiscardParked reach it at once). At most MaxSubscriptionInterval. Defaults
	// to DefaultParkedCheckInterval (5s).
	ParkedCheckInterval time.Duration
	// Segments splits the subscription into this many segments by its partition key: without
	// PartitionBy, by stream (the stream's internal id, given in creation order, modulo
	// Segments, chosen in SQL, so that a segment reads its own events only); with PartitionBy,
	// by FNV-1a (64 bits) of the key's bytes modulo Segments, chosen as events are read (every
	// segment then reads the whole subscribed stream and keeps its own events, so a process's
	// reads grow with the segments it holds). A single stream's projection needs PartitionBy
	// to be segmented. Each segment has its own lease, checkpoint and parked events, and is handled by
	// one process at a time, so a key's events are handled in order, by one process at a time,
	// across every process that projects the subscription. Processes share the segments fairly
	// (each takes Segments/processes, give or take one) and rebalance when one joins, leaves
	// or dies: within about two Config.LeaseRenewInterval of a join or a Close, and
	// Config.LeaseDuration plus that of a death. Within a process, segments are handled
	// concurrently, each in its own transaction (mind the pool size). The number is fixed when
	// the subscription is created: projecting it with another is ErrSegmentCount (delete it and
	// project again, from a checkpoint, to change it); so is the choice of PartitionBy, which
	// the store cannot check. At most MaxSegments. Defaults to 1 (no segments: one process
	// handles everything, the others wait).
	Segments int
	// TxOptions are the options of the transactions handlers run in: read-write (the checkpoint
	// is written in them), at read committed, repeatable read or serializable; other values are
	// ErrInvalidArgument. Defaults to nil (the database's default isolation).
	TxOptions *sql.TxOptions
}

func (o *ProjectionOptions) withDefaults(all bool) (ProjectionOptions, SubscriptionOptions, error) {
	var c ProjectionOptions
	if o != nil {
		c = *o
	}
	switch {
	case c.Transient:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: a projection cannot be Transient", ErrInvalidArgument)
	case c.ConcurrencyLimit > 1:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: a projection's ConcurrencyLimit is 1 (got %d)", ErrInvalidArgument, c.ConcurrencyLimit)
	case c.MaxAttempts < 0, c.MinBackoff < 0, c.MaxBackoff < 0, c.ParkedCheckInterval < 0:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: negative projection option (MaxAttempts %d, MinBackoff %s, MaxBackoff %s, ParkedCheckInterval %s)",
			ErrInvalidArgument, c.MaxAttempts, c.MinBackoff, c.MaxBackoff, c.ParkedCheckInterval)
	case c.MaxBackoff > MaxSubscriptionInterval, c.MinBackoff > MaxSubscriptionInterval, c.ParkedCheckInterval > MaxSubscriptionInterval:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: MinBackoff %s, MaxBackoff %s and ParkedCheckInterval %s must be at most %s",
			ErrInvalidArgument, c.MinBackoff, c.MaxBackoff, c.ParkedCheckInterval, MaxSubscriptionInterval)
	case c.Segments < 0 || c.Segments > MaxSegments:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: Segments %d: between 1 and %d", ErrInvalidArgument, c.Segments, MaxSegments)
	case c.Segments > 1 && c.PartitionBy == nil && !all:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: Segments %d of a single stream's projection: its events have one key (the stream) unless PartitionBy gives them others",
			ErrInvalidArgument, c.Segments)
	case c.ParkPolicy != ParkWaitKey && c.ParkPolicy != ParkSkip:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: ParkPolicy %d", ErrInvalidArgument, c.ParkPolicy)
	case c.TxOptions != nil && c.TxOptions.ReadOnly:
		return c, SubscriptionOptions{}, fmt.Errorf("%w: TxOptions.ReadOnly: the transaction writes the checkpoint", ErrInvalidArgument)
	case c.TxOptions != nil && !slices.Contains([]sql.IsolationLevel{sql.LevelDefault, sql.LevelReadCommitted,
		sql.LevelRepeatableRead, sql.LevelSerializable}, c.TxOptions.Isolation):
		return c, SubscriptionOptions{}, fmt.Errorf("%w: TxOptions.Isolation %s: PostgreSQL runs read committed, repeatable read or serializable",
			ErrInvalidArgument, c.TxOptions.Isolation)
	}
	if c.Segments == 0 {
		c.Segments = 1
	}
	if c.ParkedCheckInterval == 0 {
		c.ParkedCheckInterval = DefaultParkedCheckInterval
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

// Projection runs a Handler over a persistent subscription (Store.Project). Without segments it
// runs in one process at a time, the one holding the subscription's lease; the others wait and
// take over when it stops or dies. With ProjectionOptions.Segments, every process running it
// handles its fair share of the segments.
type Projection struct {
	one   *projector    // without segments
	group *segmentGroup // with segments
}

// projector runs a Handler over one persistent subscription, or one segment of it, in this
// process.
type projector struct {
	s       *Store
	stream  string
	name    string
	opts    ProjectionOptions
	keyOf   func(RecordedEvent) string
	handler Handler
	h       *Subscriber
	sub     *subscription

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{} // RetryParked or DiscardParked in this process
	drain  chan struct{} // closed by handBack: stop after the batch in flight

	closeOnce, drainOnce sync.Once

	// Owned by run's goroutine.
	epoch   int64           // the lease the blocked keys were loaded under
	blocked map[string]bool // partition keys with parked events (ParkWaitKey)
}

// Project runs handler over the persistent subscription name of stream (a stream, AllStream or
// CategoryStream(c)), creating it if needed as SubscribeToStream does. For each batch, in order,
// the store begins a transaction, calls handler with it, moves the checkpoint past the batch in
// the same transaction (fenced by the subscription's lease: when another process took it over,
// the transaction is rolled back and nothing is applied) and commits. Every checkpoint write of
// a projection is forward-only, so a late write can never move it back and apply effects twice.
//
// A failing batch is tried MaxAttempts times with a doubling backoff (MinBackoff to
// MaxBackoff); then its events are applied one at a time, and the first that fails alone is
// parked (see ListParked) in the transaction that moves the checkpoint past it, and the rest
// flow. The later events of its partition key wait behind it (ParkWaitKey) or flow (ParkSkip).
// RetryParked and DiscardParked act on parked events; the projection holding the lease runs the
// retries, in order, in its process. ctx bounds the projection's life, as Close does.
//
// With Segments > 1 the subscription is split by a hash of the partition key into that many
// segments, each with its own lease, checkpoint and parked events, and shared by every process
// (Store) that projects it: see ProjectionOptions.Segments.
//
// Errors: ErrInvalidArgument (bad options, nil handler), ErrSubscriptionExists (the subscription
// already runs in this process), ErrSegmentCount (the subscription exists with another number
// of segments), ErrClosed, or the database's error creating the subscription.
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
	all, _, _ := subscriptionFilter(stream, nil, nil, nil)
	po, so, err := opts.withDefaults(all)
	if err != nil {
		return nil, opError(op, stream, err)
	}
	if _, _, err := subscriptionFilter(stream, so.Categories, so.StreamPrefixes, so.EventTypes); err != nil {
		return nil, opError(op, stream, err)
	}
	if po.Segments > 1 {
		g, err := s.projectSegments(ctx, stream, name, po, so, handler)
		if err != nil {
			return nil, err
		}
		return &Projection{group: g}, nil
	}
	p, err := s.newProjector(ctx, stream, name, po, so, handler)
	if err != nil {
		return nil, err
	}
	return &Projection{one: p}, nil
}

// newProjector starts handler over the subscription (or segment) so describes.
func (s *Store) newProjector(ctx context.Context, stream, name string, po ProjectionOptions, so SubscriptionOptions, handler Handler) (*projector, error) {
	h, err := s.subscribe(ctx, stream, name, so)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	// The subscriber ends with the store's Close, a delete or ctx: a running handler's context
	// ends with it, so Close stays bounded.
	context.AfterFunc(h.sub.ctx, cancel)
	p := &projector{
		s: s, stream: stream, name: name, opts: po, keyOf: po.keyOf(s.logger), handler: handler, h: h, sub: h.sub,
		ctx: pctx, cancel: cancel, done: make(chan struct{}), kick: make(chan struct{}, 1), drain: make(chan struct{}),
		blocked: map[string]bool{},
	}
	h.sub.mu.Lock()
	h.sub.onParked = p.wakeParked
	h.sub.mu.Unlock()
	go p.run()
	return p, nil
}

// keyOf is the partition key of events: PartitionBy's, or the stream. A PartitionBy that panics
// keys that event by its stream (logged): it runs in the store's goroutines, where a panic
// would end the process.
func (o ProjectionOptions) keyOf(logger *slog.Logger) func(RecordedEvent) string {
	by := o.PartitionBy
	if by == nil {
		return func(ev RecordedEvent) string { return ev.StreamID }
	}
	return func(ev RecordedEvent) (key string) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("PartitionBy panicked; the event is keyed by its stream", "stream", ev.StreamID,
					"event", ev.EventNumber, "panic", r)
				key = ev.StreamID
			}
		}()
		return by(ev)
	}
}

// Subscribed is closed once this process holds the projection's lease and handles its events
// (with segments: once it holds the lease of one of them).
func (p *Projection) Subscribed() <-chan struct{} {
	if p.group != nil {
		return p.group.subscribed
	}
	return p.one.h.Subscribed()
}

// Done is closed when the projection has stopped: after Close, its context's end, the
// subscription's deletion or the store's Close.
func (p *Projection) Done() <-chan struct{} {
	if p.group != nil {
		return p.group.done
	}
	return p.one.done
}

// Err says why the projection stopped: nil while it runs and after Close, ErrSubscriptionNotFound
// after a delete, ErrClosed when the store closed, or its context's error (cause).
func (p *Projection) Err() error {
	if p.group != nil {
		return p.group.err()
	}
	return p.one.h.Err()
}

// Segments returns the segments whose leases this process holds now, in order: [0] for a
// projection without segments while it holds the lease, nil while another process does.
func (p *Projection) Segments() []int {
	if p.group != nil {
		return p.group.held()
	}
	if _, _, ok := p.one.sub.lease(); ok {
		return []int{0}
	}
	return nil
}

// Close stops the projection: a handler running is cancelled (its transaction rolls back), the
// checkpoint of what was committed is written (forward-only) and the lease released, so a
// waiting process takes over (with segments: this process leaves, and the others share its
// segments out at their next heartbeat). Close waits for that. Safe to call more than once.
func (p *Projection) Close() error {
	if p.group != nil {
		return p.group.close()
	}
	return p.one.close()
}

func (p *projector) close() error {
	p.closeOnce.Do(p.cancel)
	<-p.done
	return nil
}

// handBack stops the projector once its batch in flight is committed (or, failing, given up
// between two attempts), then writes the checkpoint and releases the lease: a segment handed to
// another process loses no work.
func (p *projector) handBack() {
	p.drainOnce.Do(func() { close(p.drain) })
	<-p.done
}

func (p *projector) wakeParked() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *projector) run() {
	defer close(p.done)
	defer func() {
		if p.sub.ctx.Err() != nil {
			// The store closed or the subscription was deleted: Err keeps why.
			p.sub.remove(p.h, context.Cause(p.sub.ctx))
		}
		_ = p.h.Close() // the last checkpoint and the lease's release
	}()
	tick := time.NewTicker(p.opts.ParkedCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-p.drain:
			return
		case b, ok := <-p.h.Events():
			if !ok {
				return
			}
			p.handle(b)
		case <-p.kick:
			p.retryParked()
		case <-tick.C:
			p.retryParked()
		}
	}
}

// sync loads the blocked keys when the lease changed since they were loaded. It reports false
// when they cannot be known now.
func (p *projector) sync(epoch int64) bool {
	if epoch == p.epoch {
		return true
	}
	if !p.loadBlocked() {
		return false
	}
	p.epoch = epoch
	// Retries asked for while no process held the lease, or cut short by a lease loss.
	p.wakeParked()
	return true
}

// loadBlocked reads the partition keys with parked events (ParkWaitKey).
func (p *projector) loadBlocked() bool {
	keys, err := p.s.q.BlockedKeys(p.ctx, p.s.tmpl.Wrap(p.s.db), p.sub.start.id)
	if err != nil {
		if p.ctx.Err() == nil {
			p.s.logger.Warn("projection cannot read its parked keys; retrying", "stream", p.stream, "subscription", p.name, "error", err)
		}
		return false
	}
	clear(p.blocked)
	if p.opts.ParkPolicy == ParkWaitKey {
		for _, k := range keys {
			p.blocked[k] = true
		}
		return true
	}
	// ParkSkip, maybe after ParkWaitKey left events waiting: they wait no more, and run as
	// retries (else they could be neither retried nor discarded).
	n, err := p.s.q.ReleaseWaiting(p.ctx, p.s.tmpl.Wrap(p.s.db), p.sub.start.id)
	if err != nil {
		if p.ctx.Err() == nil {
			p.s.logger.Warn("projection cannot release its waiting events; retrying", "stream", p.stream, "subscription", p.name, "error", err)
		}
		return false
	}
	if n > 0 {
		p.wakeParked()
	}
	return true
}

// handle applies one delivered batch.
func (p *projector) handle(batch []RecordedEvent) {
	batch, epoch, pk, ok := p.sub.claimBatch(p.h, batch)
	if !ok {
		return // delivered under a lease since lost: delivered again from the checkpoint
	}
	for !p.sync(epoch) {
		if !p.sleep(p.opts.MinBackoff) || !p.sub.holds(epoch) {
			return
		}
	}
	p.flow(batch, epoch, pk)
}

// flow applies batch, trying it MaxAttempts times, then one event at a time, parking the first
// that fails alone. It reports false when it stopped short (lease lost, projection stopped): the
// events not committed are delivered again from the checkpoint.
//
// Only the handler's own failures count as attempts: while the database is unreachable (the
// transaction cannot begin or commit, or the handler failed and a ping fails too), the batch is
// retried with backoff for as long as it takes, so an outage never parks good events.
func (p *projector) flow(batch []RecordedEvent, epoch, pk int64) bool {
	backoff := p.opts.MinBackoff
	attempt := 0
	for {
		err := p.apply(batch, epoch, pk)
		if err == nil {
			p.sub.committed(p.h, epoch, batch[len(batch)-1].EventNumber)
			return true
		}
		if p.stopped(err) {
			return false
		}
		if p.outage(err) {
			p.s.logger.Warn("projection cannot reach the database; retrying", "stream", p.stream, "subscription", p.name,
				"first", batch[0].EventNumber, "last", batch[len(batch)-1].EventNumber, "error", err)
		} else {
			attempt++
			p.s.logger.Warn("projection handler failed", "stream", p.stream, "subscription", p.name,
				"first", batch[0].EventNumber, "last", batch[len(batch)-1].EventNumber, "attempt", attempt, "error", err)
			if attempt >= p.opts.MaxAttempts {
				if len(batch) == 1 {
					return p.park(batch[0], epoch, pk, err, attempt)
				}
				return p.isolate(batch, epoch, pk, attempt)
			}
		}
		if !p.sleep(backoff) || !p.sub.holds(epoch) {
			return false
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
}

// handlerError marks an error returned (or a panic raised) by the user's handler, as opposed to
// the store's own statements around it.
type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }
func (e handlerError) Unwrap() error { return e.err }

// outagePing bounds the ping that tells a handler's failure from the database's.
const outagePing = 2 * time.Second

// outage says whether err is the database's rather than the handler's: an error of the store's
// own statements, or a handler error while the database does not answer a ping.
func (p *projector) outage(err error) bool {
	var he handlerError
	if !errors.As(err, &he) {
		return true
	}
	ctx, cancel := context.WithTimeout(p.ctx, outagePing)
	defer cancel()
	return p.s.db.PingContext(ctx) != nil
}

// isolate applies batch one event at a time; the first that fails is parked and the rest flow.
func (p *projector) isolate(batch []RecordedEvent, epoch, pk int64, attempts int) bool {
	for i, ev := range batch {
		err := p.apply(batch[i:i+1], epoch, pk)
		if err == nil {
			p.sub.committed(p.h, epoch, ev.EventNumber)
			continue
		}
		if p.stopped(err) {
			return false
		}
		if p.outage(err) {
			return p.flow(batch[i:], epoch, pk) // the database went away: nothing is parked for it
		}
		if !p.park(ev, epoch, pk, err, attempts+1) {
			return false
		}
		if rest := batch[i+1:]; len(rest) > 0 {
			return p.flow(rest, epoch, pk)
		}
		return true
	}
	return true
}

// maxParkedError bounds the error text kept with a parked event, in bytes.
const maxParkedError = 4000

// park parks ev, with its handler's error, in the transaction that moves the checkpoint past it.
func (p *projector) park(ev RecordedEvent, epoch, pk int64, cause error, attempts int) bool {
	key := p.keyOf(ev)
	msg := cause.Error()
	if len(msg) > maxParkedError {
		msg = msg[:maxParkedError]
	}
	backoff := p.opts.MinBackoff
	for {
		err := p.inTx(epoch, pk, func(tx *sql.Tx, checkpoint int64) (int64, error) {
			if ev.EventNumber <= checkpoint {
				return checkpoint, nil
			}
			return ev.EventNumber, p.s.q.ParkEvent(p.ctx, p.s.tmpl.Wrap(tx), db.ParkEventParams{
				SubscriptionID: p.sub.start.id, Position: ev.EventNumber, EventID: ev.EventID, StreamName: ev.StreamID,
				PartitionKey: key, Error: msg, Attempts: int32(min(attempts, 1<<30)), Status: string(ParkedFailed),
			})
		})
		if err == nil {
			break
		}
		if p.stopped(err) {
			return false
		}
		p.s.logger.Warn("projection cannot park an event; retrying", "stream", p.stream, "subscription", p.name,
			"event", ev.EventNumber, "error", err)
		if !p.sleep(backoff) || !p.sub.holds(epoch) {
			return false
		}
		backoff = min(2*backoff, p.opts.MaxBackoff)
	}
	p.s.logger.Error("projection parked an event", "stream", p.stream, "subscription", p.name,
		"event", ev.EventNumber, "event_id", ev.EventID, "key", key, "attempts", attempts, "error", msg)
	if p.opts.ParkPolicy == ParkWaitKey {
		p.blocked[key] = true
	}
	p.sub.committed(p.h, epoch, ev.EventNumber)
	return true
}

// stopped says whether err ends the handling of the current lease: the projection stopped, or
// the lease is lost (then the runner is told at once).
func (p *projector) stopped(err error) bool {
	switch {
	case p.ctx.Err() != nil:
		return true
	case errors.Is(err, errLeaseLost), errors.Is(err, ErrSubscriptionNotFound):
		p.sub.lost() // the runner stops delivering and takes the lease again
		return true
	}
	return false
}

// sleep waits d, or until the projection stops (false).
func (p *projector) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.ctx.Done():
		return false
	case <-p.drain:
		return false
	case <-t.C:
		return true
	}
}

// apply runs the handler for batch in a transaction that also moves the checkpoint, fenced by
// epoch. Events at or below the stored checkpoint (a commit that went through although its
// outcome was unknown) are not applied again; events of blocked keys are parked as waiting.
//
// The fast way reads the checkpoint only at the end, in the statement that moves it (one round
// trip less per batch): when it shows part of the batch applied before, the transaction rolls
// back and the batch runs again the careful way, which reads it first.
func (p *projector) apply(batch []RecordedEvent, epoch, pk int64) error {
	err := p.applyFast(batch, epoch, pk)
	if !errors.Is(err, errAppliedBefore) {
		return err
	}
	return p.inTx(epoch, pk, func(tx *sql.Tx, checkpoint int64) (int64, error) {
		i := slices.IndexFunc(batch, func(ev RecordedEvent) bool { return ev.EventNumber > checkpoint })
		if i < 0 {
			return checkpoint, nil
		}
		if err := p.handleIn(tx, batch[i:]); err != nil {
			return 0, err
		}
		return batch[len(batch)-1].EventNumber, nil
	})
}

// errAppliedBefore: the stored checkpoint shows part of the batch applied already.
var errAppliedBefore = errors.New("batch applied before")

func (p *projector) applyFast(batch []RecordedEvent, epoch, pk int64) error {
	s := p.s
	tx, err := s.db.BeginTx(p.ctx, p.opts.TxOptions)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if err := p.handleIn(tx, batch); err != nil {
		return err
	}
	row, err := s.q.AdvanceProjection(p.ctx, s.tmpl.Wrap(tx), db.AdvanceProjectionParams{
		ID: p.sub.start.id, Epoch: epoch, LastSeen: batch[len(batch)-1].EventNumber, StreamPk: nullPK(pk),
	})
	if errors.Is(err, sql.ErrNoRows) {
		_ = tx.Rollback() // first: refused needs a connection, and the pool may have only this one
		return p.sub.refused(p.ctx)
	}
	if err != nil {
		return err
	}
	if row.PrevPk.Int64 == pk && row.Prev >= batch[0].EventNumber {
		return errAppliedBefore // rolled back by the deferred Rollback
	}
	return tx.Commit()
}

// handleIn parks the events of blocked keys as waiting and hands the others to the handler, in
// tx.
func (p *projector) handleIn(tx *sql.Tx, batch []RecordedEvent) error {
	todo := batch
	if len(p.blocked) > 0 {
		todo = make([]RecordedEvent, 0, len(batch))
		for _, ev := range batch {
			key := p.keyOf(ev)
			if !p.blocked[key] {
				todo = append(todo, ev)
				continue
			}
			if err := p.s.q.ParkEvent(p.ctx, p.s.tmpl.Wrap(tx), db.ParkEventParams{
				SubscriptionID: p.sub.start.id, Position: ev.EventNumber, EventID: ev.EventID, StreamName: ev.StreamID,
				PartitionKey: key, Error: "waiting behind a parked event of its key", Status: string(ParkedWaiting),
			}); err != nil {
				return err
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	// A copy: the handler may reorder or change its batch (grouping by stream, say).
	return p.call(tx, slices.Clone(todo))
}

// call runs the handler; a panic in it is its error (retried, then parked), not the process's end.
func (p *projector) call(tx *sql.Tx, batch []RecordedEvent) (err error) {
	defer func() {
		if r := recover(); r != nil {
			p.s.logger.Error("projection handler panicked", "stream", p.stream, "subscription", p.name,
				"panic", r, "stack", string(debug.Stack()))
			err = handlerError{fmt.Errorf("%w: handler panicked: %v", ErrHandlerPanicked, r)}
		}
	}()
	if err := p.handler(p.ctx, tx, batch); err != nil {
		return handlerError{err}
	}
	return nil
}

// ErrHandlerPanicked is the error of a projection handler that panicked: the panic is recovered,
// logged with its stack, and the batch is retried, then parked, as for any failing handler.
var ErrHandlerPanicked = errors.New("projection handler panicked")

// inTx runs f in a transaction and writes the checkpoint f returns in it, fenced by epoch and
// forward-only (no write when f returns the checkpoint it got). f gets the stored checkpoint
// (-1 when the stream was re-created since).
func (p *projector) inTx(epoch, pk int64, f func(tx *sql.Tx, checkpoint int64) (int64, error)) error {
	s := p.s
	tx, err := s.db.BeginTx(p.ctx, p.opts.TxOptions)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	row, err := s.q.ProjectionCheckpoint(p.ctx, s.tmpl.Wrap(tx), db.ProjectionCheckpointParams{ID: p.sub.start.id, Epoch: epoch})
	if errors.Is(err, sql.ErrNoRows) {
		_ = tx.Rollback() // first: refused needs a connection, and the pool may have only this one
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
			_ = tx.Rollback() // first: refused needs a connection, and the pool may have only this one
			return p.sub.refused(p.ctx)
		}
	}
	return tx.Commit()
}

// claimBatch returns the part of batch, received by h, still in flight under the current lease
// (a batch handed over before a lease loss may repeat events handled since, or be gone
// altogether), with that lease's epoch and the stream incarnation.
func (sub *subscription) claimBatch(h *Subscriber, batch []RecordedEvent) (claimed []RecordedEvent, epoch, pk int64, ok bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.leaseValid() || len(h.inflight) == 0 {
		return nil, 0, 0, false
	}
	first := h.inflight[0].EventNumber
	i := slices.IndexFunc(batch, func(ev RecordedEvent) bool { return ev.EventNumber >= first })
	if i < 0 {
		return nil, 0, 0, false
	}
	batch = batch[i:]
	if len(h.inflight) < len(batch) {
		return nil, 0, 0, false
	}
	for i, ev := range batch {
		if h.inflight[i].EventNumber != ev.EventNumber {
			return nil, 0, 0, false
		}
	}
	return batch, sub.epoch, sub.streamPK, true
}

// lease returns the current lease's epoch and stream incarnation, if this process delivers.
func (sub *subscription) lease() (epoch, pk int64, ok bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.epoch, sub.streamPK, sub.leaseValid()
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
	acked, _ := sub.d.ack(h.member, []ackKey{{number: last}})
	sub.cp.progress(acked, time.Now())
	sub.cp.wrote(last, acked)
}
