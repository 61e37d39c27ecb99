package es

import (
	"errors"
	"fmt"
)

// errSubscriptionStopping: the subscription's last subscriber left; it stops, and a new
// subscriber needs a new one.
var errSubscriptionStopping = errors.New("subscription stopping")

// Subscriber is one subscriber of a persistent subscription: receive batches from Events,
// acknowledge them once processed, and Close to unsubscribe.
type Subscriber struct {
	*member
	sub        *subscription
	id         string
	subscribed chan struct{}
	done       chan struct{}

	// Guarded by sub.mu.
	closed bool
	err    error
}

// Events delivers batches of events, in order (per partition with PartitionBy). It is closed
// when the subscriber is closed, the subscription deleted, the store closed or the subscribe
// context done; Err says why.
func (h *Subscriber) Events() <-chan []RecordedEvent { return h.events }

// Subscribed is closed once this process holds the subscription's lease and delivery starts.
// While another process holds it, this one waits and takes over when it goes.
func (h *Subscriber) Subscribed() <-chan struct{} { return h.subscribed }

// Done is closed when the subscriber stops.
func (h *Subscriber) Done() <-chan struct{} { return h.done }

// ID is the subscriber's ID (SubscriptionOptions.SubscriberID).
func (h *Subscriber) ID() string { return h.id }

// Err returns why the subscriber stopped: nil while it runs and after Close,
// ErrSubscriptionNotFound after a delete, ErrClosed when the store closed, or the subscribe
// context's error (its cause).
func (h *Subscriber) Err() error {
	h.sub.mu.Lock()
	defer h.sub.mu.Unlock()
	return h.err
}

// Ack acknowledges delivered events. As in the seed, acknowledging an event also acknowledges
// every event delivered to this subscriber before it, so acking the last event of a batch acks
// the batch. An event not in flight to this subscriber (never delivered, already acknowledged,
// or delivered before the subscription lost its lease and delivered again since) is reported
// with ErrUnexpectedAck; the other events are acknowledged all the same.
func (h *Subscriber) Ack(events ...RecordedEvent) error {
	keys := make([]ackKey, len(events))
	for i, ev := range events {
		keys[i] = ackKey{ev.EventNumber, ev.EventID}
	}
	return h.sub.ack(h, keys)
}

// AckNumber acknowledges every event in flight to this subscriber up to and including event
// number n, which must be in flight (ErrUnexpectedAck otherwise). Unlike Ack, it cannot tell an
// event of a hard-deleted stream from the re-created stream's event of the same number: prefer
// Ack on stream subscriptions whose streams may be re-created.
func (h *Subscriber) AckNumber(n int64) error {
	return h.sub.ack(h, []ackKey{{number: n}})
}

// Close unsubscribes. Events in flight and unacknowledged go to the remaining subscribers, or are
// delivered again when the subscription next runs. The last subscriber out writes the checkpoint
// of what was acknowledged and releases the lease, so a waiting process takes over within its
// RetryInterval; Close waits for that, at most a few seconds when the database is unreachable.
// Safe to call more than once.
func (h *Subscriber) Close() error {
	if h.sub.remove(h, nil) {
		<-h.sub.done // the last one out: wait until the lease and checkpoint are released
	}
	<-h.done
	return nil
}

func (sub *subscription) ack(h *Subscriber, keys []ackKey) error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	// Also after a failed ack: its caller took a batch from its channel, which makes room.
	defer sub.wake()
	if h.closed {
		return fmt.Errorf("eventstore: ack %s/%s: %w: subscriber closed", sub.stream, sub.name, ErrUnexpectedAck)
	}
	acked, missing := sub.d.ack(h.member, keys)
	sub.cp.progress(acked, sub.now())
	if missing >= 0 {
		return fmt.Errorf("eventstore: ack %s/%s: %w: event %d is not in flight", sub.stream, sub.name, ErrUnexpectedAck, missing)
	}
	return nil
}

// add connects a subscriber, within the subscription's limits.
func (sub *subscription) add(id string) (*Subscriber, error) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closing {
		return nil, errSubscriptionStopping
	}
	for _, h := range sub.subscribers {
		if h.id == id {
			return nil, ErrAlreadySubscribed
		}
	}
	if len(sub.subscribers) >= sub.opts.ConcurrencyLimit {
		if sub.opts.ConcurrencyLimit == 1 {
			return nil, ErrSubscriptionExists
		}
		return nil, ErrTooManySubscribers
	}
	h := &Subscriber{
		member:     newMember(sub.opts.BufferSize),
		sub:        sub,
		id:         id,
		subscribed: make(chan struct{}),
		done:       make(chan struct{}),
	}
	if sub.active {
		close(h.subscribed)
	}
	sub.subscribers = append(sub.subscribers, h)
	sub.d.add(h.member)
	sub.wake()
	return h, nil
}

// remove disconnects a subscriber; its unacknowledged events go back to the queue. The last one
// out stops the subscription, and remove reports it.
func (sub *subscription) remove(h *Subscriber, err error) bool {
	sub.mu.Lock()
	last := sub.detach(h, err)
	if last {
		sub.closing = true // a subscriber connecting now gets a new subscription
	}
	sub.mu.Unlock()
	if last {
		sub.stop(nil)
	}
	sub.wake()
	return last
}

// detach must hold mu. It reports whether no subscriber is left.
func (sub *subscription) detach(h *Subscriber, err error) bool {
	if h.closed {
		return len(sub.subscribers) == 0
	}
	if errors.Is(err, errUnsubscribed) {
		err = nil
	}
	h.closed, h.err = true, err
	sub.d.remove(h.member)
	for i, x := range sub.subscribers {
		if x == h {
			sub.subscribers = append(sub.subscribers[:i], sub.subscribers[i+1:]...)
			break
		}
	}
	close(h.events)
	close(h.done)
	return len(sub.subscribers) == 0
}

func (sub *subscription) empty() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return len(sub.subscribers) == 0
}
