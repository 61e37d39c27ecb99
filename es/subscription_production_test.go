package es_test

// Subscriptions off the happy path: small pools, a bad ListenDSN, "current" starts, deleted and
// re-created streams, options at their limits. Each test is an input that once lost or stalled
// events.

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// pool opens a second *sql.DB on the test database with at most n connections.
func pool(t *testing.T, n int) *sql.DB {
	t.Helper()
	db, err := sql.Open(estest.Driver(), estest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(n)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// A pool of 4 with 4 persistent subscriptions, and a pool of 1 with one: appends, reads and
// deliveries go on (no subscription holds a connection), and Close returns.
func TestSubscriptionsSmallPool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ conns, subs int }{{4, 4}, {1, 1}, {1, 3}} {
		t.Run("", func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := t.Context()
			schema := estest.NewSchema(t)
			store, err := es.New(pool(t, tc.conns), &es.Config{Schema: schema, Logger: testLogger(t)})
			is.NoErr(err)
			var subs []*es.Subscriber
			for i := range tc.subs {
				sub, err := store.SubscribeToAll(ctx, "sub-"+string(rune('a'+i)), nil)
				is.NoErr(err)
				subscribed(t, sub)
				subs = append(subs, sub)
			}
			appendCtx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			is.NoErr(store.AppendToStream(appendCtx, "s", es.NoStream, events(3)))
			got, err := store.ReadStreamForward(appendCtx, "s", 0, 10)
			is.NoErr(err)
			is.Equal(len(got), 3)
			for _, sub := range subs {
				is.Equal(numbers(receive(t, sub, 3)), []int64{1, 2, 3})
			}
			closeCtx, cancelClose := context.WithTimeout(ctx, wait)
			defer cancelClose()
			is.NoErr(store.Shutdown(closeCtx))
			for _, sub := range subs {
				<-sub.Done()
				is.True(errors.Is(sub.Err(), es.ErrClosed))
			}
		})
	}
}

// Close is bounded even when the pool's only connection is held by the caller's open
// transaction: Shutdown returns at its context's end.
func TestShutdownBoundedWhenPoolExhausted(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	db := pool(t, 1)
	store, err := es.New(db, &es.Config{Schema: estest.NewSchema(t), Logger: testLogger(t)})
	is.NoErr(err)
	sub, err := store.SubscribeToAll(ctx, "held", nil)
	is.NoErr(err)
	subscribed(t, sub)
	tx, err := db.BeginTx(ctx, nil) // the pool's only connection
	is.NoErr(err)
	defer tx.Rollback()
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(1), es.WithTx(tx)))
	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = store.Shutdown(closeCtx)
	is.True(errors.Is(err, context.DeadlineExceeded))
	<-sub.Done()
}

// unreachableDSN is a connection string to a port nothing listens on.
func unreachableDSN(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "postgres://nobody@" + addr + "/nowhere"
}

// withoutSSLMode drops sslmode from a URL, as users copy the pool's URL into ListenDSN: psql and
// pgx then prefer TLS without requiring it, and so must the listener.
func withoutSSLMode(t *testing.T, dsn string) string {
	t.Helper()
	if !strings.HasPrefix(dsn, "postgres") {
		var kv []string
		for _, f := range strings.Fields(dsn) {
			if !strings.HasPrefix(f, "sslmode=") {
				kv = append(kv, f)
			}
		}
		return strings.Join(kv, " ")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("sslmode")
	u.RawQuery = q.Encode()
	return u.String()
}

// A ListenDSN that cannot connect: persistent and transient subscribers deliver by polling, and
// nothing waits for LISTEN. A ListenDSN without sslmode against a server without TLS works as it
// does for psql (here, with polling off, only NOTIFY can deliver).
func TestSubscriptionListenDSN(t *testing.T) {
	t.Parallel()
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		store := estest.NewStore(t, &es.Config{ListenDSN: unreachableDSN(t), SubscriptionPollInterval: 200 * time.Millisecond, Logger: testLogger(t)})
		sub, err := store.SubscribeToAll(ctx, "polling", nil)
		is.NoErr(err)
		subscribed(t, sub)
		tr, err := store.Subscribe(ctx, es.AllStream, nil)
		is.NoErr(err)
		other := subscriberStore(t, estest.DB(t), store.Schema(), es.Config{}) // appends from elsewhere
		is.NoErr(other.AppendToStream(ctx, "s", es.NoStream, events(2)))
		is.NoErr(other.Close()) // its last pass numbers the appends
		is.Equal(numbers(receive(t, sub, 2)), []int64{1, 2})
		is.Equal(numbers(next(t, tr.Events())), []int64{1, 2})
	})
	t.Run("no sslmode", func(t *testing.T) {
		t.Parallel()
		is := is.New(t)
		ctx := t.Context()
		store := estest.NewStore(t, &es.Config{ListenDSN: withoutSSLMode(t, estest.DSN(t)), SubscriptionPollInterval: time.Hour})
		sub, err := store.SubscribeToAll(ctx, "notified", nil)
		is.NoErr(err)
		subscribed(t, sub)
		other := subscriberStore(t, estest.DB(t), store.Schema(), es.Config{})
		// The listener connects in the background: append until NOTIFY brings an event.
		deadline := time.Now().Add(wait)
		for {
			is.NoErr(other.AppendToStream(ctx, "s", es.AnyVersion, events(1)))
			_, _ = other.ReadAllForward(ctx, 0, 1) // settles: the pass sends the NOTIFY
			select {
			case b := <-sub.Events():
				is.True(len(b) > 0)
				return
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatal("no NOTIFY reached the subscription")
			}
		}
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		_, err := es.New(estest.DB(t), &es.Config{ListenDSN: "postgres://h/db?sslmode=sometimes"})
		is.New(t).True(errors.Is(err, es.ErrInvalidArgument))
	})
}

