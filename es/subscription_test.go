package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// wait bounds how long a test waits for something that must happen; it is a failure guard, not a
// timing assertion.
const wait = 30 * time.Second

func setupSub(t *testing.T, cfg *es.Config) (*es.Store, context.Context, *is.I) {
	t.Parallel()
	return estest.NewStore(t, cfg), t.Context(), is.New(t)
}

// next receives one batch, failing the test if none comes.
func next(t *testing.T, events <-chan []es.RecordedEvent) []es.RecordedEvent {
	t.Helper()
	select {
	case b, ok := <-events:
		if !ok {
			t.Fatal("events channel closed")
		}
		return b
	case <-time.After(wait):
		t.Fatal("no events delivered")
		return nil
	}
}

// receive receives and acknowledges batches until n events arrived.
func receive(t *testing.T, sub *es.Subscriber, n int) []es.RecordedEvent {
	t.Helper()
	var got []es.RecordedEvent
	for len(got) < n {
		b := next(t, sub.Events())
		got = append(got, b...)
		if err := sub.Ack(b...); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func subscribed(t *testing.T, sub *es.Subscriber) {
	t.Helper()
	select {
	case <-sub.Subscribed():
	case <-time.After(wait):
		t.Fatal("not subscribed")
	}
}

func numbers(evs []es.RecordedEvent) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.EventNumber
	}
	return out
}

func seq(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// checkpointReaches waits until the stored checkpoint is at least pos.
func checkpointReaches(t *testing.T, store *es.Store, stream, name string, pos int64) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		cp, err := store.SubscriptionCheckpoint(t.Context(), stream, name)
		if err == nil && cp >= pos {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint of %s/%s: %d, %v; want %d", stream, name, cp, err, pos)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSubscriptionCatchUpThenLive(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(5)))
	sub, err := store.SubscribeToStream(ctx, "s", "catch-up", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	subscribed(t, sub)
	is.Equal(numbers(receive(t, sub, 5)), seq(1, 5))

	is.NoErr(store.AppendToStream(ctx, "s", 5, events(3)))
	is.NoErr(store.AppendToStream(ctx, "other", es.NoStream, events(2))) // not this stream
	got := receive(t, sub, 3)
	is.Equal(numbers(got), seq(6, 8))
	is.Equal(got[0].StreamID, "s")
	checkpointReaches(t, store, "s", "catch-up", 8)
}

func TestSubscriptionToAll(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "a", es.NoStream, events(2)))
	sub, err := store.SubscribeToAll(ctx, "all", &es.SubscriptionOptions{BufferSize: 100})
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "b", es.NoStream, events(3)))
	got := receive(t, sub, 5)
	is.Equal(numbers(got), seq(1, 5))
	is.Equal(got[4].StreamID, "b")
	checkpointReaches(t, store, es.AllStream, "all", 5)
}

func TestSubscriptionStartFrom(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(4)))

	cur, err := store.SubscribeToStream(ctx, "s", "current", &es.SubscriptionOptions{StartFrom: es.StartCurrent})
	is.NoErr(err)
	subscribed(t, cur)
	at, err := store.SubscribeToStream(ctx, "s", "after-2", &es.SubscriptionOptions{StartFrom: 2, BufferSize: 10})
	is.NoErr(err)
	is.Equal(numbers(receive(t, at, 2)), []int64{3, 4})

	is.NoErr(store.AppendToStream(ctx, "s", 4, events(1)))
	is.Equal(numbers(receive(t, cur, 1)), []int64{5})
	is.Equal(numbers(receive(t, at, 1)), []int64{5})

	// An existing subscription resumes from its checkpoint: StartFrom is ignored.
	is.NoErr(at.Close())
	again, err := store.SubscribeToStream(ctx, "s", "after-2", &es.SubscriptionOptions{StartFrom: es.StartOrigin})
	is.NoErr(err)
	subscribed(t, again)
	is.NoErr(store.AppendToStream(ctx, "s", 5, events(1)))
	is.Equal(numbers(receive(t, again, 1)), []int64{6})

	_, err = store.SubscribeToStream(ctx, "s", "bad", &es.SubscriptionOptions{StartFrom: -5})
	is.True(errors.Is(err, es.ErrInvalidArgument))
}

