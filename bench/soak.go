package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// Soak is the sustained-load workload, run for Config.SoakDuration: SoakWriters writers append 1 event per call
// at a fixed total rate (Config.SoakRate) to streams of their own, while persistent subscriptions
// run: one to $all that measures delivery latency, and one to the writers' category. Every
// Config.SoakInterval it reports the interval's append latency p50/p99, delivery p99, the
// sequencer passes and their time, and the pending queue's rows, size and dead rows. Nothing of
// it should trend upward. Not part of any default run.
const Soak = "soak"

// SoakWriters is how many writers the soak runs.
const SoakWriters = 10

// soakSample is what one interval of the soak measured.
type soakSample struct {
	at                     time.Duration
	appended               int
	appendP50, appendP99   time.Duration
	deliverP99             time.Duration
	passes                 int
	passMean, passP99      time.Duration
	pendingRows, deadTuple int64
	pendingBytes           int64
	allDead, eventsDead    int64
	autovacuums            int64
}

func (s soakSample) String() string {
	return fmt.Sprintf("%6s: appended %s/s, append p50 %s p99 %s, delivery p99 %s, sequencer %d passes mean %s p99 %s, "+
		"pending %d rows %s dead %d (autovacuums %d), dead rows all_events %d events %d",
		s.at.Round(time.Second), thousands(int64(s.appended)), ms(s.appendP50), ms(s.appendP99), ms(s.deliverP99),
		s.passes, ms(s.passMean), ms(s.passP99), s.pendingRows, kb(s.pendingBytes), s.deadTuple, s.autovacuums,
		s.allDead, s.eventsDead)
}

func kb(b int64) string { return fmt.Sprintf("%d kB", b/1024) }

// passTimes records the duration of the store's sequencer passes from their spans
// (eventstore.sequencer.pass: a pass that numbered appends, round trip and commit included).
type passTimes struct {
	mu sync.Mutex
	d  []time.Duration
}

func (p *passTimes) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (p *passTimes) OnEnd(s sdktrace.ReadOnlySpan) {
	if s.Name() != "eventstore.sequencer.pass" {
		return
	}
	p.mu.Lock()
	p.d = append(p.d, s.EndTime().Sub(s.StartTime()))
	p.mu.Unlock()
}
func (p *passTimes) Shutdown(context.Context) error   { return nil }
func (p *passTimes) ForceFlush(context.Context) error { return nil }

func (p *passTimes) take() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.d
	p.d = nil
	return d
}

// durations collects latencies from many goroutines, taken interval by interval.
type durations struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *durations) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *durations) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.d
	l.d = nil
	return d
}

// pct is the p-th quantile of d (sorted in place), 0 when empty.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(p*float64(len(d))))]
}

func mean(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return sum / time.Duration(len(d))
}

func (r *runner) soak(ctx context.Context, e *env) error {
	c := r.cfg
	res := Result{
		Workload: fmt.Sprintf("soak: %d writers at %s, %s", SoakWriters, FormatRate(float64(c.SoakRate)), c.SoakDuration),
		Driver:   e.driver,
	}
	samples, err := r.soakRun(ctx, e, &res)
	for _, s := range samples {
		res.Notes = append(res.Notes, s.String())
	}
	if len(samples) >= 2 {
		res.Notes = append(res.Notes, soakTrend(samples))
	}
	res.Err = err
	r.add(res)
	if err != nil {
		return fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, err)
	}
	return nil
}

