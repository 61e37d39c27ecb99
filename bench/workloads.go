package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// runWorkload runs one of the workloads that need a fresh, empty schema.
func (r *runner) runWorkload(ctx context.Context, e *env, name string) error {
	r.progress("%s [%s]: migrating a fresh schema", name, e.driver)
	f, err := e.newFixture(ctx)
	if err != nil {
		r.add(Result{Workload: name, Driver: e.driver, Err: err})
		return fmt.Errorf("%s [%s]: %w", name, e.driver, err)
	}
	defer f.close()
	var errs []error
	switch name {
	case Append1, Append100:
		perCall := 1
		if name == Append100 {
			perCall = 100
		}
		for _, n := range r.cfg.Levels {
			errs = append(errs, r.appendCase(ctx, f, "", perCall, n))
		}
	case OneStream:
		errs = append(errs, r.oneStream(ctx, f, 10))
	case Read:
		const stream = "read-stream"
		if err := f.store.AppendToStream(ctx, stream, es.NoStream, storeEvents(100)); err != nil {
			return fmt.Errorf("read [%s]: load the stream: %w", e.driver, err)
		}
		if err := f.raw.appendMany(ctx, stream, 1, 100); err != nil {
			return fmt.Errorf("read [%s]: load the raw stream: %w", e.driver, err)
		}
		for _, n := range r.cfg.Levels {
			errs = append(errs, r.readCase(ctx, f, "read a 100-event stream", stream, 100, n))
		}
	case LatencyWorkload:
		errs = append(errs, r.latency(ctx, f, 10))
	}
	return errors.Join(errs...)
}

// appendCase measures perCall-event appends by writers on distinct streams.
func (r *runner) appendCase(ctx context.Context, f *fixture, prefix string, perCall, writers int) error {
	res := Result{
		Workload: fmt.Sprintf("%sappend %s/call, %s, distinct streams", prefix, plural(perCall, "event", "events"), plural(writers, "writer", "writers")),
		Driver:   f.env.driver,
	}
	err := r.storeThenRaw(ctx, f, &res, writers, true,
		func(w int) op {
			stream := fmt.Sprintf("s-%s-%d", randHex(), w)
			evs := storeEvents(perCall)
			var version int64
			return func(ctx context.Context) (int, error) {
				if err := f.store.AppendToStream(ctx, stream, es.ExpectedVersion(version), evs); err != nil {
					return 0, err
				}
				version += int64(perCall)
				return perCall, nil
			}
		},
		func(w int) op {
			stream := fmt.Sprintf("r-%s-%d", randHex(), w)
			var version int64
			return func(ctx context.Context) (int, error) {
				var err error
				if perCall == 1 {
					err = f.raw.appendOne(ctx, stream, version+1)
				} else {
					err = f.raw.appendMany(ctx, stream, version+1, perCall)
				}
				if err != nil {
					return 0, err
				}
				version += int64(perCall)
				return perCall, nil
			}
		})
	r.add(res)
	return err
}

// oneStream measures writers appending 1 event per call to one stream with AnyVersion.
func (r *runner) oneStream(ctx context.Context, f *fixture, writers int) error {
	res := Result{
		Workload: fmt.Sprintf("append 1 event/call, %d writers, one stream (AnyVersion)", writers),
		Driver:   f.env.driver,
	}
	storeStream, rawStream := "one-"+randHex(), "one-"+randHex()
	err := r.storeThenRaw(ctx, f, &res, writers, true,
		func(int) op {
			evs := storeEvents(1)
			return func(ctx context.Context) (int, error) {
				return 1, f.store.AppendToStream(ctx, storeStream, es.AnyVersion, evs)
			}
		},
		func(int) op {
			return func(ctx context.Context) (int, error) {
				return 1, f.raw.appendAny(ctx, rawStream)
			}
		})
	r.add(res)
	return err
}

