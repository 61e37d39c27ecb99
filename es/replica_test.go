//go:build unix

package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgtest"
)

// replicaCluster is a primary and a streaming standby of its own, started for one test.
type replicaCluster struct {
	primary, standby *pgtest.Postgres
	multi            string  // both servers, target_session_attrs=read-write: the primary, wherever it is
	primaryDB        *sql.DB // on multi
	replicaDB        *sql.DB // on the standby
	schema           string
}

func startReplicaCluster(t *testing.T, synchronous bool) *replicaCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// synchronous_commit on: the walsender sends only flushed WAL, which with it off waits for
	// the WAL writer (up to 200ms), a lag no production primary has. Without a synchronous
	// standby the primary still does not wait for the standby.
	cfg := &pgtest.PostgresConfig{Settings: map[string]string{"synchronous_commit": "on"}}
	primary, err := pgtest.StartPostgres(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	standby, err := primary.StartStandby(ctx, &pgtest.StandbyConfig{Synchronous: synchronous})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	c := &replicaCluster{primary: primary, standby: standby, schema: "es_replica"}
	c.multi = fmt.Sprintf("host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=postgres sslmode=disable "+
		"target_session_attrs=read-write connect_timeout=2", primary.Port(), standby.Port())
	open := func(dsn string) *sql.DB {
		db, err := sql.Open(estest.Driver(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(40)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	c.primaryDB, c.replicaDB = open(c.multi), open(standby.DSN("postgres"))
	opts := goose.Options{DataType: goose.DataType(os.Getenv("ES_TEST_DATA_TYPE"))}
	if _, err := goose.UpWithOptions(ctx, c.primaryDB, c.schema, opts); err != nil {
		t.Fatal(err)
	}
	return c
}

// store returns a Store on the cluster's primary (wherever the multi-host string finds it)
// reading from its standby, closed when the test ends.
func (c *replicaCluster) store(t *testing.T, cfg es.Config) *es.Store {
	t.Helper()
	return c.storeOn(t, c.multi, cfg)
}

// storeOn is store with the primary's pool and ListenDSN on dsn.
func (c *replicaCluster) storeOn(t *testing.T, dsn string, cfg es.Config) *es.Store {
	t.Helper()
	db := c.primaryDB
	if dsn != c.multi {
		var err error
		if db, err = sql.Open(estest.Driver(), dsn); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
	}
	cfg.Schema, cfg.Replica, cfg.ListenDSN = c.schema, c.replicaDB, dsn
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := es.New(db, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// replicaEvents is how many events TestReplicaCatchUp appends (ES_REPLICA_EVENTS, default 10,000:
// the 50,000 take about five times as long, per driver).
func replicaEvents(t *testing.T) int64 {
	if v := os.Getenv("ES_REPLICA_EVENTS"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("ES_REPLICA_EVENTS=%q", v)
		}
		return n
	}
	return 10_000
}

// Four writers append on the primary, in and out of transactions, some rolled back; a persistent
// subscription reads its catch-up from the standby, and receives exactly the primary's $all: every
// position once, in order, the same event at each. Meanwhile a prober appends, takes PrimaryLSN
// and reads its own write back from the standby (WithMinLSN): the wait is the replay lag, whose
// p50 and p99 are reported.
func TestReplicaCatchUp(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	c := startReplicaCluster(t, false)
	store := c.store(t, es.Config{})
	target := replicaEvents(t)

	sub, err := store.SubscribeToAll(ctx, "catch-up", &es.SubscriptionOptions{BufferSize: 500, CheckpointThreshold: 500})
	is.NoErr(err)
	var (
		received []es.RecordedEvent
		recvMu   sync.Mutex
		recvLast atomic.Int64
		recvWake = make(chan struct{}, 1)
	)
	go func() {
		for batch := range sub.Events() {
			recvMu.Lock()
			received = append(received, batch...)
			recvMu.Unlock()
			_ = sub.Ack(batch...)
			recvLast.Store(batch[len(batch)-1].EventNumber)
			select {
			case recvWake <- struct{}{}:
			default:
			}
		}
	}()

	var total atomic.Int64
	var writers sync.WaitGroup
	writeErr := make(chan error, 5)
	for w := range 4 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for total.Load() < target {
				stream := fmt.Sprintf("w%d-%d", w, rng.IntN(8))
				batch := events(1 + rng.IntN(5))
				var err error
				if rng.IntN(2) == 0 {
					rollback := rng.IntN(5) == 0
					err = appendInTx(ctx, c.primaryDB, store, stream, batch, 0, rollback)
					if rollback {
						continue
					}
				} else {
					err = store.AppendToStream(ctx, stream, es.AnyVersion, batch)
				}
				if err != nil {
					writeErr <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				total.Add(int64(len(batch)))
			}
		})
	}
	// The prober: read-your-writes on the standby, and the replay lag it costs.
	var lags []time.Duration
	var writing atomic.Bool
	writing.Store(true)
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for i := 0; writing.Load(); i++ {
			ev := es.EventData{EventID: uuid.New(), EventType: "probe", Data: deposited{Account: "p", Amount: i}}
			if err := store.AppendToStream(ctx, "probe", es.AnyVersion, []es.EventData{ev}); err != nil {
				writeErr <- err
				return
			}
			lsn, err := store.PrimaryLSN(ctx)
			if err != nil {
				writeErr <- err
				return
			}
			began := time.Now()
			got, err := store.ReadStreamBackward(ctx, "probe", -1, 1, es.WithMinLSN(lsn))
			lags = append(lags, time.Since(began))
			if err != nil || len(got) != 1 || got[0].EventID != ev.EventID {
				writeErr <- fmt.Errorf("probe %d: read %v, %v from the standby, want its own write %s", i, got, err, ev.EventID)
				return
			}
		}
	}()
	writers.Wait()
	writing.Store(false)
	<-probeDone
	close(writeErr)
	for err := range writeErr {
		t.Fatal(err)
	}

	var all []es.RecordedEvent
	for ev, err := range store.StreamAllForward(ctx, 0, es.WithPrimary()) {
		is.NoErr(err)
		all = append(all, ev)
	}
	head := int64(len(all))
	is.Equal(all[head-1].EventNumber, head) // the primary's $all: 1..N, no gap
	for recvLast.Load() < head {
		select {
		case <-recvWake:
		case <-ctx.Done():
			t.Fatalf("the subscriber stopped at %d of %d", recvLast.Load(), head)
		}
	}
	recvMu.Lock()
	defer recvMu.Unlock()
	is.Equal(len(received), len(all)) // no skip, no duplicate
	for i, ev := range received {
		if ev.EventNumber != all[i].EventNumber || ev.EventID != all[i].EventID {
			t.Fatalf("delivered #%d: position %d event %s; the primary has position %d event %s",
				i, ev.EventNumber, ev.EventID, all[i].EventNumber, all[i].EventID)
		}
	}
	onReplica, onPrimary := es.CatchUpReads(store)
	is.True(onReplica > 0) // the catch-up read the standby
	slices.Sort(lags)
	t.Logf("%s: %d events (%d probes) through the standby; catch-up reads: %d on the standby, %d on the primary; "+
		"replay lag (append, PrimaryLSN, read back WithMinLSN): p50 %s, p99 %s, max %s", estest.Driver(), head, len(lags),
		onReplica, onPrimary, percentile(lags, 50), percentile(lags, 99), lags[len(lags)-1])
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)].Round(10 * time.Microsecond)
}

