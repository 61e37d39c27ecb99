package es_test

import (
	"fmt"
	"testing"

	"github.com/go-eventstore/eventstore/es"
)

// A $all subscription catching up over many pages reads ahead, and still delivers every event
// once, in order, with a hard delete in the middle of its catch-up: nothing of the deleted
// stream is delivered after the delete returned, whatever page it was read in.
func TestSubscriptionReadAheadCatchUp(t *testing.T) {
	store, ctx, is := setupSub(t, &es.Config{EnableHardDeletes: true})
	// 12 streams of 500 events, appended one after the other: positions 1..6000, 12 pages.
	for i := range 12 {
		is.NoErr(store.AppendToStream(ctx, fmt.Sprintf("ra-%02d", i), es.NoStream, events(500)))
	}
	// Numbered before the delete: a stream hard deleted before the sequencer reached it never
	// gets positions, and the later streams would take its.
	_, err := store.ReadAllBackward(ctx, -1, 1)
	is.NoErr(err)
	sub, err := store.SubscribeToAll(ctx, "read-ahead", &es.SubscriptionOptions{BufferSize: 500, MaxQueueSize: 3000})
	is.NoErr(err)
	// ra-09 (positions 4501..5000) is deleted once the first batch is in hand, while later
	// pages are being read or already read.
	first := next(t, sub.Events())
	is.NoErr(store.DeleteStream(ctx, "ra-09", es.AnyVersion, es.HardDelete))
	is.NoErr(sub.Ack(first...))
	got := append([]es.RecordedEvent(nil), first...)
	for got[len(got)-1].EventNumber < 6000 {
		b := next(t, sub.Events())
		is.NoErr(sub.Ack(b...))
		got = append(got, b...)
	}
	var want []int64
	for pos := int64(1); pos <= 6000; pos++ {
		if pos < 4501 || pos > 5000 {
			want = append(want, pos)
		}
	}
	is.Equal(numbers(got), want) // each once, in order, none of the deleted stream
	is.True(es.ReadAheadsUsed(store) > 0)
}
