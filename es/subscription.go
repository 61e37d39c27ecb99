package es

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Subscription errors.
var (
	// ErrSubscriptionExists: the subscription is already running in this process and does not
	// take more subscribers (ConcurrencyLimit 1).
	ErrSubscriptionExists = errors.New("subscription already exists")
	// ErrAlreadySubscribed: a subscriber with this SubscriberID is already connected.
	ErrAlreadySubscribed = errors.New("already subscribed")
	// ErrTooManySubscribers: the subscription already has ConcurrencyLimit subscribers.
	ErrTooManySubscribers = errors.New("too many subscribers")
	// ErrUnexpectedAck: the acknowledged event is not in flight to this subscriber.
	ErrUnexpectedAck = errors.New("unexpected ack")
	// ErrSubscriptionActive: the checkpoint cannot be changed while a subscriber runs the
	// subscription, in this process or another.
	ErrSubscriptionActive = errors.New("subscription is active")
	// ErrSubscriptionNotFound: no such persistent subscription.
	ErrSubscriptionNotFound = errors.New("subscription not found")
)

// Start positions for a new persistent subscription (SubscriptionOptions.StartFrom). Any
// positive number n also works: delivery starts after event number n.
const (
	// StartOrigin delivers every event of the stream. The default.
	StartOrigin int64 = 0
	// StartCurrent delivers only events appended after the subscription is created.
	StartCurrent int64 = -1
)

// SubscriptionOptions configure a persistent subscription. The options of its first subscriber
// apply; later subscribers to the same subscription share them. A nil *SubscriptionOptions means
// all defaults.
type SubscriptionOptions struct {
	// StartFrom is where a new subscription starts: StartOrigin, StartCurrent, or a position to
	// start after. Ignored when the subscription already exists: it resumes from its checkpoint.
	// Defaults to StartOrigin.
	StartFrom int64
	// Selector keeps the events it returns true for; the others are skipped (and count as
	// acknowledged). Defaults to every event.
	Selector func(RecordedEvent) bool
	// Mapper transforms each event before delivery. It must keep EventNumber, which acks use.
	// Defaults to none.
	Mapper func(RecordedEvent) RecordedEvent
	// BufferSize is how many delivered, unacknowledged events a subscriber may have; batches never
	// exceed it. Defaults to 1.
	BufferSize int
	// MaxQueueSize is how many events the subscription reads ahead of its subscribers; beyond it,
	// events are read from the database when there is room. Defaults to 1000.
	MaxQueueSize int
	// CheckpointThreshold is how many acknowledgements may pass before the checkpoint is written.
	// Defaults to 1: after every acknowledgement.
	CheckpointThreshold int
	// CheckpointAfter writes a pending checkpoint after this long even when the threshold is not
	// reached. Defaults to 0: only the threshold (and unsubscribing) writes it.
	CheckpointAfter time.Duration
	// ConcurrencyLimit is how many subscribers may share the subscription (competing consumers);
	// events go to them round-robin. Defaults to 1.
	ConcurrencyLimit int
	// PartitionBy keys events; the events of one key go to one subscriber at a time, in order.
	// Defaults to none.
	PartitionBy func(RecordedEvent) string
	// Transient keeps the checkpoint in memory only: the subscription starts from StartFrom every
	// time and leaves no row behind. Defaults to false.
	Transient bool
	// SubscriberID names this subscriber; connecting an ID already connected is
	// ErrAlreadySubscribed. Defaults to a random ID.
	SubscriberID string
	// RetryInterval is how often a subscription held by another process tries to take it over.
	// Defaults to 1s.
	RetryInterval time.Duration
}

func (o *SubscriptionOptions) normalize() (SubscriptionOptions, error) {
	var c SubscriptionOptions
	if o != nil {
		c = *o
	}
	switch {
	case c.StartFrom < StartCurrent:
		return c, fmt.Errorf("%w: StartFrom %d", ErrInvalidArgument, c.StartFrom)
	case c.BufferSize < 0, c.MaxQueueSize < 0, c.CheckpointThreshold < 0, c.ConcurrencyLimit < 0,
		c.CheckpointAfter < 0, c.RetryInterval < 0:
		return c, fmt.Errorf("%w: negative subscription option", ErrInvalidArgument)
	}
	if c.BufferSize == 0 {
		c.BufferSize = 1
	}
	if c.MaxQueueSize == 0 {
		c.MaxQueueSize = 1000
	}
	if c.CheckpointThreshold == 0 {
		c.CheckpointThreshold = 1
	}
	if c.ConcurrencyLimit == 0 {
		c.ConcurrencyLimit = 1
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.SubscriberID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.SubscriberID = hex.EncodeToString(b[:])
	}
	return c, nil
}

// Subscription is one subscriber's connection to a persistent subscription. Receive batches from
// Events, acknowledge every event once processed, and Close to unsubscribe.
type Subscription struct {
	sub        *subscription
	id         string
	events     chan []RecordedEvent
	subscribed chan struct{}
	done       chan struct{}

	// Guarded by sub.mu.
	inflight []RecordedEvent // delivered and not yet acknowledged, in delivery order
	closed   bool
	err      error
}

// Events delivers batches of events, in order. It is closed when the subscriber is closed, the
// subscription deleted, the store closed or the subscribe context done; Err says why.
func (s *Subscription) Events() <-chan []RecordedEvent { return s.events }

