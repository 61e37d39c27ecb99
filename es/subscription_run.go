package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// subscription runs one persistent subscription in this process: it holds the subscription's
// advisory lock on a dedicated connection, reads events from the checkpoint on, hands them to its
// subscribers and writes the checkpoint, through the lock's connection, once events are acked.
type subscription struct {
	store   *Store
	stream  string
	name    string
	opts    SubscriptionOptions
	lockKey int64

	ctx      context.Context // cancelled by stop
	cancel   context.CancelFunc
	wakeCh   chan struct{}
	stopCh   chan struct{}
	stopOnce sync.Once
	finished chan struct{}
	prev     *subscription // a stopping predecessor, whose lock must go first

	mu          sync.Mutex
	stopErr     error
	subscribers []*Subscription
	active      bool
	rr          int
	queue       []RecordedEvent // read, not yet delivered, in position order
	readPos     int64           // last position read from the database
	checkpoint  int64           // last position written (in memory only when transient)
	unwritten   int             // acks and skipped events since the checkpoint was written
	unwrittenAt time.Time       // when the first of them happened
	partitions  map[string]*partition
	keys        map[int64]string // position -> partition key of in-flight events
}

type partition struct {
	owner *Subscription
	n     int // events of the key in flight to owner
}

func newSubscription(s *Store, stream, name string, o SubscriptionOptions) *subscription {
	ctx, cancel := context.WithCancel(context.Background())
	return &subscription{
		store: s, stream: stream, name: name, opts: o,
		lockKey:    subscriptionLockKey(s.Schema(), stream, name),
		ctx:        ctx,
		cancel:     cancel,
		wakeCh:     make(chan struct{}, 1),
		stopCh:     make(chan struct{}),
		finished:   make(chan struct{}),
		partitions: map[string]*partition{},
		keys:       map[int64]string{},
	}
}

func subscriptionLockKey(schema, stream, name string) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "eventstore subscription\x00%s\x00%s\x00%s", schema, stream, name)
	return int64(h.Sum64())
}

func (sub *subscription) wake() {
	select {
	case sub.wakeCh <- struct{}{}:
	default:
	}
}

func (sub *subscription) stopping() bool {
	select {
	case <-sub.stopCh:
		return true
	default:
		return false
	}
}

// stop ends the subscription; its subscribers get err from Err.
func (sub *subscription) stop(err error) {
	sub.stopOnce.Do(func() {
		sub.mu.Lock()
		sub.stopErr = err
		sub.mu.Unlock()
		close(sub.stopCh)
	})
}

func (sub *subscription) empty() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return len(sub.subscribers) == 0
}

// add connects a subscriber, within the subscription's limits.
func (sub *subscription) add(o SubscriptionOptions) (*Subscription, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for _, h := range sub.subscribers {
		if h.id == o.SubscriberID {
			return nil, ErrAlreadySubscribed
		}
	}
	if len(sub.subscribers) >= sub.opts.ConcurrencyLimit {
		if sub.opts.ConcurrencyLimit == 1 {
			return nil, ErrSubscriptionExists
		}
		return nil, ErrTooManySubscribers
	}
	h := &Subscription{
		sub:        sub,
		id:         o.SubscriberID,
		events:     make(chan []RecordedEvent, sub.opts.BufferSize),
		subscribed: make(chan struct{}),
		done:       make(chan struct{}),
	}
	if sub.active {
		close(h.subscribed)
	}
	sub.subscribers = append(sub.subscribers, h)
	sub.wake()
	return h, nil
}

// remove disconnects a subscriber; its unacknowledged events go back to the queue. The last one
// out stops the subscription, and remove reports it.
func (sub *subscription) remove(h *Subscription, err error) bool {
	sub.mu.Lock()
	last := sub.detach(h, err)
	sub.mu.Unlock()
	if last {
		sub.stop(nil)
	}
	sub.wake()
	return last
}

// detach must hold mu. It reports whether no subscriber is left.
func (sub *subscription) detach(h *Subscription, err error) bool {
	if h.closed {
		return len(sub.subscribers) == 0
	}
	h.closed, h.err = true, err
	sub.requeue(h.inflight)
	h.inflight = nil
	sub.subscribers = slices.DeleteFunc(sub.subscribers, func(x *Subscription) bool { return x == h })
	close(h.events)
	close(h.done)
	return len(sub.subscribers) == 0
}

