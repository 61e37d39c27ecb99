package es

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-eventstore/eventstore/db"
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
	// ErrSubscriptionActive: the checkpoint cannot be changed while a process holds the
	// subscription's lease.
	ErrSubscriptionActive = errors.New("subscription is active")
	// ErrSubscriptionNotFound: no such persistent subscription (or it was deleted).
	ErrSubscriptionNotFound = errors.New("subscription not found")
)

// Start positions for a new persistent subscription (SubscriptionOptions.StartFrom). Any
// positive number n also works: delivery starts after event number n.
const (
	// StartOrigin delivers every event of the stream. The default.
	StartOrigin int64 = 0
	// StartCurrent delivers only events appended after Subscribe returned: the position is
	// read before it returns.
	StartCurrent int64 = -1
)

// Defaults of SubscriptionOptions.
const (
	DefaultBufferSize          = 1
	DefaultMaxQueueSize        = 1000
	DefaultCheckpointThreshold = 1
	DefaultConcurrencyLimit    = 1
	DefaultRetryInterval       = time.Second
	// MaxSubscriptionInterval bounds CheckpointAfter and RetryInterval.
	MaxSubscriptionInterval = 24 * time.Hour
	// MinSubscriptionInterval is the least RetryInterval, Config.LeaseRenewInterval and
	// Config.SubscriptionPollInterval: each is a query, and shorter ones only load the database.
	MinSubscriptionInterval = 10 * time.Millisecond
)

// categoryPrefix starts the stream key of category subscriptions; appends to such names are
// refused, so the key never names a real stream.
const categoryPrefix = "$ce-"

// CategoryStream is the stream key that subscribes to a category (see Category): the events of
// every stream of the category, in $all order. Pass it to SubscribeToStream or Subscribe, and to
// the subscription admin calls (SubscriptionCheckpoint, DeleteSubscription, ...); SubscribeToCategory
// is a shorthand. Stream names starting with "$ce-" cannot be appended to.
func CategoryStream(category string) string { return categoryPrefix + category }