// StartCurrent is resolved before Subscribe returns: an append right after it is delivered.
func TestSubscriptionStartCurrentFixedAtSubscribe(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(3)))
	all, err := store.SubscribeToAll(ctx, "all-current", &es.SubscriptionOptions{StartFrom: es.StartCurrent})
	is.NoErr(err)
	one, err := store.SubscribeToStream(ctx, "s", "s-current", &es.SubscriptionOptions{StartFrom: es.StartCurrent})
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "s", 3, events(1))) // without waiting for Subscribed
	is.Equal(numbers(receive(t, all, 1)), []int64{4})
	is.Equal(numbers(receive(t, one, 1)), []int64{4})
}

// A hard-deleted and re-created stream is a new stream to its subscribers, persistent and
// transient: they get 1..n of the new one, and the checkpoint follows it.
func TestSubscriptionStreamRecreated(t *testing.T) {
	store, ctx, is := setupSub(t, &es.Config{EnableHardDeletes: true})
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(2)))
	tr, err := store.Subscribe(ctx, "s", nil)
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "s", 2, events(3)))
	is.Equal(numbers(next(t, tr.Events())), []int64{3, 4, 5})
	sub, err := store.SubscribeToStream(ctx, "s", "recreated", nil)
	is.NoErr(err)
	is.Equal(numbers(receive(t, sub, 5)), seq(1, 5))
	checkpointReaches(t, store, "s", "recreated", 5)

	is.NoErr(store.DeleteStream(ctx, "s", es.AnyVersion, es.HardDelete))
	fresh := events(7)
	for i := range fresh {
		fresh[i].EventID = uuid.New()
	}
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, fresh))
	got := receive(t, sub, 7)
	is.Equal(numbers(got), seq(1, 7))
	is.Equal(got[0].EventID, fresh[0].EventID)
	var tgot []es.RecordedEvent
	for len(tgot) < 7 {
		tgot = append(tgot, next(t, tr.Events())...)
	}
	is.Equal(numbers(tgot), seq(1, 7))
	checkpointReaches(t, store, "s", "recreated", 7)
	is.NoErr(sub.Close())

	// After a restart the checkpoint counts in the new stream.
	is.NoErr(store.AppendToStream(ctx, "s", 7, events(1)))
	again, err := store.SubscribeToStream(ctx, "s", "recreated", nil)
	is.NoErr(err)
	is.Equal(numbers(receive(t, again, 1)), []int64{8})
}

