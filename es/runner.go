package es

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errUnsubscribed is the cancel cause of a subscription whose last subscriber left.
var errUnsubscribed = errors.New("unsubscribed")

// errLeaseLost says a checkpoint write was refused: another process took the lease over.
var errLeaseLost = errors.New("subscription lease lost")

// subscription runs one persistent subscription in this process: it waits for the
// subscription's lease, reads events from the checkpoint on (borrowing pool connections only for
// the query), hands them to its subscribers and writes the checkpoint, fenced by the lease's
// epoch, once events are acknowledged. It stops delivering the moment the lease runs out, and
// starts over from the checkpoint when it takes the lease again.
type subscription struct {
	store  *Store
	stream string // the subscription's key: a stream, AllStream or CategoryStream(c)
	name   string
	opts   SubscriptionOptions
	all    bool // reads $all (through f when it is set), not a stream
	f      filter
	start  subscriptionStart
	claim  *leaseClaim

	ctx    context.Context // cancelled, with a cause, by stop
	cancel context.CancelCauseFunc
	wakeCh chan struct{}
	done   chan struct{} // closed when run returns
	prev   *subscription // a stopping predecessor in this process, whose lease goes first

	mu          sync.Mutex
	d           *dispatcher
	cp          checkpointer
	subscribers []*Subscriber
	closing     bool       // the last subscriber left: it takes no more
	active      bool       // this process holds the lease and delivers
	epoch       int64      // the lease's epoch
	deadline    time.Time  // when the lease runs out unless renewed, on this process's clock
	leaseLost   bool       // a renewal found the lease taken or gone
	streamPK    int64      // the stream's incarnation the checkpoint counts in (0: unknown)
	pkChanged   bool       // the stream was re-created: the checkpoint must be written
	gen         int64      // the poller's deletes generation the queue was read under
	ahead       *readAhead // the next page, read while this one is delivered (es/readahead.go)
	onParked    func()     // a projection's: RetryParked or DiscardParked was called in this process
}

func newSubscription(s *Store, stream, name string, o SubscriptionOptions, start subscriptionStart) *subscription {
	ctx, cancel := context.WithCancelCause(context.Background())
	all, f, _ := subscriptionFilter(stream, o.Categories, o.StreamPrefixes, o.EventTypes) // checked by Subscribe
	if o.segmentByStream {
		f.segment, f.segments = o.segment, o.segments
	}
	sub := &subscription{
		store: s, stream: stream, name: name, opts: o, start: start, all: all, f: f,
		ctx:    ctx,
		cancel: cancel,
		wakeCh: make(chan struct{}, 1),
		done:   make(chan struct{}),
		d:      newDispatcher(o.BufferSize, o.PartitionBy),
		cp:     checkpointer{threshold: o.CheckpointThreshold, after: o.CheckpointAfter},
	}
	sub.claim = &leaseClaim{
		id:      start.id,
		retry:   o.RetryInterval,
		granted: make(chan leaseGrant, 1),
		renewed: sub.renewed,
		lost:    sub.lost,
		gone:    func() { sub.stop(ErrSubscriptionNotFound) },
	}
	return sub
}

func (sub *subscription) now() time.Time { return time.Now() }

func (sub *subscription) wake() {
	select {
	case sub.wakeCh <- struct{}{}:
	default:
	}
}

func (sub *subscription) stopping() bool { return sub.ctx.Err() != nil }

// stop ends the subscription; its subscribers get cause from Err (nil: unsubscribed).
func (sub *subscription) stop(cause error) {
	if cause == nil {
		cause = errUnsubscribed
	}
	sub.cancel(cause)
}

// renewed and lost are the lease keeper's callbacks.
func (sub *subscription) renewed(epoch int64, deadline time.Time) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.active && sub.epoch == epoch {
		sub.deadline = deadline
	}
}

func (sub *subscription) lost() {
	sub.mu.Lock()
	sub.leaseLost = true
	sub.mu.Unlock()
	sub.wake()
}

func (sub *subscription) watchedStream() string { return source{sub.stream, sub.all}.watched() }