// requeue puts delivered, unacknowledged events back for delivery, in order. Must hold mu.
func (sub *subscription) requeue(events []RecordedEvent) {
	if len(events) == 0 {
		return
	}
	for _, ev := range events {
		sub.release(ev.EventNumber)
	}
	sub.queue = append(sub.queue, events...)
	slices.SortFunc(sub.queue, func(a, b RecordedEvent) int { return int(a.EventNumber - b.EventNumber) })
}

// release forgets an in-flight event's partition. Must hold mu.
func (sub *subscription) release(pos int64) {
	key, ok := sub.keys[pos]
	if !ok {
		return
	}
	delete(sub.keys, pos)
	if p := sub.partitions[key]; p != nil {
		if p.n--; p.n <= 0 {
			delete(sub.partitions, key)
		}
	}
}

func (sub *subscription) ack(h *Subscription, positions []int64, upTo bool) error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	// Also after a failed ack: its caller took a batch (maybe one delivered before a lock loss),
	// which makes room in its channel for the next.
	defer sub.wake()
	if h.closed {
		return fmt.Errorf("eventstore: ack %s/%s: %w: subscriber closed", sub.stream, sub.name, ErrUnexpectedAck)
	}
	if len(positions) == 0 {
		return nil
	}
	var acked int
	if upTo {
		i := slices.IndexFunc(h.inflight, func(ev RecordedEvent) bool { return ev.EventNumber == positions[0] })
		if i < 0 {
			return fmt.Errorf("eventstore: ack %s/%s: %w: event %d is not in flight", sub.stream, sub.name, ErrUnexpectedAck, positions[0])
		}
		for _, ev := range h.inflight[:i+1] {
			sub.release(ev.EventNumber)
		}
		acked = i + 1
		h.inflight = slices.Delete(h.inflight, 0, i+1)
	} else {
		missing := int64(-1)
		for _, p := range positions {
			if !slices.ContainsFunc(h.inflight, func(ev RecordedEvent) bool { return ev.EventNumber == p }) {
				missing = p
				break
			}
		}
		before := len(h.inflight)
		h.inflight = slices.DeleteFunc(h.inflight, func(ev RecordedEvent) bool {
			if slices.Contains(positions, ev.EventNumber) {
				sub.release(ev.EventNumber)
				return true
			}
			return false
		})
		acked = before - len(h.inflight)
		if missing >= 0 {
			// The others are acknowledged all the same: after a lock loss, a batch can mix events
			// delivered again (in flight) with events acknowledged since through a batch received
			// before the loss; refusing it all would leave those in flight forever.
			sub.progress(acked)
			return fmt.Errorf("eventstore: ack %s/%s: %w: event %d is not in flight", sub.stream, sub.name, ErrUnexpectedAck, missing)
		}
	}
	sub.progress(acked)
	sub.wake()
	return nil
}

// progress counts events done with towards the checkpoint threshold. Must hold mu.
func (sub *subscription) progress(n int) {
	if n > 0 && sub.unwritten == 0 {
		sub.unwrittenAt = time.Now()
	}
	sub.unwritten += n
}

// run is the subscription's life: take the lock, deliver until stopped or the lock is lost, and
// start over after a loss.
func (sub *subscription) run() {
	defer close(sub.finished)
	defer sub.store.forget(sub)
	defer sub.cancel()
	if sub.prev != nil {
		<-sub.prev.finished
	}
	// LISTEN waits while the database is unreachable: stopping ends that wait. The subscription's
	// own context is not cancelled by stopping, so that a checkpoint write in flight on the lock's
	// connection is not interrupted (which would break the connection, and the last checkpoint).
	waitCtx, cancelWait := context.WithCancel(sub.ctx)
	defer cancelWait()
	go func() {
		select {
		case <-sub.stopCh:
			cancelWait()
		case <-waitCtx.Done():
		}
	}()
	var wakeups <-chan struct{}
	if w := sub.store.waiter(waitCtx); w != nil {
		defer w.Close()
		wakeups = w.C
	}
	for {
		conn := sub.acquire()
		if conn == nil {
			break
		}
		lost := sub.deliver(conn, wakeups)
		sub.releaseLock(conn)
		if !lost {
			break
		}
		sub.store.logger.Warn("subscription lost its lock; taking it again", "stream", sub.stream, "subscription", sub.name)
		sub.reset()
	}
	sub.mu.Lock()
	for len(sub.subscribers) > 0 {
		sub.detach(sub.subscribers[0], sub.stopErr)
	}
	sub.mu.Unlock()
}