// BufferSize bounds in-flight events: the next batch waits for acknowledgements.
func TestSubscriptionBufferSizeAndAcks(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(7)))
	sub, err := store.SubscribeToStream(ctx, "s", "buffered", &es.SubscriptionOptions{BufferSize: 3})
	is.NoErr(err)

	first := next(t, sub.Events())
	is.Equal(numbers(first), []int64{1, 2, 3})
	select {
	case b := <-sub.Events():
		t.Fatalf("delivered %v beyond the buffer", numbers(b))
	case <-time.After(200 * time.Millisecond): // absence: nothing may arrive before an ack
	}
	is.True(errors.Is(sub.AckNumber(9), es.ErrUnexpectedAck))
	is.True(errors.Is(sub.Ack(es.RecordedEvent{EventNumber: 7}), es.ErrUnexpectedAck))
	is.NoErr(sub.Ack(first[0])) // one acked: room for one more
	is.Equal(numbers(next(t, sub.Events())), []int64{4})
	is.NoErr(sub.AckNumber(4)) // acknowledges 2, 3 and 4
	is.Equal(numbers(next(t, sub.Events())), []int64{5, 6, 7})
	is.True(errors.Is(sub.AckNumber(3), es.ErrUnexpectedAck)) // already acknowledged
	is.NoErr(sub.AckNumber(7))
	checkpointReaches(t, store, "s", "buffered", 7)
}

// The checkpoint only moves to the highest position below which everything is acknowledged,
// across competing subscribers.
func TestSubscriptionCheckpointNeverPassesUnacked(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(5)))
	opts := &es.SubscriptionOptions{BufferSize: 2, ConcurrencyLimit: 2}
	a, err := store.SubscribeToStream(ctx, "s", "gaps", opts)
	is.NoErr(err)
	o2 := *opts
	o2.SubscriberID = "b"
	b, err := store.SubscribeToStream(ctx, "s", "gaps", &o2)
	is.NoErr(err)
	var gotA, gotB []es.RecordedEvent
	for len(gotA)+len(gotB) < 4 { // round-robin: 1 and 3 to one, 2 and 4 to the other
		select {
		case x := <-a.Events():
			gotA = append(gotA, x...)
		case x := <-b.Events():
			gotB = append(gotB, x...)
		case <-time.After(wait):
			t.Fatal("no events delivered")
		}
	}
	if gotA[0].EventNumber != 1 {
		a, b, gotA, gotB = b, a, gotB, gotA
	}
	is.Equal(numbers(gotA), []int64{1, 3})
	is.Equal(numbers(gotB), []int64{2, 4})
	is.NoErr(b.Ack(gotB[1])) // 2 and 4 acknowledged; 1 still open
	is.NoErr(a.Ack(gotA[0])) // 1 acknowledged; 3 still open
	checkpointReaches(t, store, "s", "gaps", 2)
	cp, err := store.SubscriptionCheckpoint(ctx, "s", "gaps")
	is.NoErr(err)
	is.Equal(cp, int64(2))
	is.NoErr(b.Close())
	is.NoErr(a.Close()) // event 3 was never acknowledged: it comes again, and so does 4

	again, err := store.SubscribeToStream(ctx, "s", "gaps", &es.SubscriptionOptions{BufferSize: 5})
	is.NoErr(err)
	is.Equal(numbers(receive(t, again, 3)), []int64{3, 4, 5})
}

// As in the seed, acknowledging the last event of a batch acknowledges the batch: the buffer
// empties and delivery goes on.
func TestSubscriptionAckLastOfBatch(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(9)))
	sub, err := store.SubscribeToStream(ctx, "s", "batch", &es.SubscriptionOptions{BufferSize: 3})
	is.NoErr(err)
	var got []int64
	for len(got) < 9 {
		batch := next(t, sub.Events())
		got = append(got, numbers(batch)...)
		is.NoErr(sub.Ack(batch[len(batch)-1]))
	}
	is.Equal(got, seq(1, 9))
	checkpointReaches(t, store, "s", "batch", 9)
}

