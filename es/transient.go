package es

import (
	"context"
	"sync"
	"time"
)

// DefaultTransientBatchSize is TransientOptions.BatchSize's default.
const DefaultTransientBatchSize = 1000

// TransientOptions configure a transient subscription. A nil *TransientOptions means defaults.
type TransientOptions struct {
	// Selector keeps the events it returns true for. Defaults to every event.
	Selector func(RecordedEvent) bool
	// Mapper transforms each event before delivery. Defaults to none.
	Mapper func(RecordedEvent) RecordedEvent
	// BatchSize is the most events in one batch; any positive int works (reads take at most
	// 1,000 events a query). Defaults to DefaultTransientBatchSize (1000).
	BatchSize int
	// Categories, StreamPrefixes and EventTypes filter a subscription to $all (or to a
	// CategoryStream) in SQL, as SubscriptionOptions' fields do. Defaults to none.
	Categories     []string
	StreamPrefixes []string
	EventTypes     []string
}

// TransientSubscription receives the events of a stream, or of $all, committed after Subscribe
// returned, in order and in batches. It keeps no checkpoint and takes no acknowledgements: a
// process that resubscribes starts from the then current position. A slow receiver is never
// skipped ahead: the subscription reads the next batch only once the last one was taken. A
// hard-deleted and re-created stream is a new stream: its events are delivered from 1 on.
type TransientSubscription struct {
	store  *Store
	stream string
	all    bool // reads $all (through f when it is set), not a stream
	f      filter
	opts   TransientOptions
	events chan []RecordedEvent
	wakeCh chan struct{}
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu  sync.Mutex
	pos int64 // the last position read
	pk  int64 // the stream's incarnation (0: not seen yet)
	gen int64 // the deletes generation the last batch was read under
}

// Subscribe creates a transient subscription to a stream, or to $all with AllStream, starting
// after the stream's current position, read before Subscribe returns. ctx bounds its life;
// Close ends it sooner.
//
// Errors: ErrInvalidArgument, ErrClosed, or the database's error reading the position.
func (s *Store) Subscribe(ctx context.Context, stream string, opts *TransientOptions) (*TransientSubscription, error) {
	const op = "subscribe"
	if _, err := s.options(op, stream, nil); err != nil {
		return nil, err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return nil, err
	}
	var o TransientOptions
	if opts != nil {
		o = *opts
	}
	if o.BatchSize < 0 {
		return nil, invalid(op, stream, "BatchSize %d: must be positive (0: the default)", o.BatchSize)
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultTransientBatchSize
	}
	all, f, err := subscriptionFilter(stream, o.Categories, o.StreamPrefixes, o.EventTypes)
	if err != nil {
		return nil, opError(op, stream, err)
	}
	read := stream
	if all {
		read = AllStream
	}
	pos, pk, err := s.position(ctx, read)
	if err != nil {
		return nil, mapDBError(op, stream, err)
	}
	tctx, cancel := context.WithCancelCause(context.Background())
	t := &TransientSubscription{
		store: s, stream: stream, opts: o, all: all, f: f,
		events: make(chan []RecordedEvent),
		wakeCh: make(chan struct{}, 1),
		ctx:    tctx,
		cancel: cancel,
		done:   make(chan struct{}),
		pos:    pos,
		pk:     pk,
		gen:    s.poller.deleteGen.Load(),
	}
	s.subsMu.Lock()
	if s.isClosed() {
		s.subsMu.Unlock()
		cancel(ErrClosed)
		return nil, opError(op, stream, ErrClosed)
	}
	s.transients[t] = struct{}{}
	s.wg.Go(t.run)
	s.subsMu.Unlock()
	context.AfterFunc(ctx, func() { t.stop(context.Cause(ctx)) })
	return t, nil
}

// Events delivers batches of events; it is closed when the subscription ends (see Err).
func (t *TransientSubscription) Events() <-chan []RecordedEvent { return t.events }

// Err says why the subscription ended: nil while it runs and after Close, ErrClosed when the
// store closed, or the context's error (its cause).
func (t *TransientSubscription) Err() error {
	select {
	case <-t.done:
	default:
		return nil
	}
	if err := context.Cause(t.ctx); err != errUnsubscribed {
		return err
	}
	return nil
}

// Close ends the subscription. Safe to call more than once.
func (t *TransientSubscription) Close() error {
	t.stop(nil)
	<-t.done
	return nil
}

func (t *TransientSubscription) stop(err error) {
	if err == nil {
		err = errUnsubscribed
	}
	t.cancel(err)
}

func (t *TransientSubscription) wake() {
	select {
	case t.wakeCh <- struct{}{}:
	default:
	}
}

func (t *TransientSubscription) watchedStream() string { return source{t.stream, t.all}.watched() }

func (t *TransientSubscription) observe(h *heads) {
	t.mu.Lock()
	wake := source{t.stream, t.all}.hasNews(h, t.pos, t.pk, t.gen, t.store.poller.deleteGen.Load())
	t.mu.Unlock()
	if wake {
		t.wake()
	}
}

func (t *TransientSubscription) run() {
	defer close(t.done)
	defer close(t.events)
	defer func() {
		t.store.subsMu.Lock()
		delete(t.store.transients, t)
		t.store.subsMu.Unlock()
	}()
	t.store.poller.register(t)
	defer t.store.poller.unregister(t)
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		batch, from, more, err := t.read()
		if err != nil && t.ctx.Err() == nil {
			t.store.logger.Warn("transient subscription read failed; retrying", "stream", t.stream, "error", err)
		}
		for len(batch) > 0 {
			select {
			case t.events <- batch:
				batch = nil
			case <-t.ctx.Done():
				return
			case <-t.wakeCh:
				// A delete while the batch waits for the receiver: read it again. Any other
				// wake-up means new events: read after this batch is taken.
				more = true
				t.mu.Lock()
				if t.gen != t.store.poller.deleteGen.Load() {
					t.pos, batch = from, nil
				}
				t.mu.Unlock()
			}
		}
		if more {
			continue
		}
		var retryC <-chan time.Time
		if err != nil {
			retry.Reset(t.store.pollInterval)
			retryC = retry.C
		}
		select {
		case <-t.ctx.Done():
			return
		case <-t.wakeCh:
		case <-retryC:
		}
	}
}

// read reads the next batch after the last position, and reports whether more may wait.
func (t *TransientSubscription) read() (batch []RecordedEvent, from int64, more bool, err error) {
	t.mu.Lock()
	pos, pk := t.pos, t.pk
	t.gen = t.store.poller.deleteGen.Load()
	t.mu.Unlock()
	events, readTo, readPK, more, err := t.store.readSource(t.ctx, t.stream, t.all, t.f, pos, t.opts.BatchSize)
	if err != nil {
		return nil, pos, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.all && readPK != 0 && readPK != pk {
		t.pk = readPK
		if pk != 0 {
			t.pos = 0 // hard deleted and re-created: a new stream, from its first event
			return nil, pos, true, nil
		}
	}
	t.pos = max(t.pos, readTo)
	batch = make([]RecordedEvent, 0, len(events))
	for _, ev := range events {
		if t.opts.Selector != nil && !t.opts.Selector(ev) {
			continue
		}
		if t.opts.Mapper != nil {
			ev = t.opts.Mapper(ev)
		}
		batch = append(batch, ev)
	}
	if t.store.poller.deleteGen.Load() != t.gen {
		// A delete committed during the read: read the range again rather than hand out
		// events that may be gone.
		t.pos = pos
		return nil, pos, true, nil
	}
	return batch, pos, more, nil
}