// SubscriptionOptions configure a persistent subscription. The options of its first subscriber
// in a process apply; later subscribers to the same subscription share them. A nil
// *SubscriptionOptions means all defaults. Every count may be as large as math.MaxInt.
type SubscriptionOptions struct {
	// StartFrom is where a new subscription starts: StartOrigin, StartCurrent, or a position to
	// start after. It is resolved before Subscribe returns. Ignored when the subscription
	// already exists: it resumes from its checkpoint. Defaults to StartOrigin.
	StartFrom int64
	// Selector keeps the events it returns true for; the others are skipped (and count as
	// acknowledged). Defaults to every event.
	Selector func(RecordedEvent) bool
	// Mapper transforms each event before delivery. It must keep EventNumber and EventID, which
	// acks use.
	// Defaults to none.
	Mapper func(RecordedEvent) RecordedEvent
	// BufferSize is how many delivered, unacknowledged events a subscriber may have; batches never
	// exceed it. Defaults to DefaultBufferSize (1).
	BufferSize int
	// MaxQueueSize is how many events the subscription reads ahead of its subscribers; it reads
	// again (at most 1,000 events a query) when half of them are delivered. Defaults to
	// DefaultMaxQueueSize (1000).
	MaxQueueSize int
	// CheckpointThreshold is how many acknowledgements may pass before the checkpoint is written.
	// Defaults to DefaultCheckpointThreshold (1): after every acknowledgement.
	CheckpointThreshold int
	// CheckpointAfter writes a pending checkpoint after this long even when the threshold is not
	// reached; at most MaxSubscriptionInterval. Defaults to 0: only the threshold (and
	// unsubscribing) writes it.
	CheckpointAfter time.Duration
	// ConcurrencyLimit is how many subscribers of this process may share the subscription
	// (competing consumers); events go to them round-robin. Defaults to 1.
	ConcurrencyLimit int
	// PartitionBy keys events; the events of one key go to one subscriber at a time, in order.
	// Defaults to none.
	PartitionBy func(RecordedEvent) string
	// Transient keeps the checkpoint in memory only: the subscription starts from StartFrom every
	// time, takes no lease and leaves no row behind, so every process that subscribes runs its
	// own. Defaults to false.
	Transient bool
	// SubscriberID names this subscriber; connecting an ID already connected is
	// ErrAlreadySubscribed. At most MaxSubscriptionNameLen bytes. Defaults to a random ID.
	SubscriberID string
	// Categories, StreamPrefixes and EventTypes filter a subscription of $all (or of a category)
	// in SQL, through the indexes of $all, combined as in WithCategories, WithStreamPrefixes
	// and WithEventTypes. Unlike Selector, events filtered out are never read, and the
	// checkpoint moves past them, so a sparse filter never rescans after a restart. Defaults to
	// none (every event).
	Categories     []string
	StreamPrefixes []string
	EventTypes     []string
	// RetryInterval is how often a process waiting for the subscription's lease, held by another
	// process, tries to take it: a holder that stops cleanly is replaced within it, one that dies
	// within Config.LeaseDuration plus it. Between MinSubscriptionInterval and
	// MaxSubscriptionInterval. Defaults to DefaultRetryInterval (1s).
	RetryInterval time.Duration

	// forwardOnly is set by Project: every checkpoint write is forward-only (greatest of the
	// stored and the new position), since handlers commit checkpoints with their effects.
	forwardOnly bool
	// segment, with segments > 1, is the segment of a segmented projection this subscription
	// runs, from its row segmentStart (created by the segment group).
	segment, segments int
	segmentStart      subscriptionStart
	// segmentByStream: the segment's events are chosen in SQL by stream id (the default
	// partition key), not by a Selector.
	segmentByStream bool
}

func (o *SubscriptionOptions) withDefaults() (SubscriptionOptions, error) {
	var c SubscriptionOptions
	if o != nil {
		c = *o
	}
	switch {
	case c.StartFrom < StartCurrent:
		return c, fmt.Errorf("%w: StartFrom %d: use StartOrigin, StartCurrent or a position >= 1", ErrInvalidArgument, c.StartFrom)
	case c.BufferSize < 0, c.MaxQueueSize < 0, c.CheckpointThreshold < 0, c.ConcurrencyLimit < 0,
		c.CheckpointAfter < 0, c.RetryInterval < 0:
		return c, fmt.Errorf("%w: negative subscription option (BufferSize %d, MaxQueueSize %d, CheckpointThreshold %d, ConcurrencyLimit %d, CheckpointAfter %s, RetryInterval %s)",
			ErrInvalidArgument, c.BufferSize, c.MaxQueueSize, c.CheckpointThreshold, c.ConcurrencyLimit, c.CheckpointAfter, c.RetryInterval)
	case c.CheckpointAfter > MaxSubscriptionInterval, c.RetryInterval > MaxSubscriptionInterval:
		return c, fmt.Errorf("%w: CheckpointAfter %s and RetryInterval %s must be at most %s",
			ErrInvalidArgument, c.CheckpointAfter, c.RetryInterval, MaxSubscriptionInterval)
	case c.RetryInterval != 0 && c.RetryInterval < MinSubscriptionInterval:
		return c, fmt.Errorf("%w: RetryInterval %s must be at least %s (each try is a query)",
			ErrInvalidArgument, c.RetryInterval, MinSubscriptionInterval)
	}
	if c.SubscriberID != "" {
		if err := checkText("SubscriberID", c.SubscriberID, MaxSubscriptionNameLen); err != nil {
			return c, err
		}
	}
	if c.BufferSize == 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.MaxQueueSize == 0 {
		c.MaxQueueSize = DefaultMaxQueueSize
	}
	if c.CheckpointThreshold == 0 {
		c.CheckpointThreshold = DefaultCheckpointThreshold
	}
	if c.ConcurrencyLimit == 0 {
		c.ConcurrencyLimit = DefaultConcurrencyLimit
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.SubscriberID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		c.SubscriberID = hex.EncodeToString(b[:])
	}
	return c, nil
}