func TestSubscriptionCheckpointThresholdAndAfter(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(6)))
	sub, err := store.SubscribeToStream(ctx, "s", "threshold", &es.SubscriptionOptions{BufferSize: 1, CheckpointThreshold: 4})
	is.NoErr(err)
	receive(t, sub, 3)
	cp, err := store.SubscriptionCheckpoint(ctx, "s", "threshold")
	is.NoErr(err)
	is.Equal(cp, int64(0)) // 3 acks: under the threshold
	receive(t, sub, 1)
	checkpointReaches(t, store, "s", "threshold", 4)
	receive(t, sub, 2)
	is.NoErr(sub.Close()) // unsubscribing writes the rest
	cp, err = store.SubscriptionCheckpoint(ctx, "s", "threshold")
	is.NoErr(err)
	is.Equal(cp, int64(6))

	after, err := store.SubscribeToStream(ctx, "s", "after", &es.SubscriptionOptions{
		BufferSize: 10, CheckpointThreshold: 1000, CheckpointAfter: 50 * time.Millisecond,
	})
	is.NoErr(err)
	receive(t, after, 6)
	checkpointReaches(t, store, "s", "after", 6) // written by the interval, not the threshold
}

func TestSubscriptionSubscriberLimits(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	one, err := store.SubscribeToStream(ctx, "s", "single", nil)
	is.NoErr(err)
	_, err = store.SubscribeToStream(ctx, "s", "single", nil)
	is.True(errors.Is(err, es.ErrSubscriptionExists))
	is.NoErr(one.Close())

	opts := &es.SubscriptionOptions{ConcurrencyLimit: 2, SubscriberID: "worker-1"}
	_, err = store.SubscribeToStream(ctx, "s", "pair", opts)
	is.NoErr(err)
	_, err = store.SubscribeToStream(ctx, "s", "pair", opts)
	is.True(errors.Is(err, es.ErrAlreadySubscribed))
	_, err = store.SubscribeToStream(ctx, "s", "pair", &es.SubscriptionOptions{ConcurrencyLimit: 2, SubscriberID: "worker-2"})
	is.NoErr(err)
	_, err = store.SubscribeToStream(ctx, "s", "pair", &es.SubscriptionOptions{ConcurrencyLimit: 2, SubscriberID: "worker-3"})
	is.True(errors.Is(err, es.ErrTooManySubscribers))
}

