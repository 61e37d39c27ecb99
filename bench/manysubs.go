package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// ManySubs runs Config.Subscriptions (1,000) persistent $all subscriptions in one process on a
// 20-connection pool:
// connections in use, memory, queries while idle, and delivery latency while 10 writers append.
const ManySubs = "manysubs"

// Shape of the ManySubs workload.
const (
	manySubsPool    = 20
	manySubsWriters = 10
	manySubsEvery   = 100 * time.Millisecond // each writer's pace: 100 appends/s in all
)

// manySubs measures ManySubsCount persistent subscriptions of $all in one Store.
func (r *runner) manySubs(ctx context.Context, e *env) error {
	res := Result{
		Workload: fmt.Sprintf("%s persistent $all subscriptions in one process, %d-connection pool: append-commit to delivery, %d writers x %d appends/s",
			thousands(int64(r.cfg.Subscriptions)), manySubsPool, manySubsWriters, int(time.Second/manySubsEvery)),
		Driver: e.driver,
	}
	err := r.manySubsRun(ctx, e, &res)
	res.Err = err
	r.add(res)
	if err != nil {
		return fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, err)
	}
	return nil
}

func (r *runner) manySubsRun(ctx context.Context, e *env, res *Result) error {
	r.progress("%s [%s]: migrating a fresh schema", ManySubs, e.driver)
	f, err := e.newFixture(ctx)
	if err != nil {
		return err
	}
	defer f.close()
	e.db.SetMaxOpenConns(manySubsPool)
	e.db.SetMaxIdleConns(manySubsPool)
	defer e.db.SetMaxOpenConns(0)

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// The store's own background work (the sequencer's polls) with no subscription, to tell
	// apart what the subscriptions add.
	idle := min(max(r.cfg.Duration, 100*time.Millisecond), 3*time.Second)
	// PostgreSQL 15 backends report their counters up to 10 s late when idle
	// (PGSTAT_IDLE_INTERVAL): a measurement waits that long after a burst of work.
	settle := 11 * time.Second
	if r.cfg.Duration < time.Second {
		settle = idle // the test harness: figures do not matter there
	}
	time.Sleep(settle)
	b0, err := e.commits(ctx)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	b1, err := e.commits(ctx)
	if err != nil {
		return err
	}

	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	var (
		commits  sync.Map // event id -> commit time
		mu       sync.Mutex
		samples  []time.Duration
		measure  atomic.Bool
		received atomic.Int64
		subErr   error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	subs := make([]*es.Subscriber, r.cfg.Subscriptions)
	for i := range subs {
		sub, err := f.store.SubscribeToAll(subCtx, fmt.Sprintf("many-%04d", i), &es.SubscriptionOptions{StartFrom: es.StartCurrent, BufferSize: 100})
		if err != nil {
			return fmt.Errorf("subscribe %d: %w", i, err)
		}
		subs[i] = sub
	}
	r.progress("%s [%s]: %d subscriptions created; waiting for their leases", ManySubs, e.driver, r.cfg.Subscriptions)
	for _, sub := range subs {
		select {
		case <-sub.Subscribed():
		case <-time.After(time.Minute):
			return errors.New("subscriptions not running within a minute")
		}
	}
	for _, sub := range subs {
		wg.Go(func() {
			var local []time.Duration
			for batch := range sub.Events() {
				now := time.Now()
				if measure.Load() {
					for _, ev := range batch {
						if v, ok := commits.Load(ev.EventID); ok {
							local = append(local, max(now.Sub(v.(time.Time)), 0))
						}
					}
				}
				received.Add(int64(len(batch)))
				if err := sub.Ack(batch[len(batch)-1]); err != nil {
					errOnce.Do(func() { subErr = err })
				}
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		})
	}

	// Idle: what the subscriptions cost with nothing to deliver, once their first reads are done
	// and counted.
	time.Sleep(settle)
	x0, err := e.commits(ctx)
	if err != nil {
		return err
	}
	time.Sleep(idle)
	x1, err := e.commits(ctx)
	if err != nil {
		return err
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	idleStats := e.db.Stats()

	// Load: writers at a fixed pace.
	measure.Store(true)
	var written atomic.Int64
	var maxInUse atomic.Int64
	stop := make(chan struct{})
	var writers sync.WaitGroup
	var writeErr error
	var writeOnce sync.Once
	for w := range manySubsWriters {
		stream := fmt.Sprintf("many-%s-%d", randHex(), w)
		writers.Go(func() {
			evs := storeEvents(1)
			tick := time.NewTicker(manySubsEvery)
			defer tick.Stop()
			for v := int64(0); ; v++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				id := newID()
				evs[0].EventID = id
				if err := f.store.AppendToStream(ctx, stream, es.ExpectedVersion(v), evs); err != nil {
					writeOnce.Do(func() { writeErr = err })
					return
				}
				commits.Store(id, time.Now())
				written.Add(1)
				maxInUse.Store(max(maxInUse.Load(), int64(e.db.Stats().InUse)))
			}
		})
	}
	time.Sleep(r.cfg.Duration)
	close(stop)
	writers.Wait()
	if writeErr != nil {
		return writeErr
	}
	want := written.Load() * int64(r.cfg.Subscriptions)
	deadline := time.Now().Add(time.Minute)
	for received.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if got := received.Load(); got < want {
		return fmt.Errorf("delivered %d of %d events within a minute of the last append", got, want)
	}
	cancelSubs()
	wg.Wait()
	if subErr != nil {
		return subErr
	}
	slices.Sort(samples)
	if len(samples) == 0 {
		return errors.New("no delivery measured")
	}
	pct := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	res.Latency = &Latency{N: len(samples), P50: pct(0.5), P99: pct(0.99), Max: samples[len(samples)-1],
		Rate: float64(written.Load()) / r.cfg.Duration.Seconds()}
	res.Store = float64(res.Latency.P50) / float64(time.Millisecond)
	res.Notes = append(res.Notes,
		fmt.Sprintf("idle: %.1f transactions/s in the database with %s subscriptions running, %.1f without any (the sequencer's polls), so %.1f/s for the subscriptions (pg_stat_database.xact_commit over %s each)",
			float64(x1-x0)/idle.Seconds(), thousands(int64(r.cfg.Subscriptions)), float64(b1-b0)/idle.Seconds(), float64((x1-x0)-(b1-b0))/idle.Seconds(), idle),
		fmt.Sprintf("connections: %d open and %d in use while idle; at most %d in use seen by the writers under load (pool of %d)", idleStats.OpenConnections, idleStats.InUse, maxInUse.Load(), manySubsPool),
		fmt.Sprintf("memory: Go heap %.1f MB with the subscriptions running, %.1f MB before (%.1f KB per subscription)",
			float64(after.HeapAlloc)/1e6, float64(before.HeapAlloc)/1e6, float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1e3/float64(r.cfg.Subscriptions)),
		fmt.Sprintf("%s deliveries: every event to every subscription", thousands(want)))
	return nil
}

// commits reads the database's committed transactions so far.
func (e *env) commits(ctx context.Context) (int64, error) {
	var n int64
	err := e.db.QueryRowContext(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
	return n, err
}