// acquire waits until this process holds the subscription's lock, or the subscription stops.
func (sub *subscription) acquire() *sql.Conn {
	for {
		conn, err := sub.store.db.Conn(sub.ctx)
		if err == nil {
			var ok bool
			ok, err = sub.store.q.TryAdvisoryLock(sub.ctx, conn, sub.lockKey)
			if err == nil && ok {
				return conn
			}
			conn.Close()
		}
		if err != nil && !sub.stopping() {
			sub.store.logger.Warn("subscription cannot take its lock", "stream", sub.stream, "subscription", sub.name, "error", err)
		}
		select {
		case <-sub.stopCh:
			return nil
		case <-time.After(sub.opts.RetryInterval):
		}
	}
}

func (sub *subscription) releaseLock(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(sub.ctx), 5*time.Second)
	defer cancel()
	_, _ = sub.store.q.AdvisoryUnlock(ctx, conn, sub.lockKey)
	// Closing returns the connection to the pool; the session, and any lock it still held, goes
	// with a broken connection.
	conn.Close()
}

// reset forgets delivery state after the lock was lost: the new holder, maybe this process
// again, redelivers from the checkpoint.
func (sub *subscription) reset() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.active = false
	sub.queue = nil
	for _, h := range sub.subscribers {
		h.inflight = nil
	}
	clear(sub.partitions)
	clear(sub.keys)
	sub.unwritten = 0
}

// deliver runs the subscription while this process holds the lock. It returns true when the lock
// was lost (its connection broke), false when the subscription stopped.
func (sub *subscription) deliver(conn *sql.Conn, wakeups <-chan struct{}) (lost bool) {
	start, err := sub.startPosition(conn)
	if err != nil {
		if sub.stopping() {
			return false
		}
		sub.store.logger.Warn("subscription cannot read its checkpoint", "stream", sub.stream, "subscription", sub.name, "error", err)
		return true
	}
	sub.mu.Lock()
	sub.active = true
	sub.checkpoint, sub.readPos = start, start
	for _, h := range sub.subscribers {
		select {
		case <-h.subscribed:
		default:
			close(h.subscribed)
		}
	}
	sub.mu.Unlock()

	poll := time.NewTicker(sub.store.pollInterval)
	defer poll.Stop()
	var timer *time.Timer
	for {
		more, err := sub.fill()
		if err != nil && !sub.stopping() {
			sub.store.logger.Warn("subscription read failed", "stream", sub.stream, "subscription", sub.name, "error", err)
		}
		sub.dispatch()
		if sub.stopping() {
			sub.finalCheckpoint(conn)
			return false
		}
		if err := sub.writeCheckpoint(conn, false); err != nil {
			if sub.stopping() {
				sub.finalCheckpoint(conn)
				return false
			}
			return sub.checkpointFailed(err)
		}
		var timerC <-chan time.Time
		if d, ok := sub.checkpointDue(); ok {
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			timerC = timer.C
		}
		if more {
			select {
			case <-sub.stopCh:
			default:
				continue
			}
		}
		select {
		case <-sub.stopCh:
			sub.finalCheckpoint(conn)
			return false
		case <-sub.wakeCh:
		case <-wakeups:
		case <-timerC:
		case <-poll.C:
			// The lock lives as long as its session: check the session is still there.
			if err := conn.PingContext(sub.ctx); err != nil && !sub.stopping() {
				return true
			}
		}
	}
}

// finalCheckpoint writes what was acknowledged when the subscription stops.
func (sub *subscription) finalCheckpoint(conn *sql.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(sub.ctx), 5*time.Second)
	defer cancel()
	if err := sub.writeCheckpointCtx(ctx, conn, true); err != nil && !errors.Is(err, ErrSubscriptionNotFound) {
		sub.store.logger.Warn("subscription cannot write its last checkpoint", "stream", sub.stream, "subscription", sub.name, "error", err)
	}
}

