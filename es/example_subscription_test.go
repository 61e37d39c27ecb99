package es_test

import (
	"context"
	"fmt"

	"github.com/go-eventstore/eventstore/es"
)

func ExampleStore_SubscribeToAll() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	_ = store.AppendToStream(ctx, "account-1", es.NoStream, []es.EventData{
		{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 10}},
		{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 20}},
	})

	// A persistent subscription: it catches up from its checkpoint, then follows new events.
	sub, err := store.SubscribeToAll(ctx, "totals", &es.SubscriptionOptions{BufferSize: 10})
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	_ = store.AppendToStream(ctx, "account-2", es.NoStream, []es.EventData{
		{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 5}},
	})

	seen := 0
	for batch := range sub.Events() {
		for _, ev := range batch {
			fmt.Println(ev.EventNumber, ev.StreamID, ev.Data)
		}
		// Acknowledge once processed: acking the batch's last event acks the batch, and the
		// checkpoint moves past acknowledged events only.
		if err := sub.Ack(batch[len(batch)-1]); err != nil {
			panic(err)
		}
		if seen += len(batch); seen == 3 {
			break
		}
	}
	// Output:
	// 1 account-1 map[amount:10]
	// 2 account-1 map[amount:20]
	// 3 account-2 map[amount:5]
}

func ExampleStore_SubscribeToStream_competingConsumers() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()

	// Two subscribers share one subscription; PartitionBy keeps each stream on one subscriber at
	// a time, in order.
	opts := &es.SubscriptionOptions{
		ConcurrencyLimit: 2,
		BufferSize:       10,
		PartitionBy:      func(e es.RecordedEvent) string { return e.StreamID },
	}
	a, _ := store.SubscribeToAll(ctx, "workers", opts)
	b, _ := store.SubscribeToAll(ctx, "workers", opts)
	defer a.Close()
	defer b.Close()
	<-a.Subscribed()
	for _, s := range []string{"x", "y"} {
		_ = store.AppendToStream(ctx, s, es.NoStream, []es.EventData{{EventType: "E", Data: 1}, {EventType: "E", Data: 2}})
	}

	perStream := map[string][]int64{}
	for got := 0; got < 4; {
		select {
		case batch := <-a.Events():
			got += record(perStream, batch)
			_ = a.Ack(batch...)
		case batch := <-b.Events():
			got += record(perStream, batch)
			_ = b.Ack(batch...)
		}
	}
	fmt.Println(perStream["x"], perStream["y"])
	// Output: [1 2] [1 2]
}

func record(perStream map[string][]int64, batch []es.RecordedEvent) int {
	for _, ev := range batch {
		perStream[ev.StreamID] = append(perStream[ev.StreamID], ev.StreamVersion)
	}
	return len(batch)
}

func ExampleStore_Subscribe() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	_ = store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{{EventType: "Before", Data: 0}})

	// A transient subscription: events committed from now on, no acks, no checkpoint.
	sub, err := store.Subscribe(ctx, "s", nil)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	_ = store.AppendToStream(ctx, "s", 1, []es.EventData{{EventType: "After", Data: 1}})
	batch := <-sub.Events()
	fmt.Println(batch[0].EventNumber, batch[0].EventType)
	// Output: 2 After
}

func ExampleStore_SetSubscriptionCheckpoint() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	_ = store.AppendToStream(ctx, "s", es.NoStream, []es.EventData{{EventType: "E", Data: 1}, {EventType: "E", Data: 2}})

	// Rebuild a projection: while no subscriber runs it, move its checkpoint back to the origin.
	_ = store.SetSubscriptionCheckpoint(ctx, es.AllStream, "projection", 2)
	cp, _ := store.SubscriptionCheckpoint(ctx, es.AllStream, "projection")
	fmt.Println(cp)
	_ = store.ResetSubscription(ctx, es.AllStream, "projection")
	cp, _ = store.SubscriptionCheckpoint(ctx, es.AllStream, "projection")
	fmt.Println(cp)
	// Output:
	// 2
	// 0
}