// With the standby's replay paused, plain reads show the standby's (older) state; WithPrimary and
// WithMinLSNOrPrimary see the write; WithMinLSN waits, bounded by its context, and returns the
// write once replay resumes.
func TestReplicaFreshness(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	c := startReplicaCluster(t, false)
	store := c.store(t, es.Config{})

	a := events(1)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, a))
	lsn, err := store.PrimaryLSN(ctx)
	is.NoErr(err)
	got, err := store.ReadStreamForward(ctx, "s", 0, 10, es.WithMinLSN(lsn))
	is.NoErr(err)
	is.Equal(len(got), 1)
	replayed, err := store.ReplicaLSN(ctx)
	is.NoErr(err)
	is.True(replayed >= lsn)
	parsed, err := es.ParseLSN(lsn.String())
	is.NoErr(err)
	is.Equal(parsed, lsn)

	sdb := c.replicaDB
	_, err = sdb.ExecContext(ctx, "SELECT pg_wal_replay_pause()")
	is.NoErr(err)
	for {
		var state string
		is.NoErr(sdb.QueryRowContext(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state))
		if state == "paused" {
			break
		}
	}
	is.NoErr(store.AppendToStream(ctx, "s", 1, events(1)))
	lsn2, err := store.PrimaryLSN(ctx)
	is.NoErr(err)
	is.True(lsn2 > lsn)

	got, err = store.ReadStreamForward(ctx, "s", 0, 10) // the standby, paused before the append
	is.NoErr(err)
	is.Equal(len(got), 1)
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 1)
	got, err = store.ReadStreamForward(ctx, "s", 0, 10, es.WithPrimary())
	is.NoErr(err)
	is.Equal(len(got), 2)
	got, err = store.ReadStreamForward(ctx, "s", 0, 10, es.WithMinLSNOrPrimary(lsn2))
	is.NoErr(err)
	is.Equal(len(got), 2)
	all, err = store.ReadAllForward(ctx, 0, 10, es.WithMinLSNOrPrimary(lsn2))
	is.NoErr(err)
	is.Equal(len(all), 2)
	ended, cancel := context.WithCancel(ctx)
	cancel()
	_, err = store.ReadStreamForward(ended, "s", 0, 10, es.WithMinLSN(lsn2))
	is.True(errors.Is(err, context.Canceled))

	waited := make(chan []es.RecordedEvent, 1)
	go func() {
		got, err := store.ReadAllForward(ctx, 0, 10, es.WithMinLSN(lsn2))
		if err != nil {
			t.Error(err)
		}
		waited <- got
	}()
	_, err = sdb.ExecContext(ctx, "SELECT pg_wal_replay_resume()")
	is.NoErr(err)
	is.Equal(len(<-waited), 2)
}