// observe wakes the subscription when a poll saw something for it to read.
func (sub *subscription) observe(h *heads) {
	sub.mu.Lock()
	wake := source{sub.stream, sub.all}.hasNews(h, sub.d.readPos, sub.streamPK, sub.gen, sub.store.poller.deleteGen.Load())
	sub.mu.Unlock()
	if wake {
		sub.wake()
	}
}

// run is the subscription's life: take the lease, deliver until stopped or the lease is lost,
// and start over after a loss.
func (sub *subscription) run() {
	defer close(sub.done)
	defer sub.store.forget(sub)
	if sub.prev != nil {
		<-sub.prev.done
	}
	sub.store.poller.register(sub)
	defer sub.store.poller.unregister(sub)
	for {
		g, ok := sub.acquire()
		if !ok {
			break
		}
		sub.begin(g)
		if !sub.deliver() {
			sub.release()
			break
		}
		sub.end()
		if !sub.opts.Transient && errors.Is(sub.refused(sub.ctx), ErrSubscriptionNotFound) {
			sub.stop(ErrSubscriptionNotFound) // deleted by another process
			break
		}
		sub.store.logger.Warn("subscription lease lost; delivery stopped, taking it again",
			"stream", sub.stream, "subscription", sub.name, "epoch", g.epoch)
	}
	cause := context.Cause(sub.ctx)
	sub.mu.Lock()
	for len(sub.subscribers) > 0 {
		sub.detach(sub.subscribers[0], cause)
	}
	sub.mu.Unlock()
}

// acquire waits until this process holds the lease (at once for a Transient subscription), or
// the subscription stops.
func (sub *subscription) acquire() (leaseGrant, bool) {
	if sub.opts.Transient {
		return leaseGrant{checkpoint: sub.start.checkpoint, streamPK: sub.start.streamPK}, sub.ctx.Err() == nil
	}
	k := sub.store.leases
	k.want(sub.claim)
	select {
	case g := <-sub.claim.granted:
		if sub.ctx.Err() == nil {
			return g, true
		}
		k.drop(sub.claim)
		_, _ = k.release(sub.store.hardCtx, sub.claim.id, g.epoch, g.checkpoint, g.streamPK, sub.opts.forwardOnly)
		return leaseGrant{}, false
	case <-sub.ctx.Done():
		k.drop(sub.claim)
		select {
		case g := <-sub.claim.granted: // granted meanwhile
			_, _ = k.release(sub.store.hardCtx, sub.claim.id, g.epoch, g.checkpoint, g.streamPK, sub.opts.forwardOnly)
		default:
		}
		return leaseGrant{}, false
	}
}

// begin starts delivery under a new lease, from its checkpoint.
func (sub *subscription) begin(g leaseGrant) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.active, sub.leaseLost = true, false
	sub.epoch, sub.deadline = g.epoch, g.deadline
	if sub.opts.Transient {
		sub.deadline = time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	sub.streamPK, sub.pkChanged = g.streamPK, false
	sub.d.reset(g.checkpoint)
	sub.cp.reset(g.checkpoint)
	sub.gen = sub.store.poller.deleteGen.Load()
	for _, h := range sub.subscribers {
		select {
		case <-h.subscribed:
		default:
			close(h.subscribed)
		}
	}
}

// end forgets delivery state after the lease was lost: the next holder, maybe this process
// again, delivers again from the checkpoint.
func (sub *subscription) end() {
	sub.store.leases.drop(sub.claim)
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.active = false
	sub.d.reset(sub.d.readPos)
}

// leaseValid says whether this process may deliver now. Must hold mu.
func (sub *subscription) leaseValid() bool {
	return sub.active && !sub.leaseLost && time.Now().Before(sub.deadline)
}