// storeThenRaw measures the store's ops against the baseline's (see compare), after a CHECKPOINT.
// With settle (appends), after each store slice it waits until the store's sequencer has caught
// up, so that its work does not overlap the baseline's slice, and notes how long that took.
func (r *runner) storeThenRaw(ctx context.Context, f *fixture, res *Result, workers int, settle bool, storeOp, rawOp func(w int) op) error {
	if err := f.env.pool(ctx, workers); err != nil {
		res.Err = err
		return fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, err)
	}
	f.env.checkpoint(ctx)
	var settled time.Duration
	store, raw, err := r.compare(ctx, workers, storeOp, rawOp, func() error {
		if !settle {
			return nil
		}
		began := time.Now()
		if _, err := f.store.ReadAllBackward(ctx, -1, 1); err != nil {
			return fmt.Errorf("settle $all: %w", err)
		}
		settled += time.Since(began)
		return nil
	})
	res.Store, res.Raw, res.Err = store, raw, err
	if per := settled / time.Duration(r.cfg.Rounds); per > 50*time.Millisecond {
		res.Notes = append(res.Notes, fmt.Sprintf("the $all sequencer needed %s on average after each store slice to catch up", per.Round(time.Millisecond)))
	}
	if res.Err != nil {
		return fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, res.Err)
	}
	return nil
}

// readCase measures readers reading the first want events of stream in a loop.
func (r *runner) readCase(ctx context.Context, f *fixture, what, stream string, want, readers int) error {
	res := Result{
		Workload: fmt.Sprintf("%s, %s", what, plural(readers, "reader", "readers")),
		Driver:   f.env.driver,
	}
	err := r.storeThenRaw(ctx, f, &res, readers, false,
		func(int) op {
			return func(ctx context.Context) (int, error) {
				evs, err := f.store.ReadStreamForward(ctx, stream, 0, 100)
				if err == nil && len(evs) != want {
					err = fmt.Errorf("read %d events of %s, want %d", len(evs), stream, want)
				}
				return len(evs), err
			}
		},
		func(int) op {
			return func(ctx context.Context) (int, error) {
				evs, err := f.raw.read(ctx, stream, 100)
				if err == nil && len(evs) != want {
					err = fmt.Errorf("read %d rows of %s, want %d", len(evs), stream, want)
				}
				return len(evs), err
			}
		})
	r.add(res)
	return err
}

// commitMark and deliverMark are what the latency workload's writers and subscriber leave for
// each other, keyed by event id: whichever comes second computes the latency.
type (
	commitMark  time.Time
	deliverMark time.Time
)

// latency measures append-commit to subscriber-delivery latency with writers appending 1 event
// per call on distinct streams and one persistent $all subscriber in this process.
func (r *runner) latency(ctx context.Context, f *fixture, writers int) error {
	res := Result{
		Workload: fmt.Sprintf("append-commit to $all delivery latency, %d writers x 1 event/call", writers),
		Driver:   f.env.driver,
	}
	err := r.latencyRun(ctx, f, writers, &res)
	res.Err = err
	r.add(res)
	if err != nil {
		return fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, err)
	}
	return nil
}