// checkSubscriptionStream checks the stream argument of a subscription: a stream, AllStream,
// or CategoryStream(category).
func checkSubscriptionStream(op, stream string) error {
	if err := checkStreamName(op, stream); err != nil {
		return err
	}
	if cat, ok := strings.CutPrefix(stream, categoryPrefix); ok {
		return checkCategory(op, cat)
	}
	return nil
}

// subscriptionFilter is what a subscription key and its options read: a stream (all false), or
// $all with a filter (a category's key adds the category).
func subscriptionFilter(stream string, categories, prefixes, types []string) (all bool, f filter, err error) {
	f = filter{categories: slices.Clone(categories), prefixes: slices.Clone(prefixes), eventTypes: slices.Clone(types)}
	cat, isCategory := strings.CutPrefix(stream, categoryPrefix)
	switch {
	case isCategory:
		f.categories = append(f.categories[:0:0], cat)
		if len(categories) > 0 {
			return false, f, fmt.Errorf("%w: a category subscription takes no Categories filter", ErrInvalidArgument)
		}
	case stream != AllStream && !f.isZero():
		return false, f, fmt.Errorf("%w: Categories, StreamPrefixes and EventTypes filter $all and category subscriptions only", ErrInvalidArgument)
	case stream != AllStream:
		return false, f, nil
	}
	return true, f, f.check()
}

// SubscribeToStream subscribes to a persistent subscription of a stream, creating the
// subscription (with its checkpoint at StartFrom, resolved now) if it does not exist. Delivery is
// at least once, in order (per partition with PartitionBy), from the subscription's checkpoint,
// which only moves past events once they and every event before them are acknowledged.
//
// One process at a time delivers a subscription: the one holding its lease (Config.LeaseDuration).
// Subscribed is closed once this process holds it; in the others it stays open until they take
// over. No connection is held between queries, so any number of subscriptions share the pool.
// ctx bounds the subscriber's life.
//
// A hard-deleted and re-created stream is a new stream to its subscribers: they receive its
// events from 1 on, and the checkpoint follows the new stream.
//
// Errors: ErrSubscriptionExists, ErrAlreadySubscribed, ErrTooManySubscribers, ErrInvalidArgument,
// ErrClosed, or the database's error creating the subscription.
func (s *Store) SubscribeToStream(ctx context.Context, stream, name string, opts *SubscriptionOptions) (*Subscriber, error) {
	const op = "subscribe to stream"
	if _, err := s.options(op, stream, nil); err != nil {
		return nil, err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return nil, err
	}
	if err := checkSubscriptionName(op, stream, name); err != nil {
		return nil, err
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, opError(op, stream, err)
	}
	if _, _, err := subscriptionFilter(stream, o.Categories, o.StreamPrefixes, o.EventTypes); err != nil {
		return nil, opError(op, stream, err)
	}
	return s.subscribe(ctx, stream, name, o)
}

// SubscribeToCategory subscribes to a persistent subscription of a category: the events of every
// stream named category-..., in $all order (EventNumber is the $all position). It is
// SubscribeToStream with CategoryStream(category).
func (s *Store) SubscribeToCategory(ctx context.Context, category, name string, opts *SubscriptionOptions) (*Subscriber, error) {
	return s.SubscribeToStream(ctx, CategoryStream(category), name, opts)
}

// SubscribeToAll subscribes to a persistent subscription of $all; see SubscribeToStream.
func (s *Store) SubscribeToAll(ctx context.Context, name string, opts *SubscriptionOptions) (*Subscriber, error) {
	return s.SubscribeToStream(ctx, AllStream, name, opts)
}