func (sub *subscription) checkpointFailed(err error) bool {
	if errors.Is(err, ErrSubscriptionNotFound) {
		sub.stop(ErrSubscriptionNotFound)
		return false
	}
	if sub.stopping() {
		return false
	}
	sub.store.logger.Warn("subscription cannot write its checkpoint", "stream", sub.stream, "subscription", sub.name, "error", err)
	return true
}

// startPosition reads (or creates) the checkpoint, resolving StartCurrent.
func (sub *subscription) startPosition(conn *sql.Conn) (int64, error) {
	start := sub.opts.StartFrom
	if start == StartCurrent {
		var err error
		if start, err = sub.store.currentPosition(sub.ctx, sub.stream); err != nil {
			return 0, err
		}
	}
	if sub.opts.Transient {
		return start, nil
	}
	return sub.store.q.CreateSubscription(sub.ctx, sub.store.tmpl.Wrap(conn), db.CreateSubscriptionParams{
		StreamName: sub.stream, SubscriptionName: sub.name, Start: start,
	})
}

// currentPosition is the last event number of a stream, or of $all.
func (s *Store) currentPosition(ctx context.Context, stream string) (int64, error) {
	conn := s.tmpl.Wrap(s.db)
	if stream == AllStream {
		if err := s.settle(ctx); err != nil {
			return 0, err
		}
		c, err := s.q.GetAllCounter(ctx, conn)
		return c.LastPosition, err
	}
	st, err := s.q.GetStream(ctx, conn, stream)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return st.StreamVersion, err
}

// readAfter reads up to n events after pos, without settling $all first (the sequencer's
// notification is what woke the reader). A missing or soft-deleted stream reads as empty: its
// subscribers wait.
func (s *Store) readAfter(ctx context.Context, stream string, pos int64, n int) ([]RecordedEvent, error) {
	conn := s.tmpl.Wrap(s.db)
	if stream == AllStream {
		rows, err := s.q.ReadAllForward(ctx, conn, db.ReadAllForwardParams{Start: pos + 1, MaxCount: int64(n), EventTypes: []string{}})
		if err != nil {
			return nil, err
		}
		return s.allRows("subscription read", rows)
	}
	evs, err := s.streamRows("subscription read", stream, n, func(fn func(*db.ReadStreamForwardRow) error) error {
		return s.q.ReadStreamForwardEach(ctx, conn, db.ReadStreamForwardParams{
			StreamName: stream, Start: pos + 1, MaxCount: int64(n), MaxRows: int64(n) + 1,
		}, fn)
	})
	if errors.Is(err, ErrStreamNotFound) || errors.Is(err, ErrStreamDeleted) {
		return nil, nil
	}
	return evs, err
}