func (r *runner) soakRun(ctx context.Context, e *env, res *Result) ([]soakSample, error) {
	c := r.cfg
	passes := &passTimes{}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(passes))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	r.progress("soak [%s]: migrating a fresh schema", e.driver)
	f, err := e.newFixture(ctx, func(cfg *es.Config) { cfg.TracerProvider = tp })
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := e.pool(ctx, SoakWriters+2); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		appendLat, deliverLat durations
		marks                 sync.Map // event id -> commit time (commitMark) or delivery time (deliverMark)
		failed                atomic.Pointer[error]
	)
	fail := func(err error) {
		if err != nil && ctx.Err() == nil {
			failed.CompareAndSwap(nil, &err)
			cancel()
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	// Subscribers: $all (delivery latency) and the writers' category; both ack every batch.
	category := "soak" + randHex()[:6]
	subscribe := func(name string, sub func() (*es.Subscriber, error), onBatch func([]es.RecordedEvent)) error {
		s, err := sub()
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", name, err)
		}
		select {
		case <-s.Subscribed():
		case <-time.After(30 * time.Second):
			return fmt.Errorf("subscription %s did not start within 30s", name)
		}
		wg.Go(func() {
			defer s.Close()
			for batch := range s.Events() {
				onBatch(batch)
				if err := s.Ack(batch...); err != nil {
					fail(err)
					return
				}
			}
			if err := s.Err(); err != nil && ctx.Err() == nil {
				fail(fmt.Errorf("subscription %s: %w", name, err))
			}
		})
		return nil
	}
	opts := &es.SubscriptionOptions{StartFrom: es.StartCurrent, BufferSize: 100}
	if err := subscribe("$all", func() (*es.Subscriber, error) { return f.store.SubscribeToAll(ctx, "soak-all", opts) },
		func(batch []es.RecordedEvent) {
			now := time.Now()
			for _, ev := range batch {
				if v, loaded := marks.LoadOrStore(ev.EventID, deliverMark(now)); loaded {
					marks.Delete(ev.EventID)
					deliverLat.add(max(0, now.Sub(time.Time(v.(commitMark)))))
				}
			}
		}); err != nil {
		return nil, err
	}
	if err := subscribe("category", func() (*es.Subscriber, error) {
		return f.store.SubscribeToCategory(ctx, category, "soak-category", opts)
	}, func([]es.RecordedEvent) {}); err != nil {
		return nil, err
	}

	// Writers: each appends 1 event per tick to its own stream, a new stream every 1,000 events.
	perWriter := time.Duration(float64(time.Second) * SoakWriters / float64(c.SoakRate))
	var appended atomic.Int64
	for w := range SoakWriters {
		wg.Go(func() {
			tick := time.NewTicker(perWriter)
			defer tick.Stop()
			evs := storeEvents(1)
			stream, version := "", int64(0)
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if n%1000 == 0 {
					stream, version = fmt.Sprintf("%s-%d-%d", category, w, n/1000), 0
				}
				id := newID()
				evs[0].EventID = id
				began := time.Now()
				if err := f.store.AppendToStream(ctx, stream, es.ExpectedVersion(version), evs); err != nil {
					fail(err)
					return
				}
				now := time.Now()
				appendLat.add(now.Sub(began))
				version++
				appended.Add(1)
				if _, loaded := marks.LoadOrStore(id, commitMark(now)); loaded {
					marks.Delete(id)
					deliverLat.add(0) // delivered before AppendToStream returned
				}
			}
		})
	}

	// Reports.
	var samples []soakSample
	began := time.Now()
	q := pgident.Quote(f.schema)
	ticker := time.NewTicker(c.SoakInterval)
	defer ticker.Stop()
	var lastAppended int64
	r.progress("soak [%s]: %d writers at %s for %s, reporting every %s", e.driver, SoakWriters, FormatRate(float64(c.SoakRate)), c.SoakDuration, c.SoakInterval)
	for time.Since(began) < c.SoakDuration {
		select {
		case <-ctx.Done():
			if p := failed.Load(); p != nil {
				return samples, *p
			}
			return samples, ctx.Err()
		case <-ticker.C:
		}
		s := soakSample{at: time.Since(began)}
		n := appended.Load()
		s.appended = int(float64(n-lastAppended) / c.SoakInterval.Seconds())
		lastAppended = n
		al := appendLat.take()
		s.appendP50, s.appendP99 = pct(al, 0.5), pct(al, 0.99)
		s.deliverP99 = pct(deliverLat.take(), 0.99)
		pt := passes.take()
		s.passes, s.passMean, s.passP99 = len(pt), mean(pt), pct(pt, 0.99)
		err := e.db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM `+q+`.pending), pg_total_relation_size('`+q+`.pending'),
       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'pending'), 0),
       coalesce((SELECT autovacuum_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'pending'), 0),
       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'all_events'), 0),
       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'events'), 0)`, f.schema).
			Scan(&s.pendingRows, &s.pendingBytes, &s.deadTuple, &s.autovacuums, &s.allDead, &s.eventsDead)
		if err != nil {
			return samples, fmt.Errorf("soak statistics: %w", err)
		}
		samples = append(samples, s)
		r.progress("soak [%s] %s", e.driver, s)
	}
	cancel()
	wg.Wait()
	if p := failed.Load(); p != nil {
		return samples, *p
	}
	res.Store = float64(appended.Load()) / time.Since(began).Seconds()
	return samples, nil
}

// soakTrend compares the last third of the intervals with the first third (the first interval,
// a warm-up, left out when there are enough).
func soakTrend(samples []soakSample) string {
	if len(samples) >= 4 {
		samples = samples[1:]
	}
	k := max(1, len(samples)/3)
	first, last := samples[:k], samples[len(samples)-k:]
	avg := func(ss []soakSample, f func(soakSample) float64) float64 {
		var sum float64
		for _, s := range ss {
			sum += f(s)
		}
		return sum / float64(len(ss))
	}
	var parts []string
	for _, m := range []struct {
		name string
		f    func(soakSample) float64
	}{
		{"append p99 ms", func(s soakSample) float64 { return float64(s.appendP99) / 1e6 }},
		{"delivery p99 ms", func(s soakSample) float64 { return float64(s.deliverP99) / 1e6 }},
		{"pass mean ms", func(s soakSample) float64 { return float64(s.passMean) / 1e6 }},
		{"pending kB", func(s soakSample) float64 { return float64(s.pendingBytes) / 1024 }},
		{"pending dead rows", func(s soakSample) float64 { return float64(s.deadTuple) }},
	} {
		parts = append(parts, fmt.Sprintf("%s %.1f -> %.1f", m.name, avg(first, m.f), avg(last, m.f)))
	}
	return fmt.Sprintf("trend, first %d against last %d intervals: %s", k, k, strings.Join(parts, ", "))
}