func (r *runner) latencyRun(ctx context.Context, f *fixture, writers int, res *Result) error {
	if err := f.env.pool(ctx, writers); err != nil {
		return err
	}
	f.env.checkpoint(ctx)
	subCtx, cancelSub := context.WithCancel(ctx)
	defer cancelSub()
	sub, err := f.store.SubscribeToAll(subCtx, "bench-latency", &es.SubscriptionOptions{
		StartFrom: es.StartCurrent, BufferSize: 100,
	})
	if err != nil {
		return err
	}
	defer sub.Close()
	select {
	case <-sub.Subscribed():
	case <-time.After(30 * time.Second):
		return errors.New("the subscription did not start within 30s")
	case <-ctx.Done():
		return ctx.Err()
	}

	var (
		marks    sync.Map
		mu       sync.Mutex
		samples  []time.Duration
		early    int
		from     atomic.Int64 // UnixNano of the measurement's start; 0 during the warm-up
		received atomic.Int64
		written  atomic.Int64
		inWindow atomic.Int64 // events committed during the measurement
		subErr   error
		subDone  = make(chan struct{})
	)
	record := func(commit, delivered time.Time) {
		start := from.Load()
		if start == 0 || commit.UnixNano() < start {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		d := delivered.Sub(commit)
		if d < 0 { // delivered before the writer saw its append return
			d, early = 0, early+1
		}
		samples = append(samples, d)
	}
	go func() {
		defer close(subDone)
		for batch := range sub.Events() {
			now := time.Now()
			for _, ev := range batch {
				if v, loaded := marks.LoadOrStore(ev.EventID, deliverMark(now)); loaded {
					marks.Delete(ev.EventID)
					record(time.Time(v.(commitMark)), now)
				}
			}
			received.Add(int64(len(batch)))
			if err := sub.Ack(batch...); err != nil {
				subErr = err
				return
			}
		}
	}()

	var stop atomic.Bool
	var wg sync.WaitGroup
	var writeErr error
	var errOnce sync.Once
	for w := range writers {
		stream := fmt.Sprintf("lat-%s-%d", randHex(), w)
		wg.Go(func() {
			evs := storeEvents(1)
			var version int64
			for !stop.Load() && ctx.Err() == nil {
				id := newID()
				evs[0].EventID = id
				if err := f.store.AppendToStream(ctx, stream, es.ExpectedVersion(version), evs); err != nil {
					errOnce.Do(func() { writeErr = err; stop.Store(true) })
					return
				}
				now := time.Now()
				version++
				written.Add(1)
				if start := from.Load(); start != 0 && now.UnixNano() >= start {
					inWindow.Add(1)
				}
				if v, loaded := marks.LoadOrStore(id, commitMark(now)); loaded {
					marks.Delete(id)
					record(now, time.Time(v.(deliverMark)))
				}
			}
		})
	}
	sleep := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	sleep(r.cfg.Warmup)
	t0 := time.Now()
	from.Store(t0.UnixNano())
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(samples)
	}
	for ctx.Err() == nil && !stop.Load() {
		sleep(20 * time.Millisecond)
		el := time.Since(t0)
		if (el >= r.cfg.Duration && count() >= r.cfg.LatencyMinEvents) || el >= 4*r.cfg.Duration {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	window := time.Since(t0)
	if writeErr != nil {
		return writeErr
	}
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < written.Load() && time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-subDone:
			return fmt.Errorf("the subscriber stopped: %v %v", subErr, sub.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if got, want := received.Load(), written.Load(); got < want {
		return fmt.Errorf("delivered %d of %d events within 30s of the last append", got, want)
	}
	cancelSub()
	<-subDone
	if subErr != nil {
		return subErr
	}
	mu.Lock()
	defer mu.Unlock()
	if len(samples) == 0 {
		return errors.New("no delivery measured")
	}
	slices.Sort(samples)
	pct := func(p float64) time.Duration { return samples[min(len(samples)-1, int(p*float64(len(samples))))] }
	res.Latency = &Latency{
		N: len(samples), P50: pct(0.50), P99: pct(0.99), Max: samples[len(samples)-1],
		Rate: float64(inWindow.Load()) / window.Seconds(),
	}
	res.Store = float64(res.Latency.P50) / float64(time.Millisecond)
	res.Notes = append(res.Notes, fmt.Sprintf("writers appended %s meanwhile", FormatRate(res.Latency.Rate)))
	if early > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d events were delivered before their writer's AppendToStream returned (counted as 0)", early))
	}
	return nil
}

// runLoaded preloads Config.LoadEvents events into a fresh schema (store and baseline), then
// runs the catch-up and big workloads on it.
func (r *runner) runLoaded(ctx context.Context, e *env, catchup, big bool) error {
	r.progress("preload [%s]: migrating a fresh schema", e.driver)
	f, err := e.newFixture(ctx)
	if err != nil {
		return fmt.Errorf("preload [%s]: %w", e.driver, err)
	}
	defer f.close()
	streams, err := r.preload(ctx, f)
	if err != nil {
		return err
	}
	var errs []error
	if catchup {
		errs = append(errs, r.catchUp(ctx, f))
	}
	if big {
		prefix := fmt.Sprintf("[%s loaded] ", thousands(int64(r.cfg.LoadEvents)))
		for _, perCall := range []int{1, 100} {
			for _, n := range r.cfg.BigLevels {
				errs = append(errs, r.appendCase(ctx, f, prefix, perCall, n))
			}
		}
		mid := streams[len(streams)/2]
		what := fmt.Sprintf("%sread the first 100 events of a %d-event stream", prefix, mid.events)
		for _, n := range r.cfg.Levels {
			errs = append(errs, r.readCase(ctx, f, what, mid.name, min(100, mid.events), n))
		}
	}
	return errors.Join(errs...)
}

type loadStream struct {
	name   string
	events int
}

// preload writes Config.LoadEvents events to both sides, LoadBatch per call on new streams from
// LoadWriters goroutines, and reports both rates. The store's time runs until $all has
// sequenced everything.
func (r *runner) preload(ctx context.Context, f *fixture) ([]loadStream, error) {
	c := r.cfg
	var streams []loadStream
	for left, i := c.LoadEvents, 0; left > 0; i++ {
		n := min(left, c.LoadBatch)
		streams = append(streams, loadStream{name: fmt.Sprintf("load-%07d", i), events: n})
		left -= n
	}
	res := Result{
		Workload: fmt.Sprintf("preload %s events (%d/call, %d writers)", thousands(int64(c.LoadEvents)), c.LoadBatch, c.LoadWriters),
		Driver:   f.env.driver,
	}
	fail := func(err error) ([]loadStream, error) {
		res.Err = err
		r.add(res)
		return nil, fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, err)
	}
	if err := f.env.pool(ctx, c.LoadWriters); err != nil {
		return fail(err)
	}
	run := func(write func(ctx context.Context, s loadStream) error) (time.Duration, error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		var errOnce sync.Once
		var firstErr error
		began := time.Now()
		for range c.LoadWriters {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := int(next.Add(1)) - 1
					if i >= len(streams) {
						return
					}
					if err := write(ctx, streams[i]); err != nil {
						errOnce.Do(func() { firstErr = err; next.Store(int64(len(streams))) })
						return
					}
				}
			})
		}
		wg.Wait()
		if firstErr == nil {
			firstErr = ctx.Err()
		}
		return time.Since(began), firstErr
	}

	f.env.checkpoint(ctx)
	r.progress("preload [%s]: store, %s events", f.env.driver, thousands(int64(c.LoadEvents)))
	full := storeEvents(c.LoadBatch)
	appendDur, err := run(func(ctx context.Context, s loadStream) error {
		return f.store.AppendToStream(ctx, s.name, es.NoStream, full[:s.events])
	})
	if err != nil {
		return fail(fmt.Errorf("store: %w", err))
	}
	began := time.Now()
	if _, err := f.store.ReadAllBackward(ctx, -1, 1); err != nil {
		return fail(fmt.Errorf("store: settle $all: %w", err))
	}
	settle := time.Since(began)
	res.Store = float64(c.LoadEvents) / (appendDur + settle).Seconds()
	res.Notes = append(res.Notes, fmt.Sprintf("store: appends took %s (%s), $all was complete %s later",
		appendDur.Round(time.Millisecond), FormatRate(float64(c.LoadEvents)/appendDur.Seconds()), settle.Round(time.Millisecond)))

	f.env.checkpoint(ctx)
	r.progress("preload [%s]: raw, %s rows", f.env.driver, thousands(int64(c.LoadEvents)))
	rawDur, err := run(func(ctx context.Context, s loadStream) error {
		return f.raw.appendMany(ctx, s.name, 1, s.events)
	})
	if err != nil {
		return fail(fmt.Errorf("raw: %w", err))
	}
	res.Raw = float64(c.LoadEvents) / rawDur.Seconds()
	r.add(res)

	r.progress("preload [%s]: VACUUM (ANALYZE) and CHECKPOINT", f.env.driver)
	began = time.Now()
	if err := f.vacuum(ctx); err != nil {
		return nil, fmt.Errorf("preload [%s]: %w", f.env.driver, err)
	}
	f.env.checkpoint(ctx)
	r.progress("preload [%s]: vacuumed and checkpointed in %s", f.env.driver, time.Since(began).Round(time.Millisecond))
	return streams, nil
}