// fill reads events into the queue while there is room. It reports whether a full read suggests
// more events are waiting.
func (sub *subscription) fill() (more bool, err error) {
	sub.mu.Lock()
	queued, room, from := len(sub.queue), sub.opts.MaxQueueSize-len(sub.queue), sub.readPos
	sub.mu.Unlock()
	if room <= 0 || queued > sub.opts.MaxQueueSize/2 {
		return false, nil // enough queued: read again when it runs low
	}
	events, err := sub.store.readAfter(sub.ctx, sub.stream, from, room)
	if err != nil || len(events) == 0 {
		return false, err
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.active || sub.readPos != from {
		return false, nil // the lock was lost meanwhile
	}
	skipped := 0
	for _, ev := range events {
		sub.readPos = ev.EventNumber
		if sub.opts.Selector != nil && !sub.opts.Selector(ev) {
			skipped++
			continue
		}
		if sub.opts.Mapper != nil {
			ev = sub.opts.Mapper(ev)
		}
		sub.queue = append(sub.queue, ev)
	}
	sub.progress(skipped)
	return len(events) == room, nil
}

// dispatch hands queued events to subscribers with room: round-robin, or to the subscriber that
// owns the event's partition.
func (sub *subscription) dispatch() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.active || len(sub.subscribers) == 0 || len(sub.queue) == 0 {
		return
	}
	batches := map[*Subscription][]RecordedEvent{}
	room := func(h *Subscription) int {
		if len(batches[h]) == 0 && len(h.events) == cap(h.events) {
			// After a lock loss, the channel can hold more batches than events are in flight:
			// batches delivered before the loss, and redelivered copies of events the
			// subscriber received before it and acknowledged after.
			return 0
		}
		return sub.opts.BufferSize - len(h.inflight) - len(batches[h])
	}
	next := func() *Subscription {
		for i := range sub.subscribers {
			h := sub.subscribers[(sub.rr+i)%len(sub.subscribers)]
			if room(h) > 0 {
				sub.rr = (sub.rr + i + 1) % len(sub.subscribers)
				return h
			}
		}
		return nil
	}
	var blocked map[string]bool
	remaining := make([]RecordedEvent, 0, len(sub.queue))
	for i, ev := range sub.queue {
		var target *Subscription
		if sub.opts.PartitionBy == nil {
			if target = next(); target == nil {
				remaining = append(remaining, sub.queue[i:]...)
				break
			}
		} else {
			key := sub.opts.PartitionBy(ev)
			if p := sub.partitions[key]; p != nil {
				if blocked[key] || room(p.owner) <= 0 {
					if blocked == nil {
						blocked = map[string]bool{}
					}
					blocked[key] = true // later events of the key wait behind this one
					remaining = append(remaining, ev)
					continue
				}
				target = p.owner
				p.n++
			} else {
				if target = next(); target == nil {
					remaining = append(remaining, ev)
					continue
				}
				sub.partitions[key] = &partition{owner: target, n: 1}
			}
			sub.keys[ev.EventNumber] = key
		}
		batches[target] = append(batches[target], ev)
	}
	sub.queue = remaining
	for _, h := range sub.subscribers {
		b := batches[h]
		if len(b) == 0 {
			continue
		}
		h.inflight = append(h.inflight, b...)
		select {
		case h.events <- b:
		default: // cannot happen: room checked the channel has room for this batch
			sub.store.logger.Error("subscriber channel full", "stream", sub.stream, "subscription", sub.name)
		}
	}
}

// safePosition is the highest position below which every event is done with. Must hold mu.
func (sub *subscription) safePosition() int64 {
	low := sub.readPos
	if len(sub.queue) > 0 {
		low = min(low, sub.queue[0].EventNumber-1)
	}
	for _, h := range sub.subscribers {
		if len(h.inflight) > 0 {
			low = min(low, h.inflight[0].EventNumber-1)
		}
	}
	return low
}

// checkpointDue says when CheckpointAfter will require a write.
func (sub *subscription) checkpointDue() (time.Duration, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.opts.CheckpointAfter <= 0 || sub.unwritten == 0 {
		return 0, false
	}
	return max(time.Until(sub.unwrittenAt.Add(sub.opts.CheckpointAfter)), 0), true
}

func (sub *subscription) writeCheckpoint(conn *sql.Conn, force bool) error {
	return sub.writeCheckpointCtx(sub.ctx, conn, force)
}

// writeCheckpointCtx writes the safe position when the threshold, the interval or force says
// so. It writes through the lock's connection, so a process that lost the lock cannot write.
func (sub *subscription) writeCheckpointCtx(ctx context.Context, conn *sql.Conn, force bool) error {
	sub.mu.Lock()
	pos := sub.safePosition()
	due := sub.unwritten >= sub.opts.CheckpointThreshold ||
		(sub.opts.CheckpointAfter > 0 && sub.unwritten > 0 && time.Since(sub.unwrittenAt) >= sub.opts.CheckpointAfter)
	if !sub.active || pos <= sub.checkpoint || !(force || due) {
		sub.mu.Unlock()
		return nil
	}
	written := sub.unwritten
	sub.mu.Unlock()
	if !sub.opts.Transient {
		write := sub.store.q.AckCheckpoint // no flush wait, except for the last one
		if force {
			write = func(ctx context.Context, q db.DBTX, p db.AckCheckpointParams) (int64, error) {
				return sub.store.q.UpdateCheckpoint(ctx, q, db.UpdateCheckpointParams(p))
			}
		}
		n, err := write(ctx, sub.store.tmpl.Wrap(conn), db.AckCheckpointParams{
			LastSeen: pos, StreamName: sub.stream, SubscriptionName: sub.name,
		})
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrSubscriptionNotFound
		}
	}
	sub.mu.Lock()
	sub.checkpoint = max(sub.checkpoint, pos)
	sub.unwritten = max(sub.unwritten-written, 0)
	sub.mu.Unlock()
	return nil
}
