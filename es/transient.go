package es

import (
	"context"
	"sync"
	"time"
)

// TransientOptions configure a transient subscription. A nil *TransientOptions means defaults.
type TransientOptions struct {
	// Selector keeps the events it returns true for. Defaults to every event.
	Selector func(RecordedEvent) bool
	// Mapper transforms each event before delivery. Defaults to none.
	Mapper func(RecordedEvent) RecordedEvent
	// BatchSize is the most events in one batch. Defaults to 1000.
	BatchSize int
}

// TransientSubscription receives the events of a stream, or of $all, committed after it was
// created, in order and in batches. It keeps no checkpoint and takes no acknowledgements: a
// process that resubscribes starts from the then current position. A slow receiver is never
// skipped ahead: the subscription reads the next batch only once the last one was taken.
type TransientSubscription struct {
	store  *Store
	stream string
	opts   TransientOptions
	events chan []RecordedEvent
	wakeCh chan struct{}
	stopCh chan struct{}
	done   chan struct{}
	once   sync.Once

	mu  sync.Mutex
	err error
}

// Subscribe creates a transient subscription to a stream, or to $all with AllStream. ctx bounds
// its life; Close ends it sooner.
func (s *Store) Subscribe(ctx context.Context, stream string, opts *TransientOptions) (*TransientSubscription, error) {
	const op = "subscribe"
	if _, err := s.options(op, stream, nil); err != nil {
		return nil, err
	}
	if stream == "" {
		return nil, invalid(op, stream, "empty stream name")
	}
	var o TransientOptions
	if opts != nil {
		o = *opts
	}
	if o.BatchSize < 0 {
		return nil, invalid(op, stream, "batch size %d", o.BatchSize)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	pos, err := s.currentPosition(ctx, stream)
	if err != nil {
		return nil, mapDBError(op, stream, err)
	}
	t := &TransientSubscription{
		store: s, stream: stream, opts: o,
		events: make(chan []RecordedEvent),
		wakeCh: make(chan struct{}, 1),
		stopCh: make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.subsMu.Lock()
	if s.isClosed() {
		s.subsMu.Unlock()
		return nil, opError(op, stream, ErrClosed)
	}
	s.transients[t] = struct{}{}
	s.subsMu.Unlock()
	context.AfterFunc(ctx, func() { t.stop(ctx.Err()) })
	s.wg.Go(func() { t.run(pos) })
	return t, nil
}

// Events delivers batches of events; it is closed when the subscription ends (see Err).
func (t *TransientSubscription) Events() <-chan []RecordedEvent { return t.events }

// Err says why the subscription ended: nil after Close, ErrClosed when the store closed, or the
// context's error.
func (t *TransientSubscription) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Close ends the subscription. Safe to call more than once.
func (t *TransientSubscription) Close() error {
	t.stop(nil)
	<-t.done
	return nil
}

func (t *TransientSubscription) stop(err error) {
	t.once.Do(func() {
		t.mu.Lock()
		t.err = err
		t.mu.Unlock()
		close(t.stopCh)
	})
}

func (t *TransientSubscription) wake() {
	select {
	case t.wakeCh <- struct{}{}:
	default:
	}
}

func (t *TransientSubscription) run(pos int64) {
	defer close(t.done)
	defer close(t.events)
	defer func() {
		t.store.subsMu.Lock()
		delete(t.store.transients, t)
		t.store.subsMu.Unlock()
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-t.stopCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	var wakeups <-chan struct{}
	if w := t.store.waiter(ctx); w != nil {
		defer w.Close()
		wakeups = w.C
	}
	poll := time.NewTicker(t.store.pollInterval)
	defer poll.Stop()
	for {
		events, err := t.store.readAfter(ctx, t.stream, pos, t.opts.BatchSize)
		if err != nil && ctx.Err() == nil {
			t.store.logger.Warn("transient subscription read failed", "stream", t.stream, "error", err)
		}
		batch := make([]RecordedEvent, 0, len(events))
		for _, ev := range events {
			pos = ev.EventNumber
			if t.opts.Selector != nil && !t.opts.Selector(ev) {
				continue
			}
			if t.opts.Mapper != nil {
				ev = t.opts.Mapper(ev)
			}
			batch = append(batch, ev)
		}
		if len(batch) > 0 {
			select {
			case t.events <- batch:
			case <-t.stopCh:
				return
			}
		}
		if len(events) == t.opts.BatchSize {
			continue
		}
		select {
		case <-t.stopCh:
			return
		case <-t.wakeCh:
		case <-wakeups:
		case <-poll.C:
		}
	}
}