// Competing consumers share the events round-robin.
func TestSubscriptionRoundRobin(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	var subs []*es.Subscriber
	for range 3 {
		sub, err := store.SubscribeToStream(ctx, "s", "rr", &es.SubscriptionOptions{ConcurrencyLimit: 3})
		is.NoErr(err)
		subs = append(subs, sub)
	}
	for _, sub := range subs {
		subscribed(t, sub)
	}
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(9)))
	counts := make([]int, 3)
	var all []int64
	for len(all) < 9 {
		for i, sub := range subs {
			select {
			case b := <-sub.Events():
				counts[i] += len(b)
				all = append(all, numbers(b)...)
				is.NoErr(sub.Ack(b...))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	slices.Sort(all)
	is.Equal(all, seq(1, 9))
	is.Equal(counts, []int{3, 3, 3})
}

// With PartitionBy, a partition's events go to one subscriber at a time, in order, while other
// partitions proceed on other subscribers.
func TestSubscriptionPartitionBy(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	byStream := func(e es.RecordedEvent) string { return e.StreamID }
	var subs []*es.Subscriber
	for range 3 {
		sub, err := store.SubscribeToAll(ctx, "partitioned", &es.SubscriptionOptions{ConcurrencyLimit: 3, BufferSize: 4, PartitionBy: byStream})
		is.NoErr(err)
		subs = append(subs, sub)
	}
	const streams, each = 6, 10
	for i := range each {
		for s := range streams {
			is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("p-%d", s), es.ExpectedVersion(i), events(1)))
		}
	}
	var (
		mu      sync.Mutex
		lastVer = map[string]int64{}
		owner   = map[string]int{} // stream -> subscriber processing it now
		total   int
		wg      sync.WaitGroup
		fail    = make(chan string, 100)
	)
	for i, sub := range subs {
		wg.Go(func() {
			for {
				mu.Lock()
				done := total >= streams*each
				mu.Unlock()
				if done {
					return
				}
				var b []es.RecordedEvent
				select {
				case b = <-sub.Events():
				case <-time.After(50 * time.Millisecond):
					continue
				}
				for _, ev := range b {
					mu.Lock()
					if o, busy := owner[ev.StreamID]; busy && o != i {
						fail <- fmt.Sprintf("%s handled by %d and %d at once", ev.StreamID, o, i)
					}
					owner[ev.StreamID] = i
					if ev.StreamVersion != lastVer[ev.StreamID]+1 {
						fail <- fmt.Sprintf("%s: version %d after %d", ev.StreamID, ev.StreamVersion, lastVer[ev.StreamID])
					}
					lastVer[ev.StreamID] = ev.StreamVersion
					mu.Unlock()
					time.Sleep(time.Millisecond) // work
					mu.Lock()
					delete(owner, ev.StreamID)
					total++
					mu.Unlock()
					if err := sub.Ack(ev); err != nil {
						fail <- err.Error()
					}
				}
			}
		})
	}
	wg.Wait()
	close(fail)
	for f := range fail {
		t.Error(f)
	}
	is.Equal(total, streams*each)
	checkpointReaches(t, store, es.AllStream, "partitioned", streams*each)
}

func TestSubscriptionSelectorAndMapper(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	mixed := func() []es.EventData {
		return []es.EventData{{EventType: "keep", Data: 1}, {EventType: "drop", Data: 2}, {EventType: "keep", Data: 3}}
	}
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, mixed())) // caught up
	sub, err := store.SubscribeToStream(ctx, "s", "filtered", &es.SubscriptionOptions{
		BufferSize: 10,
		Selector:   func(e es.RecordedEvent) bool { return e.EventType == "keep" },
		Mapper: func(e es.RecordedEvent) es.RecordedEvent {
			e.Data = fmt.Sprint("mapped-", e.Data)
			return e
		},
	})
	is.NoErr(err)
	got := receive(t, sub, 2)
	is.Equal(numbers(got), []int64{1, 3})
	is.Equal(got[1].Data, "mapped-3")
	is.NoErr(store.AppendToStream(ctx, "s", 3, mixed())) // live
	got = receive(t, sub, 2)
	is.Equal(numbers(got), []int64{4, 6})
	is.Equal(got[0].Data, "mapped-1")
	checkpointReaches(t, store, "s", "filtered", 6) // skipped events count as done
}

func TestSubscriptionDelete(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(3)))
	sub, err := store.SubscribeToStream(ctx, "s", "doomed", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	receive(t, sub, 3)
	checkpointReaches(t, store, "s", "doomed", 3)

	is.NoErr(store.DeleteSubscription(ctx, "s", "doomed"))
	select {
	case <-sub.Done():
	case <-time.After(wait):
		t.Fatal("subscriber not stopped")
	}
	is.True(errors.Is(sub.Err(), es.ErrSubscriptionNotFound))
	_, err = store.SubscriptionCheckpoint(ctx, "s", "doomed")
	is.True(errors.Is(err, es.ErrSubscriptionNotFound))
	is.NoErr(store.DeleteSubscription(ctx, "s", "doomed")) // missing is fine

	// The name starts over, from any position.
	again, err := store.SubscribeToStream(ctx, "s", "doomed", &es.SubscriptionOptions{StartFrom: 1, BufferSize: 10})
	is.NoErr(err)
	is.Equal(numbers(receive(t, again, 2)), []int64{2, 3})
}