// deliver runs the subscription while this process holds the lease. It returns true when the
// lease was lost, false when the subscription stopped.
func (sub *subscription) deliver() (lost bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	read := true
	for {
		if sub.ctx.Err() != nil {
			return false
		}
		sub.mu.Lock()
		valid, deadline := sub.leaseValid(), sub.deadline
		sub.mu.Unlock()
		if !valid {
			return true
		}
		var more bool
		var err error
		if read {
			more, err = sub.fill()
		}
		if err != nil && sub.ctx.Err() == nil {
			sub.store.logger.Warn("subscription read failed; retrying", "stream", sub.stream, "subscription", sub.name, "error", err)
		}
		sub.dispatch()
		switch err := sub.checkpoint(sub.ctx, false); {
		case err == nil:
		case errors.Is(err, errLeaseLost):
			return true
		case errors.Is(err, ErrSubscriptionNotFound):
			sub.stop(ErrSubscriptionNotFound)
			return false
		case sub.ctx.Err() == nil:
			sub.store.logger.Warn("subscription checkpoint not written; retrying", "stream", sub.stream, "subscription", sub.name, "error", err)
		}
		if more && err == nil {
			read = true
			continue
		}
		// Wait for a wake-up (the poller, an ack, a new subscriber), the checkpoint timer, or the
		// lease's deadline, whichever comes first.
		sub.mu.Lock()
		wait, ok := sub.cp.timer(time.Now())
		sub.mu.Unlock()
		untilDeadline := time.Until(deadline)
		if !ok || untilDeadline < wait {
			wait = untilDeadline
		}
		if err != nil {
			wait = min(wait, sub.store.pollInterval)
		}
		if timer == nil {
			timer = time.NewTimer(max(wait, 0))
		} else {
			timer.Reset(max(wait, 0))
		}
		// Only a wake-up (new events, an ack making room, a new subscriber) or a failed read
		// reads again: the checkpoint timer and the lease's deadline only look at the state.
		select {
		case <-sub.ctx.Done():
			return false
		case <-sub.wakeCh:
			read = true
		case <-timer.C:
			read = err != nil
		}
	}
}

// fill reads events into the queue while there is room. It reports whether a full read suggests
// more events are waiting.
func (sub *subscription) fill() (more bool, err error) {
	sub.mu.Lock()
	if gen := sub.store.poller.deleteGen.Load(); gen != sub.gen {
		sub.d.dropQueue() // read again what was read before a delete
		sub.gen = gen
	}
	queued, from, pk, epoch, gen := sub.d.queued(), sub.d.readPos, sub.streamPK, sub.epoch, sub.gen
	sub.mu.Unlock()
	room := sub.opts.MaxQueueSize - queued
	if room <= 0 || queued > sub.opts.MaxQueueSize/2 {
		return false, nil // enough queued: read again when it runs low
	}
	sub.mu.Lock()
	ahead := sub.takeReadAhead(from, room)
	n := min(room, subscriptionReadPage)
	if ahead != nil {
		n = ahead.n
	}
	sub.readAheadAfter(from, n, room-n)
	sub.mu.Unlock()
	var events []RecordedEvent
	var readTo, readPK int64
	if ahead != nil {
		select {
		case <-ahead.done:
		case <-sub.ctx.Done():
			return false, context.Cause(sub.ctx)
		}
		// Read again after it: events may have come since it started.
		events, readTo, more, err = ahead.events, ahead.readTo, ahead.err == nil, ahead.err
		sub.store.readAheadsUsed.Add(1)
	} else {
		events, readTo, readPK, more, err = sub.store.readSource(sub.ctx, sub.stream, sub.all, sub.f, from, room)
	}
	if err != nil {
		return false, err
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	switch {
	case !sub.active || sub.epoch != epoch || sub.d.readPos != from || sub.streamPK != pk:
		return true, nil // the lease or the position changed meanwhile: read again
	case sub.store.poller.deleteGen.Load() != gen:
		return true, nil // a delete committed meanwhile: read again
	case !sub.all && readPK != 0 && pk != 0 && readPK != pk:
		// Hard deleted and re-created: a new stream, delivered from its first event. What was
		// in flight belonged to the old one.
		sub.d.reset(0)
		sub.cp.reset(-1)
		sub.streamPK, sub.pkChanged = readPK, true
		return true, nil
	case !sub.all && pk == 0 && readPK != 0:
		sub.streamPK, sub.pkChanged = readPK, true
	}
	if readTo <= from {
		return false, nil
	}
	kept := events[:0]
	for _, ev := range events {
		if sub.opts.Selector != nil && !sub.opts.Selector(ev) {
			continue
		}
		if sub.opts.Mapper != nil {
			ev = sub.opts.Mapper(ev)
		}
		kept = append(kept, ev)
	}
	// Events the selector or the filter left out count as done with: the checkpoint moves past
	// them.
	skipped := len(events) - len(kept)
	if len(events) == 0 || readTo > events[len(events)-1].EventNumber {
		skipped++ // positions the filter stepped over after the last event: the checkpoint moves past them too
	}
	sub.cp.progress(skipped, time.Now())
	sub.d.enqueue(kept, readTo)
	return more, nil
}

// deliveryHook, when set (by tests), sees every batch handed to a subscriber, at that moment.
var deliveryHook atomic.Pointer[func(stream, name string, epoch int64, batch []RecordedEvent)]

// dispatch hands queued events to subscribers with room, while the lease is valid.
func (sub *subscription) dispatch() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.leaseValid() || sub.store.poller.deleteGen.Load() != sub.gen {
		return // a delete since the queue was read: fill reads it again first
	}
	for m, b := range sub.d.dispatch() {
		if hook := deliveryHook.Load(); hook != nil {
			(*hook)(sub.stream, sub.name, sub.epoch, b)
		}
		sub.store.tel.subscriptionBatch(sub.stream, sub.name, b) // telemetry (es/telemetry.go)
		select {
		case m.events <- b:
		default: // cannot happen: the dispatcher checked the channel has room
			sub.store.logger.Error("subscriber channel full", "stream", sub.stream, "subscription", sub.name)
		}
	}
}

