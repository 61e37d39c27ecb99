package es_test

import (
	"errors"
	"testing"

	"github.com/go-eventstore/eventstore/es"
)

// Category subscriptions, persistent and transient, deliver the category's events in $all
// order; filtered $all subscriptions deliver what passes the filter, and their checkpoint moves
// past what it left out.
func TestSubscriptionCategoryAndFilters(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	tr, err := store.Subscribe(ctx, es.CategoryStream("account"), nil)
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "account-1", es.NoStream, events(2)))
	is.NoErr(store.AppendToStream(ctx, "order-1", es.NoStream, events(3)))
	is.NoErr(store.AppendToStream(ctx, "account-2", es.NoStream, events(1)))

	cat, err := store.SubscribeToCategory(ctx, "account", "accounts", nil)
	is.NoErr(err)
	got := receive(t, cat, 3)
	is.Equal(numbers(got), []int64{1, 2, 6}) // $all positions
	is.Equal(got[2].StreamID, "account-2")
	checkpointReaches(t, store, es.CategoryStream("account"), "accounts", 6)
	var tgot []es.RecordedEvent
	for len(tgot) < 3 {
		tgot = append(tgot, next(t, tr.Events())...)
	}
	is.Equal(numbers(tgot), []int64{1, 2, 6})

	// A sparse filter: its checkpoint follows the $all head, not the last event it delivered.
	prefixed, err := store.SubscribeToAll(ctx, "orders", &es.SubscriptionOptions{StreamPrefixes: []string{"order-"}})
	is.NoErr(err)
	is.Equal(numbers(receive(t, prefixed, 3)), []int64{3, 4, 5})
	checkpointReaches(t, store, es.AllStream, "orders", 6)
	is.NoErr(store.AppendToStream(ctx, "account-3", es.NoStream, events(2)))
	checkpointReaches(t, store, es.AllStream, "orders", 8)
	is.NoErr(prefixed.Close())
	is.NoErr(store.AppendToStream(ctx, "order-2", es.NoStream, events(1)))
	again, err := store.SubscribeToAll(ctx, "orders", &es.SubscriptionOptions{StreamPrefixes: []string{"order-"}})
	is.NoErr(err)
	is.Equal(numbers(receive(t, again, 1)), []int64{9})

	typed, err := store.SubscribeToAll(ctx, "typed", &es.SubscriptionOptions{Categories: []string{"order"}, EventTypes: []string{"Nothing"}})
	is.NoErr(err)
	subscribed(t, typed)
	checkpointReaches(t, store, es.AllStream, "typed", 9)

	for _, o := range []*es.SubscriptionOptions{
		{Categories: []string{"has-dash"}},
		{EventTypes: []string{""}},
	} {
		_, err := store.SubscribeToAll(ctx, "bad", o)
		is.True(errors.Is(err, es.ErrInvalidArgument))
	}
	_, err = store.SubscribeToStream(ctx, "account-1", "bad", &es.SubscriptionOptions{EventTypes: []string{"X"}})
	is.True(errors.Is(err, es.ErrInvalidArgument)) // filters are for $all and categories
	_, err = store.SubscribeToCategory(ctx, "a-b", "bad", nil)
	is.True(errors.Is(err, es.ErrInvalidArgument))
	err = store.AppendToStream(ctx, es.CategoryStream("account"), es.AnyVersion, events(1))
	is.True(errors.Is(err, es.ErrInvalidArgument)) // the key names no stream
}