func TestSubscriptionLinkStream(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "src", es.NoStream, events(3)))
	sub, err := store.SubscribeToStream(ctx, "links", "linked", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	subscribed(t, sub)
	src, err := store.ReadStreamForward(ctx, "src", 0, 10)
	is.NoErr(err)
	is.NoErr(store.LinkToStream(ctx, "links", es.NoStream, es.EventIDs(src[1:])))
	got := receive(t, sub, 2)
	is.Equal(numbers(got), []int64{1, 2})
	is.Equal(got[0].StreamID, "src")
	is.Equal(got[0].StreamVersion, int64(2))
}

// Soft-deleted streams deliver nothing to their own subscribers, while $all subscribers still get
// their events; hard-deleted events are stepped over.
func TestSubscriptionDeletedStreams(t *testing.T) {
	store, ctx, is := setupSub(t, &es.Config{EnableHardDeletes: true})
	is.NoErr(store.AppendToStream(ctx, "soft", es.NoStream, events(2)))
	is.NoErr(store.DeleteStream(ctx, "soft", es.AnyVersion, es.SoftDelete))
	is.NoErr(store.AppendToStream(ctx, "hard", es.NoStream, events(2)))
	is.NoErr(store.AppendToStream(ctx, "kept", es.NoStream, events(1)))
	info, err := store.StreamInfo(ctx, es.AllStream) // positions given before the delete
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(5))
	is.NoErr(store.DeleteStream(ctx, "hard", es.AnyVersion, es.HardDelete))

	own, err := store.SubscribeToStream(ctx, "soft", "own", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	all, err := store.SubscribeToAll(ctx, "all", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	got := receive(t, all, 3)
	is.Equal(numbers(got), []int64{1, 2, 5}) // 3 and 4 were hard deleted
	is.Equal(got[0].StreamID, "soft")
	checkpointReaches(t, store, es.AllStream, "all", 5)
	subscribed(t, own)
	select {
	case b := <-own.Events():
		t.Fatalf("soft-deleted stream delivered %v", numbers(b))
	case <-time.After(200 * time.Millisecond): // absence
	}
}

// Closing and resubscribing resumes after the checkpoint; unacknowledged events come again.
func TestSubscriptionRestart(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(6)))
	sub, err := store.SubscribeToStream(ctx, "s", "restart", &es.SubscriptionOptions{BufferSize: 4})
	is.NoErr(err)
	b := next(t, sub.Events())
	is.Equal(numbers(b), []int64{1, 2, 3, 4})
	is.NoErr(sub.AckNumber(2))
	is.NoErr(sub.Close())
	is.True(sub.Err() == nil)

	sub, err = store.SubscribeToStream(ctx, "s", "restart", &es.SubscriptionOptions{BufferSize: 4})
	is.NoErr(err)
	is.Equal(numbers(receive(t, sub, 4)), seq(3, 6))
}

// A second store on the same schema stands for another process: it waits while the first holds
// the subscription and takes over when it goes.
func TestSubscriptionOneActiveProcess(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	other, err := es.New(estest.DB(t), &es.Config{Schema: store.Schema(), ListenDSN: estest.DSN(t)})
	is.NoErr(err)
	t.Cleanup(func() { _ = other.Close() })
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(4)))

	first, err := store.SubscribeToStream(ctx, "s", "exclusive", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	is.Equal(numbers(receive(t, first, 4)), seq(1, 4))
	second, err := other.SubscribeToStream(ctx, "s", "exclusive", &es.SubscriptionOptions{BufferSize: 10, RetryInterval: 20 * time.Millisecond})
	is.NoErr(err)
	select {
	case <-second.Subscribed():
		t.Fatal("two processes run the subscription")
	case <-time.After(200 * time.Millisecond): // absence while the first holds it
	}
	_, err = other.SubscriptionCheckpoint(ctx, "s", "exclusive")
	is.NoErr(err)
	is.True(errors.Is(other.SetSubscriptionCheckpoint(ctx, "s", "exclusive", 0), es.ErrSubscriptionActive))

	is.NoErr(first.Close())
	subscribed(t, second)
	is.NoErr(store.AppendToStream(ctx, "s", 4, events(1)))
	is.Equal(numbers(receive(t, second, 1)), []int64{5})
}

