package es_test

// Races found by trying the subscriptions as a new user: stale acks across a re-created stream,
// deletes while another process waits for the lease, subscribing while the last subscriber
// leaves.

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// raceStores opens two Stores on one schema, standing for two processes.
func raceStores(t *testing.T) (a, b *es.Store) {
	t.Helper()
	schema := estest.NewSchema(t)
	return subscriberStore(t, estest.DB(t), schema, es.Config{}), subscriberStore(t, estest.DB(t), schema, es.Config{})
}

// An ack of the old stream's event, after the stream was hard deleted and re-created and the new
// events were handed over, acknowledges nothing of the new stream.
func TestSubscriptionStaleAckAcrossRecreation(t *testing.T) {
	store, ctx, is := setupSub(t, &es.Config{EnableHardDeletes: true})
	is.NoErr(store.AppendToStream(ctx, "acc-1", es.NoStream, events(5)))
	sub, err := store.SubscribeToStream(ctx, "acc-1", "p", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	var old []es.RecordedEvent
	for len(old) < 5 {
		old = append(old, next(t, sub.Events())...)
	}
	is.NoErr(store.DeleteStream(ctx, "acc-1", es.AnyVersion, es.HardDelete))
	is.NoErr(store.AppendToStream(ctx, "acc-1", es.NoStream, events(7)))
	fresh := next(t, sub.Events())
	is.Equal(fresh[0].EventNumber, int64(1))
	err = sub.Ack(old[len(old)-1])
	is.True(errors.Is(err, es.ErrUnexpectedAck)) // old event 5 is not new event 5
	cp, err := store.SubscriptionCheckpoint(ctx, "acc-1", "p")
	is.NoErr(err)
	is.Equal(cp, int64(0))
	is.NoErr(sub.Close())
	again, err := store.SubscribeToStream(ctx, "acc-1", "p", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	is.Equal(next(t, again.Events())[0].EventNumber, int64(1))
}

// DeleteSubscription while another process waits for the lease: the waiter never takes the
// deleted subscription over, and ends with ErrSubscriptionNotFound.
func TestSubscriptionDeleteWithWaiter(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	sA, sB := raceStores(t)
	is.NoErr(sA.AppendToStream(ctx, "e-1", es.NoStream, events(3)))
	for i := range 10 {
		name := fmt.Sprintf("d-%d", i)
		a, err := sA.SubscribeToAll(ctx, name, &es.SubscriptionOptions{StartFrom: 3})
		is.NoErr(err)
		subscribed(t, a)
		b, err := sB.SubscribeToAll(ctx, name, &es.SubscriptionOptions{RetryInterval: 10 * time.Millisecond})
		is.NoErr(err)
		is.NoErr(sA.DeleteSubscription(ctx, es.AllStream, name))
		<-a.Done()
		is.True(errors.Is(a.Err(), es.ErrSubscriptionNotFound))
		select {
		case <-b.Done():
		case <-time.After(wait):
			t.Fatal("the waiter of a deleted subscription never ended")
		}
		is.True(errors.Is(b.Err(), es.ErrSubscriptionNotFound))
		select {
		case <-b.Subscribed():
			t.Fatalf("round %d: the waiter took the lease of a subscription being deleted", i)
		default:
		}
	}
}

// A subscriber connecting while the last one leaves is refused or gets a working subscription:
// never one that ends at once without a reason.
func TestSubscriptionSubscribeRacesClose(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	for i := range 30 {
		name := fmt.Sprintf("race-%d", i)
		a, err := store.SubscribeToAll(ctx, name, &es.SubscriptionOptions{StartFrom: es.StartCurrent})
		is.NoErr(err)
		subscribed(t, a)
		var wg sync.WaitGroup
		var b *es.Subscriber
		var berr error
		wg.Go(func() { _ = a.Close() })
		wg.Go(func() { b, berr = store.SubscribeToAll(ctx, name, nil) })
		wg.Wait()
		if berr != nil {
			is.True(errors.Is(berr, es.ErrSubscriptionExists))
			continue
		}
		is.NoErr(store.AppendToStream(ctx, name, es.NoStream, events(1)))
		got := next(t, b.Events()) // it works: the new event comes
		is.Equal(got[len(got)-1].StreamID, name)
		is.NoErr(b.Close())
	}
}