// subKey names a running subscription in a Store's registry: a segment of a segmented
// projection runs as a subscription of its own.
type subKey struct {
	stream, name string
	segment      int
}

func (s *Store) subscribe(ctx context.Context, stream, name string, o SubscriptionOptions) (*Subscriber, error) {
	const op = "subscribe"
	key := subKey{stream, name, o.segment}
	var start *subscriptionStart
	for {
		s.subsMu.Lock()
		sub := s.subs[key]
		if sub == nil || sub.stopping() {
			if start == nil {
				// The row (and so the start position) exists before Subscribe returns; it is
				// created outside the registry's lock, then the registry is looked at again.
				s.subsMu.Unlock()
				st, err := s.createSubscription(ctx, stream, name, o)
				if err != nil {
					return nil, mapDBError(op, stream, err)
				}
				start = &st
				continue
			}
			if s.isClosed() {
				s.subsMu.Unlock()
				return nil, opError(op, stream, ErrClosed)
			}
			next := newSubscription(s, stream, name, o, *start)
			next.prev = sub // its lease must be released before this one runs
			s.subs[key] = next
			s.wg.Go(next.run)
			sub = next
		}
		h, err := sub.add(o.SubscriberID)
		if errors.Is(err, errSubscriptionStopping) {
			sub.stop(nil) // already on its way; make sure the registry sees it stopping
			s.subsMu.Unlock()
			continue
		}
		s.subsMu.Unlock()
		if err != nil {
			return nil, opError(op, stream, fmt.Errorf("%s: %w", name, err))
		}
		context.AfterFunc(ctx, func() { sub.remove(h, context.Cause(ctx)) })
		return h, nil
	}
}

// subscriptionStart is where a subscription starts: its row and checkpoint (or, Transient, the
// resolved start in memory).
type subscriptionStart struct {
	id         int64
	checkpoint int64
	streamPK   int64
}

// createSubscription resolves StartFrom and creates the subscription's row unless it exists.
func (s *Store) createSubscription(ctx context.Context, stream, name string, o SubscriptionOptions) (subscriptionStart, error) {
	if o.segments > 1 {
		return o.segmentStart, nil // the group created every segment's row
	}
	start, pk, err := s.resolveStart(ctx, stream, o)
	if err != nil {
		return subscriptionStart{}, err
	}
	if o.Transient {
		return subscriptionStart{checkpoint: start, streamPK: pk}, nil
	}
	r, err := s.q.CreateSubscription(ctx, s.tmpl.Wrap(s.db), db.CreateSubscriptionParams{
		StreamName: stream, SubscriptionName: name, Start: start, StreamPk: nullPK(pk),
	})
	if err == nil && r.Segments != 1 {
		err = segmentCountError(name, int(r.Segments), 1)
	}
	return subscriptionStart{id: r.ID, checkpoint: r.LastSeen, streamPK: pk}, err
}

// resolveStart returns where a new subscription starts (StartCurrent read now) and, for a
// stream subscription, the stream's incarnation (0 for $all, or a stream not created yet).
func (s *Store) resolveStart(ctx context.Context, stream string, o SubscriptionOptions) (start, pk int64, err error) {
	start = o.StartFrom
	all, _, _ := subscriptionFilter(stream, o.Categories, o.StreamPrefixes, o.EventTypes)
	if start != StartCurrent && all {
		return start, 0, nil
	}
	read := stream
	if all {
		read = AllStream
	}
	pos, pk, err := s.position(ctx, read)
	if err != nil {
		return 0, 0, err
	}
	if start == StartCurrent {
		start = pos
	}
	return start, pk, nil
}

// forget drops a finished subscription from the registry.
func (s *Store) forget(sub *subscription) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	key := subKey{sub.stream, sub.name, sub.opts.segment}
	if s.subs[key] == sub {
		delete(s.subs, key)
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
