package es

import (
	"slices"

	"github.com/google/uuid"
)

// dispatcher is a persistent subscription's delivery bookkeeping, with no database in it: the
// queue of events read ahead, what is in flight to each subscriber, partition ownership, acks,
// and the safe position below which every event is done with. Its owner serializes calls.
type dispatcher struct {
	bufferSize  int
	partitionBy func(RecordedEvent) string

	queue      []RecordedEvent // read, not yet delivered, in position order
	readPos    int64           // the last position read (or stepped over) from the database
	members    []*member
	rr         int
	partitions map[string]*partition
	keys       map[int64]string // position -> partition key of in-flight events
}

// member is one subscriber's side of the bookkeeping.
type member struct {
	events   chan []RecordedEvent // batches handed over; a full channel takes no more
	inflight []RecordedEvent      // delivered and not yet acknowledged, in delivery order
}

type partition struct {
	owner *member
	n     int // events of the key in flight to owner
}

// subscriberChanCap bounds the batches a subscriber's channel holds: BufferSize may be anything
// up to math.MaxInt, and batches are never more than the events in flight.
const subscriberChanCap = 64

func newMember(bufferSize int) *member {
	return &member{events: make(chan []RecordedEvent, min(bufferSize, subscriberChanCap))}
}

func newDispatcher(bufferSize int, partitionBy func(RecordedEvent) string) *dispatcher {
	return &dispatcher{
		bufferSize:  bufferSize,
		partitionBy: partitionBy,
		partitions:  map[string]*partition{},
		keys:        map[int64]string{},
	}
}

// reset forgets the queue and everything in flight and restarts after pos: the subscription is
// delivered again from its checkpoint (a lost lease, a re-created stream).
func (d *dispatcher) reset(pos int64) {
	d.queue = nil
	d.readPos = pos
	for _, m := range d.members {
		m.inflight = nil
	}
	clear(d.partitions)
	clear(d.keys)
}

// dropQueue forgets the events read ahead and not delivered, so they are read again.
func (d *dispatcher) dropQueue() {
	if len(d.queue) > 0 {
		d.readPos = d.queue[0].EventNumber - 1
		d.queue = nil
	}
}

// enqueue appends events read after readPos; readTo is the last position the read stepped over
// (filtered-out events included).
func (d *dispatcher) enqueue(events []RecordedEvent, readTo int64) {
	d.queue = append(d.queue, events...)
	d.readPos = max(d.readPos, readTo)
}

func (d *dispatcher) add(m *member) { d.members = append(d.members, m) }

// remove disconnects a member; its unacknowledged events go back to the queue.
func (d *dispatcher) remove(m *member) {
	d.requeue(m.inflight)
	m.inflight = nil
	d.members = slices.DeleteFunc(d.members, func(x *member) bool { return x == m })
}

// requeue puts delivered, unacknowledged events back for delivery, in position order.
func (d *dispatcher) requeue(events []RecordedEvent) {
	if len(events) == 0 {
		return
	}
	for _, ev := range events {
		d.release(ev.EventNumber)
	}
	d.queue = append(d.queue, events...)
	slices.SortFunc(d.queue, func(a, b RecordedEvent) int {
		switch {
		case a.EventNumber < b.EventNumber:
			return -1
		case a.EventNumber > b.EventNumber:
			return 1
		}
		return 0
	})
}

// release forgets an in-flight event's partition.
func (d *dispatcher) release(pos int64) {
	key, ok := d.keys[pos]
	if !ok {
		return
	}
	delete(d.keys, pos)
	if p := d.partitions[key]; p != nil {
		if p.n--; p.n <= 0 {
			delete(d.partitions, key)
		}
	}
}

// ackKey names an acknowledged event: its number, and its id unless uuid.Nil (AckNumber). The id
// tells a stale ack of an event of a hard-deleted stream from the re-created stream's event of
// the same number.
type ackKey struct {
	number int64
	id     uuid.UUID
}