// A projection is rebuilt by moving its checkpoint back while no subscriber runs it.
func TestSubscriptionCheckpointAdmin(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(3)))
	_, err := store.SubscriptionCheckpoint(ctx, "s", "proj")
	is.True(errors.Is(err, es.ErrSubscriptionNotFound))
	is.NoErr(store.SetSubscriptionCheckpoint(ctx, "s", "proj", 2)) // creates it
	cp, err := store.SubscriptionCheckpoint(ctx, "s", "proj")
	is.NoErr(err)
	is.Equal(cp, int64(2))

	sub, err := store.SubscribeToStream(ctx, "s", "proj", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	is.Equal(numbers(receive(t, sub, 1)), []int64{3})
	is.NoErr(sub.Close())

	is.NoErr(store.ResetSubscription(ctx, "s", "proj"))
	sub, err = store.SubscribeToStream(ctx, "s", "proj", &es.SubscriptionOptions{BufferSize: 10})
	is.NoErr(err)
	is.Equal(numbers(receive(t, sub, 3)), seq(1, 3))
	is.True(errors.Is(store.SetSubscriptionCheckpoint(ctx, "s", "proj", -1), es.ErrInvalidArgument))
}

func TestTransientSubscription(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(2))) // before: not delivered
	all, err := store.Subscribe(ctx, es.AllStream, nil)
	is.NoErr(err)
	one, err := store.Subscribe(ctx, "s", &es.TransientOptions{
		Selector: func(e es.RecordedEvent) bool { return e.EventNumber%2 == 1 },
		Mapper:   func(e es.RecordedEvent) es.RecordedEvent { e.EventType = "mapped"; return e },
	})
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "s", 2, events(3)))
	is.NoErr(store.AppendToStream(ctx, "t", es.NoStream, events(1)))

	var got []es.RecordedEvent
	for len(got) < 4 {
		got = append(got, next(t, all.Events())...)
	}
	is.Equal(numbers(got), seq(3, 6))
	var mine []es.RecordedEvent
	for len(mine) < 2 {
		mine = append(mine, next(t, one.Events())...)
	}
	is.Equal(numbers(mine), []int64{3, 5})
	is.Equal(mine[0].EventType, "mapped")

	is.NoErr(one.Close())
	_, open := <-one.Events()
	is.True(!open)
	is.NoErr(one.Err())
}

// Checkpoint writes skip the WAL flush wait for their own commit only: the lock's connection goes
// back to the pool with synchronous_commit as it was, so later appends on it stay durable.
func TestSubscriptionCheckpointKeepsSessionDurable(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	const conns = 4
	// Sessions start at remote_write, neither the test server's off nor the default on, so that
	// a checkpoint write leaving its "off" behind shows.
	dsn := estest.DSN(t)
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + "synchronous_commit=remote_write"
	} else {
		dsn += " synchronous_commit=remote_write"
	}
	pool, err := sql.Open(estest.Driver(), dsn)
	is.NoErr(err)
	defer pool.Close()
	pool.SetMaxOpenConns(conns)
	pool.SetMaxIdleConns(conns)
	store, err := es.New(pool, &es.Config{Schema: estest.NewSchema(t), ListenDSN: estest.DSN(t)})
	is.NoErr(err)
	defer store.Close()

	sub, err := store.SubscribeToAll(ctx, "durable", nil)
	is.NoErr(err)
	subscribed(t, sub)
	for i := range 5 {
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("s-%d", i), es.NoStream, events(1)))
		receive(t, sub, 1)
	}
	deadline := time.Now().Add(wait)
	for {
		pos, err := store.SubscriptionCheckpoint(ctx, es.AllStream, "durable")
		is.NoErr(err)
		if pos == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint at %d, want 5", pos)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sub.Close()

	// Every connection of the pool, the former lock connection among them, is durable.
	held := make([]*sql.Conn, 0, conns)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for range conns {
		c, err := pool.Conn(ctx)
		is.NoErr(err)
		held = append(held, c)
		var setting string
		is.NoErr(c.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&setting))
		is.Equal(setting, "remote_write")
	}
}
