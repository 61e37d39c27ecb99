package es

import (
	"testing"
	"time"
)

func evs(nums ...int64) []RecordedEvent {
	out := make([]RecordedEvent, len(nums))
	for i, n := range nums {
		out[i] = RecordedEvent{EventNumber: n}
	}
	return out
}

func nums(batch []RecordedEvent) []int64 {
	out := make([]int64, len(batch))
	for i, ev := range batch {
		out[i] = ev.EventNumber
	}
	return out
}

// A projection's batches after a lease was lost and taken again by the same process: the channel
// still holds the batch of the old lease, then the redelivered one. Each event is claimed once.
func TestClaimBatchAfterLeaseRetaken(t *testing.T) {
	sub := &subscription{active: true, epoch: 2, deadline: time.Now().Add(time.Hour)}
	h := &Subscriber{member: &member{}}
	check := func(batch []RecordedEvent, want []int64) {
		t.Helper()
		got, epoch, _, ok := sub.claimBatch(h, batch)
		if !ok {
			got = nil
		}
		if len(got) != len(want) || (ok && epoch != 2) {
			t.Fatalf("claimed %v (ok %v, epoch %d), want %v", nums(got), ok, epoch, want)
		}
		for i := range want {
			if got[i].EventNumber != want[i] {
				t.Fatalf("claimed %v, want %v", nums(got), want)
			}
		}
		if ok { // handled and acknowledged
			h.inflight = h.inflight[len(got):]
		}
	}
	h.inflight = evs(5, 6, 7, 8, 9)       // redelivered under the new lease as one batch
	check(evs(5, 6, 7), []int64{5, 6, 7}) // the old lease's batch: still the same events
	check(evs(5, 6, 7, 8, 9), []int64{8, 9})
	check(evs(3, 4), nil) // nothing in flight any more
	h.inflight = evs(10, 11)
	check(evs(12), nil) // not what is in flight
	sub.active = false
	check(evs(10, 11), nil) // no lease
}