// catchUp measures a persistent $all subscription reading the preloaded events from the origin,
// acknowledging each batch, against keyset-paged reads of the baseline's rows.
func (r *runner) catchUp(ctx context.Context, f *fixture) error {
	n := r.cfg.LoadEvents
	res := Result{
		Workload: fmt.Sprintf("$all catch-up of %s events (raw: keyset-paged SELECT, 1000 rows/page)", thousands(int64(n))),
		Driver:   f.env.driver,
	}
	var errs []error
	if err := f.env.pool(ctx, 2); err != nil {
		errs = append(errs, err)
	}
	f.env.checkpoint(ctx)
	r.progress("catch-up [%s]: store", f.env.driver)
	rate, err := r.catchUpStore(ctx, f, n)
	if err != nil {
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	res.Store = rate
	f.env.checkpoint(ctx)
	r.progress("catch-up [%s]: raw", f.env.driver)
	began := time.Now()
	var stream string
	var version int64
	got := 0
	for got < n && ctx.Err() == nil {
		page, err := f.raw.pageAfter(ctx, stream, version, 1000)
		if err != nil {
			errs = append(errs, fmt.Errorf("raw: %w", err))
			break
		}
		if len(page) == 0 {
			errs = append(errs, fmt.Errorf("raw: read %d rows, want %d", got, n))
			break
		}
		got += len(page)
		last := page[len(page)-1]
		stream, version = last.stream, last.version
	}
	if got == n {
		res.Raw = float64(n) / time.Since(began).Seconds()
	}
	res.Err = errors.Join(errs...)
	r.add(res)
	if res.Err != nil {
		return fmt.Errorf("%s [%s]: %w", res.Workload, res.Driver, res.Err)
	}
	return nil
}

func (r *runner) catchUpStore(ctx context.Context, f *fixture, n int) (float64, error) {
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	began := time.Now()
	sub, err := f.store.SubscribeToAll(subCtx, "bench-catchup", &es.SubscriptionOptions{
		StartFrom: es.StartOrigin, BufferSize: 1000, MaxQueueSize: 5000, CheckpointThreshold: 1000,
	})
	if err != nil {
		return 0, err
	}
	defer sub.Close()
	got := 0
	var last int64
	stall := time.NewTimer(time.Minute)
	defer stall.Stop()
	for got < n {
		select {
		case batch, ok := <-sub.Events():
			if !ok {
				return 0, fmt.Errorf("subscription ended after %d events: %v", got, sub.Err())
			}
			for _, ev := range batch {
				if ev.EventNumber != last+1 {
					return 0, fmt.Errorf("event %d after %d", ev.EventNumber, last)
				}
				last = ev.EventNumber
			}
			if err := sub.Ack(batch...); err != nil {
				return 0, err
			}
			got += len(batch)
			stall.Reset(time.Minute)
		case <-stall.C:
			return 0, fmt.Errorf("no event for a minute after %d events", got)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return float64(n) / time.Since(began).Seconds(), nil
}

// method explains how each workload's two sides run, for the report.
func (r *runner) method() []string {
	c := r.cfg
	return []string{
		"Store: es.New with the default es.Config but Schema, ListenDSN (the same database) and a JSONSerializer with the " +
			"event type registered as json.RawMessage, so reads copy the data instead of decoding it (metadata is a map, " +
			"encoded and decoded as JSON). No call runs in a caller's transaction. The store's background work (the $all " +
			"sequencer) runs in the same process and counts against the store. Both sides run prepared statements (the raw " +
			"side prepares each of its statements once with database/sql), so neither pays lib/pq's extra parse round trip.",
		"Appends, distinct streams: every writer appends to a stream of its own. Store: AppendToStream with the exact expected " +
			"version the writer tracks (0 first). Raw: 1 event per call = one INSERT ... VALUES statement in its own autocommit " +
			"transaction; 100 events per call = one INSERT ... SELECT unnest($1::uuid[]), ..., unnest($6::bytea[]) statement, " +
			"autocommit (arrays passed as pq.Array under lib/pq and as native slices under pgx, UUIDs as [16]byte under pgx, as the " +
			"store passes them); the writer tracks versions.",
		"One stream, AnyVersion: Store: AppendToStream(AnyVersion) by every writer. Raw: one autocommit statement that upserts " +
			"the stream's counter row in raw_streams (INSERT ... ON CONFLICT DO UPDATE SET stream_version = stream_version + 1 " +
			"RETURNING) and inserts the event at the returned version, so the raw writers queue on one row lock as the store's do " +
			"and versions stay contiguous; a sequence (gaps, commit order differs from version order) or max+1 (unique violations " +
			"and retries) would not be the same work.",
		"Reads: Store: ReadStreamForward(stream, 0, 100). Raw: SELECT every column WHERE stream_name = $1 ORDER BY " +
			"stream_version LIMIT 100, scanned into a struct. All readers read the same stream.",
		fmt.Sprintf("Preload: Store: AppendToStream(NoStream) of %d events per new stream, %d goroutines, timed until $all has "+
			"sequenced every event (ReadAllBackward settles it). Raw: INSERT ... SELECT unnest(...) of the same rows, same "+
			"streams and concurrency. Then VACUUM (ANALYZE) of the schema's tables and a CHECKPOINT, untimed.", c.LoadBatch, c.LoadWriters),
		"Catch-up: Store: SubscribeToAll from the origin (BufferSize 1000, MaxQueueSize 5000, CheckpointThreshold 1000), " +
			"Ack(batch...) of each batch, timed from the subscribe call to the last ack. Raw: keyset-paged SELECT of every " +
			"column, WHERE (stream_name, stream_version) > ($last) ORDER BY stream_name, stream_version LIMIT 1000, one " +
			"connection (raw_events has no global position, so its unique index is the keyset).",
		"Latency: 10 writers append 1 event per call (exact expected version, distinct streams) as fast as they can; one " +
			"persistent SubscribeToAll subscriber in the same process (StartCurrent, BufferSize 100, other options default, " +
			"so CheckpointThreshold 1) acks each batch. Latency = time the batch reached the subscriber - time the writer's " +
			"AppendToStream returned. No raw baseline.",
		"Big: the append and read workloads run again in the preloaded schema (the store holding the preloaded events, " +
			"raw_events the same rows); the read reads the first 100 events of a preloaded stream.",
		"Soak (--soak only): 10 writers append 1 event per call (exact expected version; a new stream every 1,000 events) " +
			"on tickers that give the total rate, while a persistent SubscribeToAll (delivery latency as above) and a " +
			"SubscribeToCategory of the writers' category ack every batch. Each interval reports the appends' latency " +
			"percentiles, the delivery p99, the store's sequencer passes from their OpenTelemetry spans (passes that " +
			"numbered appends; round trip and commit included), and the pending table's rows, total size, dead rows and " +
			"autovacuum count from pg_stat_user_tables (whose counters PostgreSQL reports with a delay of up to a second).",
		"Append parts (--workloads appendparts only): 1-event appends, exact expected version, distinct streams, 1 and 10 " +
			"writers, each part against the raw INSERT in the same alternating slices. Parts: an UPDATE of the writer's row " +
			"in parts_streams (id, unique name, version) checked against the expected version; the floor, that UPDATE and " +
			"the event's INSERT into parts_events (primary key, unique stream and version) in one statement; the store's " +
			"AppendToStream with SequencerInterval and SequencerDelay of an hour, so that no $all pass runs while it is " +
			"timed; AppendToStream as shipped.",
	}
}