// Subscribed is closed once the subscription runs: this process holds it and delivery starts.
// While another process holds it, this one waits and takes over when it goes.
func (s *Subscription) Subscribed() <-chan struct{} { return s.subscribed }

// Done is closed when the subscriber stops.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// ID is the subscriber's ID.
func (s *Subscription) ID() string { return s.id }

// Err returns why the subscriber stopped: nil after Close, ErrSubscriptionNotFound after a
// delete, ErrClosed when the store closed, or the subscribe context's error.
func (s *Subscription) Err() error {
	s.sub.mu.Lock()
	defer s.sub.mu.Unlock()
	return s.err
}

// Ack acknowledges delivered events. Each should be in flight to this subscriber; the others
// (never delivered, already acknowledged, or delivered before the subscription lost its lock and
// since delivered again and acknowledged) are reported with ErrUnexpectedAck, while the events in
// flight are acknowledged all the same.
func (s *Subscription) Ack(events ...RecordedEvent) error {
	positions := make([]int64, len(events))
	for i, ev := range events {
		positions[i] = ev.EventNumber
	}
	return s.sub.ack(s, positions, false)
}

// AckNumber acknowledges every event in flight to this subscriber up to and including event
// number n, which must be in flight (ErrUnexpectedAck otherwise).
func (s *Subscription) AckNumber(n int64) error {
	return s.sub.ack(s, []int64{n}, true)
}

// Close unsubscribes. Events in flight and unacknowledged go to the remaining subscribers, or are
// delivered again when the subscription next runs. The checkpoint of acknowledged events is
// written. Safe to call more than once.
func (s *Subscription) Close() error {
	if s.sub.remove(s, nil) {
		<-s.sub.finished // the last one out: wait until the lock and checkpoint are released
	}
	<-s.done
	return nil
}

// SubscribeToStream subscribes to a persistent subscription of a stream, creating the
// subscription if it does not exist. Delivery is at least once, in order (per partition with
// PartitionBy), from the subscription's checkpoint, which only moves past events once they and
// every event before them are acknowledged. One process at a time runs a subscription; in the
// others, Subscribed stays open until they take over. ctx bounds the subscriber's life.
//
// Errors: ErrSubscriptionExists, ErrAlreadySubscribed, ErrTooManySubscribers, ErrInvalidArgument.
func (s *Store) SubscribeToStream(ctx context.Context, stream, name string, opts *SubscriptionOptions) (*Subscription, error) {
	const op = "subscribe to stream"
	if _, err := s.options(op, stream, nil); err != nil {
		return nil, err
	}
	switch {
	case stream == "":
		return nil, invalid(op, stream, "empty stream name")
	case name == "":
		return nil, invalid(op, stream, "empty subscription name")
	}
	o, err := opts.normalize()
	if err != nil {
		return nil, opError(op, stream, err)
	}
	return s.subscribe(ctx, stream, name, o)
}

// SubscribeToAll subscribes to a persistent subscription of $all; see SubscribeToStream.
func (s *Store) SubscribeToAll(ctx context.Context, name string, opts *SubscriptionOptions) (*Subscription, error) {
	return s.SubscribeToStream(ctx, AllStream, name, opts)
}

type subKey struct{ stream, name string }

func (s *Store) subscribe(ctx context.Context, stream, name string, o SubscriptionOptions) (*Subscription, error) {
	const op = "subscribe"
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if s.isClosed() {
		return nil, opError(op, stream, ErrClosed)
	}
	key := subKey{stream, name}
	sub := s.subs[key]
	if sub == nil || sub.stopping() {
		prev := sub
		sub = newSubscription(s, stream, name, o)
		sub.prev = prev // its lock must go before this one takes it
		handle, err := sub.add(o)
		if err != nil {
			return nil, opError(op, stream, fmt.Errorf("%s: %w", name, err))
		}
		s.subs[key] = sub
		s.wg.Go(sub.run)
		context.AfterFunc(ctx, func() { sub.remove(handle, ctx.Err()) })
		return handle, nil
	}
	handle, err := sub.add(o)
	if err != nil {
		return nil, opError(op, stream, fmt.Errorf("%s: %w", name, err))
	}
	context.AfterFunc(ctx, func() { sub.remove(handle, ctx.Err()) })
	return handle, nil
}

// forget drops a finished subscription from the registry.
func (s *Store) forget(sub *subscription) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	key := subKey{sub.stream, sub.name}
	if s.subs[key] == sub {
		delete(s.subs, key)
	}
}

// wakeSubscriptions prompts every running subscription of this store to read.
func (s *Store) wakeSubscriptions() {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for _, sub := range s.subs {
		sub.wake()
	}
	for t := range s.transients {
		t.wake()
	}
}

// stopSubscriptions ends every subscription of this store, for Close.
func (s *Store) stopSubscriptions() {
	s.subsMu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	transients := make([]*TransientSubscription, 0, len(s.transients))
	for t := range s.transients {
		transients = append(transients, t)
	}
	s.subsMu.Unlock()
	for _, sub := range subs {
		sub.stop(ErrClosed)
	}
	for _, t := range transients {
		t.stop(ErrClosed)
	}
}