// Events read ahead into a subscription's queue and then deleted are not delivered: hard deletes
// for $all and stream subscriptions, soft deletes for stream subscriptions.
func TestSubscriptionQueuedEventsRevalidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		stream string
		mode   es.DeleteMode
	}{
		{"all hard", es.AllStream, es.HardDelete},
		{"stream hard", "doomed", es.HardDelete},
		{"stream soft", "doomed", es.SoftDelete},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, ctx, is := setupSub(t, &es.Config{EnableHardDeletes: true})
			is.NoErr(store.AppendToStream(ctx, "doomed", es.NoStream, events(10)))
			sub, err := store.SubscribeToStream(ctx, tc.stream, "revalidated", nil) // one in flight
			is.NoErr(err)
			first := next(t, sub.Events())
			is.Equal(numbers(first), []int64{1}) // 2..10 are queued
			is.NoErr(store.DeleteStream(ctx, "doomed", es.AnyVersion, tc.mode))
			is.NoErr(sub.Ack(first...))
			switch {
			case tc.stream == es.AllStream:
				// The next event delivered is one appended after the delete.
				is.NoErr(store.AppendToStream(ctx, "later", es.NoStream, events(1)))
				b := next(t, sub.Events())
				is.Equal(b[0].StreamID, "later")
			case tc.mode == es.HardDelete:
				// The next event delivered is the re-created stream's first.
				fresh := events(1)
				fresh[0].EventID = uuid.New()
				is.NoErr(store.AppendToStream(ctx, "doomed", es.NoStream, fresh))
				b := next(t, sub.Events())
				is.Equal(b[0].EventID, fresh[0].EventID)
			default:
				select {
				case b := <-sub.Events():
					t.Fatalf("delivered %v of a soft-deleted stream", numbers(b))
				case <-time.After(300 * time.Millisecond): // absence
				}
			}
		})
	}
}

// Numeric options at their limits work (or are refused clearly): no overflowed LIMIT, no
// makechan panic.
func TestSubscriptionOptionLimits(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(5)))
	sub, err := store.SubscribeToStream(ctx, "s", "max", &es.SubscriptionOptions{
		BufferSize: math.MaxInt, MaxQueueSize: math.MaxInt, CheckpointThreshold: math.MaxInt,
		ConcurrencyLimit: math.MaxInt, StartFrom: 0,
	})
	is.NoErr(err)
	is.Equal(numbers(receive(t, sub, 5)), seq(1, 5))
	all, err := store.SubscribeToAll(ctx, "max", &es.SubscriptionOptions{BufferSize: math.MaxInt, MaxQueueSize: math.MaxInt, StartFrom: math.MaxInt64})
	is.NoErr(err)
	subscribed(t, all)
	tr, err := store.Subscribe(ctx, "s", &es.TransientOptions{BatchSize: math.MaxInt})
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "s", 5, events(2)))
	is.Equal(numbers(next(t, tr.Events())), []int64{6, 7})

	for _, o := range []es.SubscriptionOptions{
		{CheckpointAfter: math.MaxInt64},
		{RetryInterval: 100 * 24 * time.Hour},
		{BufferSize: -1},
		{StartFrom: -2},
		{SubscriberID: strings.Repeat("x", es.MaxSubscriptionNameLen+1)},
		{SubscriberID: "a\x00b"},
	} {
		_, err := store.SubscribeToStream(ctx, "s", "bad", &o)
		is.True(errors.Is(err, es.ErrInvalidArgument))
	}
	for _, name := range []string{"", strings.Repeat("n", es.MaxSubscriptionNameLen+1), "bad\xff", "nul\x00"} {
		_, err := store.SubscribeToStream(ctx, "s", name, nil)
		is.True(errors.Is(err, es.ErrInvalidArgument))
		_, err = store.SubscribeToStream(ctx, name, "n", nil)
		is.True(errors.Is(err, es.ErrInvalidArgument))
		_, err = store.Subscribe(ctx, name, nil)
		is.True(errors.Is(err, es.ErrInvalidArgument))
	}
	_, err = store.Subscribe(ctx, "s", &es.TransientOptions{BatchSize: -1})
	is.True(errors.Is(err, es.ErrInvalidArgument))
	for _, cfg := range []es.Config{
		{LeaseDuration: -time.Second},
		{LeaseDuration: time.Second, LeaseRenewInterval: time.Second},
		{LeaseDuration: time.Millisecond},
	} {
		cfg.Schema = store.Schema()
		_, err := es.New(estest.DB(t), &cfg)
		is.True(errors.Is(err, es.ErrInvalidArgument))
	}
}

// Many persistent subscriptions share a small pool: none holds a connection, and one poll
// serves them all.
func TestSubscriptionsManyOnSmallPool(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	store, err := es.New(pool(t, 5), &es.Config{Schema: estest.NewSchema(t), Logger: testLogger(t)})
	is.NoErr(err)
	t.Cleanup(func() { _ = store.Close() })
	const n = 200
	subs := make([]*es.Subscriber, n)
	for i := range subs {
		var err error
		name := "many-" + uuid.NewString()
		if i%2 == 0 {
			subs[i], err = store.SubscribeToAll(ctx, name, nil)
		} else {
			subs[i], err = store.SubscribeToStream(ctx, "s", name, nil)
		}
		is.NoErr(err)
	}
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(3)))
	for _, sub := range subs {
		is.Equal(numbers(receive(t, sub, 3)), []int64{1, 2, 3})
	}
}