// ack acknowledges, for each key, the event in flight to m and every event delivered to m before
// it (the seed's rule: acking the last event of a batch acks the batch). It returns how many
// events it acknowledged and the first number that was not in flight, or -1.
func (d *dispatcher) ack(m *member, keys []ackKey) (acked int, missing int64) {
	missing = -1
	// done counts the events acknowledged from the front of inflight so far; they are cut off
	// once at the end. Cutting per key moved the rest of the batch each time: acking a batch of
	// 1,000 events one key each (Ack(batch...)) copied ~500,000 events, a third of the Go CPU of
	// a catch-up.
	done := 0
	for _, k := range keys {
		i := slices.IndexFunc(m.inflight[done:], func(ev RecordedEvent) bool {
			return ev.EventNumber == k.number && (k.id == uuid.Nil || ev.EventID == k.id)
		})
		if i < 0 {
			if missing < 0 {
				missing = k.number
			}
			continue
		}
		for _, ev := range m.inflight[done : done+i+1] {
			d.release(ev.EventNumber)
		}
		done += i + 1
	}
	acked = done
	if done > 0 {
		m.inflight = slices.Delete(m.inflight, 0, done)
	}
	return acked, missing
}

// room is how many more events m may receive now, given the batch being built for it.
func (d *dispatcher) room(m *member, building int) int {
	if building == 0 && len(m.events) == cap(m.events) {
		// The channel can be full with fewer events in flight than the buffer allows: many
		// small batches, or batches handed over before a lease loss and never acknowledged.
		return 0
	}
	return d.bufferSize - len(m.inflight) - building
}

// dispatch assigns queued events to members with room, round-robin, or to the member that owns
// the event's partition (later events of a busy key wait behind it). It records them in flight
// and returns the batches to hand over; the caller sends each on its member's channel, which has
// room for it.
func (d *dispatcher) dispatch() map[*member][]RecordedEvent {
	if len(d.members) == 0 || len(d.queue) == 0 {
		return nil
	}
	batches := map[*member][]RecordedEvent{}
	next := func() *member {
		for i := range d.members {
			m := d.members[(d.rr+i)%len(d.members)]
			if d.room(m, len(batches[m])) > 0 {
				d.rr = (d.rr + i + 1) % len(d.members)
				return m
			}
		}
		return nil
	}
	var blocked map[string]bool
	remaining := d.queue[:0:0]
	for i, ev := range d.queue {
		var target *member
		if d.partitionBy == nil {
			if target = next(); target == nil {
				remaining = append(remaining, d.queue[i:]...)
				break
			}
		} else {
			key := d.partitionBy(ev)
			if p := d.partitions[key]; p != nil {
				if blocked[key] || d.room(p.owner, len(batches[p.owner])) <= 0 {
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
				d.partitions[key] = &partition{owner: target, n: 1}
			}
			d.keys[ev.EventNumber] = key
		}
		batches[target] = append(batches[target], ev)
	}
	d.queue = remaining
	for m, b := range batches {
		m.inflight = append(m.inflight, b...)
	}
	return batches
}

// safePosition is the highest position below which every event is done with: the checkpoint
// never passes an event that is queued or in flight.
func (d *dispatcher) safePosition() int64 {
	low := d.readPos
	if len(d.queue) > 0 {
		low = min(low, d.queue[0].EventNumber-1)
	}
	for _, m := range d.members {
		for _, ev := range m.inflight {
			low = min(low, ev.EventNumber-1)
		}
	}
	return low
}

// idle says whether every event read was acknowledged: nothing queued, nothing in flight.
func (d *dispatcher) idle() bool {
	if len(d.queue) > 0 {
		return false
	}
	for _, m := range d.members {
		if len(m.inflight) > 0 {
			return false
		}
	}
	return true
}

// queued is how many events wait for delivery.
func (d *dispatcher) queued() int { return len(d.queue) }