// checkpoint writes the safe position when the threshold, the interval or force says so, fenced
// by the lease's epoch: errLeaseLost when another process took over, ErrSubscriptionNotFound
// when the subscription was deleted.
func (sub *subscription) checkpoint(ctx context.Context, force bool) error {
	sub.mu.Lock()
	pos := sub.d.safePosition()
	// Idle (everything read is acknowledged): the checkpoint goes to where the reads got, so that
	// positions filtered out after the last event delivered do not wait for the next event.
	if !sub.active || !sub.cp.due(pos, force || sub.pkChanged || sub.d.idle(), time.Now()) {
		sub.mu.Unlock()
		return nil
	}
	n, epoch, pk := sub.cp.unwritten, sub.epoch, sub.streamPK
	sub.mu.Unlock()
	if !sub.opts.Transient {
		written, err := sub.store.checkpoints.write(ctx, sub.start.id, epoch, pos, pk, sub.opts.forwardOnly)
		if err != nil {
			return err
		}
		if !written {
			return sub.refused(ctx)
		}
	}
	sub.mu.Lock()
	if sub.epoch == epoch {
		sub.cp.wrote(pos, n)
		if sub.streamPK == pk {
			sub.pkChanged = false
		}
	}
	sub.mu.Unlock()
	return nil
}

// refused tells why a fenced write changed nothing.
func (sub *subscription) refused(ctx context.Context) error {
	if _, err := sub.store.q.SubscriptionEpoch(ctx, sub.store.tmpl.Wrap(sub.store.db), sub.start.id); errors.Is(err, sql.ErrNoRows) {
		return ErrSubscriptionNotFound
	}
	return errLeaseLost
}

// release writes the last checkpoint and hands the lease back, on a clean stop.
func (sub *subscription) release() {
	sub.store.leases.drop(sub.claim)
	sub.mu.Lock()
	active := sub.active && !sub.leaseLost
	pos, epoch, pk := sub.d.safePosition(), sub.epoch, sub.streamPK
	if sub.cp.written > pos && !sub.pkChanged {
		pos = sub.cp.written
	}
	sub.active = false
	sub.mu.Unlock()
	if !active || sub.opts.Transient {
		return
	}
	ok, err := sub.store.leases.release(sub.store.hardCtx, sub.start.id, epoch, pos, pk, sub.opts.forwardOnly)
	switch {
	case err != nil:
		sub.store.logger.Warn("subscription cannot write its last checkpoint; its lease runs out on its own",
			"stream", sub.stream, "subscription", sub.name, "error", err)
	case !ok && !errors.Is(context.Cause(sub.ctx), ErrSubscriptionNotFound):
		sub.store.logger.Warn("subscription's last checkpoint refused: another process holds it now",
			"stream", sub.stream, "subscription", sub.name)
	}
}