// failoverReport is what one failover run saw.
type failoverReport struct {
	acked, lost         int   // acknowledged events, and those missing after the promotion
	positions           int64 // $all's length on the new primary
	reassigned          int   // delivered positions holding another event after the promotion
	epochBefore, epochs int64 // the lease epoch before the kill, and the highest one after
}

// runFailover: two Stores (two processes) share one persistent $all subscription. The first,
// which holds its lease, reaches the primary alone (an instance lost with the primary's machine or
// cut off with it); the second has a multi-host read-write connection string. Four writers log
// every acknowledged append; once 500 are in, the primary is SIGKILLed mid-load and the standby
// promoted; the writers carry on against the new primary until 500 more are in. It checks what
// holds whatever the replication mode: $all on the new primary is 1..N with every event once, and
// the subscription is delivered by one holder at a time, by the second store under a new epoch
// after the promotion, the first one fenced.
func runFailover(t *testing.T, synchronous bool) failoverReport {
	is := is.New(t)
	ctx := t.Context()
	c := startReplicaCluster(t, synchronous)
	cfg := es.Config{LeaseDuration: time.Second, SubscriptionPollInterval: 100 * time.Millisecond}
	stores := []*es.Store{c.storeOn(t, c.primary.DSN("postgres"), cfg), c.store(t, cfg)}
	name := fmt.Sprintf("failover-%v", synchronous)
	log := &leaseChild{}
	log.logParent(t, name)

	var (
		mu        sync.Mutex
		acked     = map[uuid.UUID]bool{}
		delivered = map[int64]uuid.UUID{} // position -> event, as delivered (the last time)
		killed    atomic.Bool
		stop      atomic.Bool
		ackedN    atomic.Int64
		wg        sync.WaitGroup
	)
	for i, s := range stores {
		sub, err := s.SubscribeToAll(ctx, name, &es.SubscriptionOptions{BufferSize: 100, RetryInterval: 50 * time.Millisecond})
		is.NoErr(err)
		if i == 0 {
			<-sub.Subscribed() // the first store holds the lease
		}
		go func() {
			for batch := range sub.Events() {
				mu.Lock()
				for _, ev := range batch {
					delivered[ev.EventNumber] = ev.EventID
				}
				mu.Unlock()
				_ = sub.Ack(batch...)
			}
		}()
	}
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for !stop.Load() {
				batch := events(1 + rng.IntN(3))
				for i := range batch {
					batch[i].EventID = uuid.New()
				}
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := stores[1].AppendToStream(actx, fmt.Sprintf("w%d-%d", w, rng.IntN(4)), es.AnyVersion, batch)
				cancel()
				if err != nil {
					if !killed.Load() {
						t.Errorf("writer %d before the kill: %v", w, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the outage: try again, with new events
					continue
				}
				mu.Lock()
				for _, e := range batch {
					acked[e.EventID] = true
				}
				mu.Unlock()
				ackedN.Add(int64(len(batch)))
			}
		})
	}
	waitAcked := func(n int64) {
		for ackedN.Load() < n && !t.Failed() {
			time.Sleep(5 * time.Millisecond) // a wait for the writers, not a timed assertion
		}
	}
	waitAcked(500)
	log.mu.Lock()
	epochBefore := int64(0)
	for _, d := range log.deliveries {
		epochBefore = max(epochBefore, d.epoch)
	}
	log.mu.Unlock()
	killed.Store(true)
	c.primary.Kill()
	is.NoErr(c.standby.Promote(ctx))
	promoted := time.Now()
	atKill := ackedN.Load()
	waitAcked(atKill + 500)
	resumed := time.Since(promoted)
	stop.Store(true)
	wg.Wait()

	var all []es.RecordedEvent
	for ev, err := range stores[1].StreamAllForward(ctx, 0, es.WithPrimary()) {
		is.NoErr(err)
		all = append(all, ev)
	}
	seen := map[uuid.UUID]bool{}
	for i, ev := range all {
		if ev.EventNumber != int64(i+1) || seen[ev.EventID] {
			t.Fatalf("$all on the new primary: #%d is position %d, event %s (seen before: %v)", i, ev.EventNumber, ev.EventID, seen[ev.EventID])
		}
		seen[ev.EventID] = true
	}
	r := failoverReport{positions: int64(len(all)), epochBefore: epochBefore}
	mu.Lock()
	r.acked = len(acked)
	for id := range acked {
		if !seen[id] {
			r.lost++
		}
	}
	mu.Unlock()
	// The subscription reaches the new head, under a new lease.
	for {
		mu.Lock()
		_, done := delivered[r.positions]
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the subscription did not reach the new head")
		case <-time.After(10 * time.Millisecond):
		}
	}
	mu.Lock()
	for pos, id := range delivered {
		if pos > r.positions || all[pos-1].EventID != id {
			r.reassigned++
		}
	}
	mu.Unlock()
	log.mu.Lock()
	last := int64(0)
	for _, d := range log.deliveries { // in delivery order: one holder at a time, epochs only grow
		if d.epoch < last {
			t.Errorf("a delivery under epoch %d after one under epoch %d: two holders", d.epoch, last)
		}
		last = d.epoch
	}
	log.mu.Unlock()
	r.epochs = last
	is.True(r.epochs > r.epochBefore) // the lease was taken again after the promotion
	t.Logf("%s, %s standby: %d acknowledged events, %d lost; $all on the new primary 1..%d; %d delivered positions "+
		"now hold another event; lease epoch %d before the kill, %d after; appends resumed %s after the promotion",
		estest.Driver(), map[bool]string{true: "synchronous", false: "asynchronous"}[synchronous], r.acked, r.lost,
		r.positions, r.reassigned, r.epochBefore, r.epochs, resumed.Round(time.Millisecond))
	return r
}

// With a synchronous standby, a failover loses nothing acknowledged, and no position a
// subscriber was given changes meaning.
func TestFailoverSynchronousStandby(t *testing.T) {
	t.Parallel()
	r := runFailover(t, true)
	if r.lost != 0 || r.reassigned != 0 {
		t.Fatalf("synchronous standby: %d acknowledged events lost, %d delivered positions reassigned", r.lost, r.reassigned)
	}
}

// With an asynchronous standby, what was acknowledged but not yet streamed is lost: reported, not
// hidden (it may be nothing, when the standby kept up).
func TestFailoverAsynchronousStandby(t *testing.T) {
	t.Parallel()
	r := runFailover(t, false)
	t.Logf("asynchronous standby: %d of %d acknowledged events lost, %d delivered positions reassigned", r.lost, r.acked, r.reassigned)
}
