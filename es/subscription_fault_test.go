package es_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgtest"
)

// Fault tests for persistent subscriptions: the LISTEN connection killed, the server restarted,
// the subscribing process killed, subscribers slower than their writers, appends made while the
// listener is down, and the connection holding a subscription's lock killed. Writers run
// concurrently; every test asserts that each committed event is delivered (at least once after a
// failure: duplicates are allowed, gaps are not), in order per subscriber and per stream, and
// that the checkpoint finally reaches the last position.

// ledger records the events whose append committed: event id -> stream.
type ledger struct {
	mu  sync.Mutex
	ids map[uuid.UUID]string
}

func newLedger() *ledger { return &ledger{ids: map[uuid.UUID]string{}} }

func (l *ledger) add(stream string, batch []es.EventData) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range batch {
		l.ids[e.EventID] = stream
	}
}

func (l *ledger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

// of returns the committed ids of stream, or of every stream for es.AllStream.
func (l *ledger) of(stream string) map[uuid.UUID]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[uuid.UUID]bool{}
	for id, s := range l.ids {
		if stream == es.AllStream || s == stream {
			out[id] = true
		}
	}
	return out
}

type writerOptions struct {
	writers  int           // goroutines
	streams  int           // they append to streams s-0 .. s-(streams-1), AnyVersion
	maxBatch int           // 1..maxBatch events per append
	pause    time.Duration // between appends: pacing, not synchronization
	limit    int           // stop once this many events committed (0: until stopped)
	retry    bool          // retry failed appends with the same event ids
}

// writers append concurrently until stopped (or their limit), recording committed events.
type writers struct {
	l    *ledger
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

func startWriters(t *testing.T, store *es.Store, o writerOptions) *writers {
	t.Helper()
	w := &writers{l: newLedger(), stop: make(chan struct{})}
	ctx := t.Context()
	for range o.writers {
		w.wg.Go(func() {
			for {
				select {
				case <-w.stop:
					return
				default:
				}
				if o.limit > 0 && w.l.len() >= o.limit {
					return
				}
				stream := fmt.Sprintf("s-%d", mrand.IntN(o.streams))
				batch := events(1 + mrand.IntN(o.maxBatch))
				for i := range batch {
					batch[i].EventID = uuid.New()
				}
				if err := appendCommitted(ctx, store, stream, batch, o.retry); err != nil {
					if ctx.Err() == nil {
						t.Errorf("writer: %v", err)
					}
					return
				}
				w.l.add(stream, batch)
				if o.pause > 0 {
					time.Sleep(o.pause)
				}
			}
		})
	}
	t.Cleanup(w.Stop)
	return w
}

// Wait waits until the writers reached their limit.
func (w *writers) Wait() { w.wg.Wait() }

// Stop stops the writers and waits for them: every batch they started is then resolved.
func (w *writers) Stop() {
	w.once.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// appendCommitted appends batch. With retry, a failed append is retried with the same event ids
// until it succeeds, or proves to have committed before (ErrDuplicateEvent on a retry).
func appendCommitted(ctx context.Context, store *es.Store, stream string, batch []es.EventData, retry bool) error {
	deadline := time.Now().Add(wait)
	for attempt := 0; ; attempt++ {
		err := store.AppendToStream(ctx, stream, es.AnyVersion, batch)
		switch {
		case err == nil:
			return nil
		case attempt > 0 && errors.Is(err, es.ErrDuplicateEvent):
			return nil // an earlier attempt committed; appends are atomic
		case !retry || ctx.Err() != nil || time.Now().After(deadline):
			return fmt.Errorf("append to %s (attempt %d): %w", stream, attempt+1, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond): // retry backoff
		}
	}
}

// tracker checks deliveries as they arrive: no gaps (each new position is the next one, in
// contiguous mode), every stream's events in version order, and a redelivered position always
// the same event.
type tracker struct {
	name       string
	contiguous bool // one subscriber: positions arrive in order without gaps
	anyStart   bool // the first position (and each stream's first version) may be anything

	mu      sync.Mutex
	started bool
	first   int64
	max     int64
	byPos   map[int64]uuid.UUID
	lastVer map[string]int64
	dups    int
	errs    []string
}

func newTracker(name string, contiguous, anyStart bool) *tracker {
	return &tracker{name: name, contiguous: contiguous, anyStart: anyStart,
		byPos: map[int64]uuid.UUID{}, lastVer: map[string]int64{}}
}

func (tr *tracker) fail(format string, args ...any) {
	if len(tr.errs) < 20 {
		tr.errs = append(tr.errs, fmt.Sprintf(format, args...))
	}
}

func (tr *tracker) add(evs ...es.RecordedEvent) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, ev := range evs {
		pos := ev.EventNumber
		if id, ok := tr.byPos[pos]; ok {
			if id != ev.EventID {
				tr.fail("position %d delivered as %s and as %s", pos, id, ev.EventID)
			}
			tr.dups++
			continue
		}
		if !tr.started {
			tr.started, tr.first = true, pos
			if tr.anyStart {
				tr.max = pos - 1
			}
		}
		if tr.contiguous && pos != tr.max+1 {
			tr.fail("position %d delivered after %d: a gap or out of order", pos, tr.max)
		}
		tr.max = max(tr.max, pos)
		tr.byPos[pos] = ev.EventID
		last, seen := tr.lastVer[ev.StreamID]
		if (seen || !tr.anyStart) && ev.StreamVersion != last+1 {
			tr.fail("%s version %d delivered after %d", ev.StreamID, ev.StreamVersion, last)
		}
		tr.lastVer[ev.StreamID] = max(last, ev.StreamVersion)
	}
}

// snapshot returns the first position delivered and the event id of every position.
func (tr *tracker) snapshot() (first int64, byPos map[int64]uuid.UUID) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	byPos = make(map[int64]uuid.UUID, len(tr.byPos))
	for p, id := range tr.byPos {
		byPos[p] = id
	}
	return tr.first, byPos
}

func (tr *tracker) duplicates() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.dups
}

// maxPos is the highest position delivered.
func (tr *tracker) maxPos() int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.max
}

// distinct is how many distinct positions were delivered.
func (tr *tracker) distinct() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.byPos)
}

func (tr *tracker) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return fmt.Sprintf("%s: %d distinct (first %d, max %d), %d duplicates", tr.name, len(tr.byPos), tr.first, tr.max, tr.dups)
}

// check reports order violations, and committed events never delivered or delivered events
// never committed.
func (tr *tracker) check(t *testing.T, committed map[uuid.UUID]bool, all bool) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, e := range tr.errs {
		t.Errorf("%s: %s", tr.name, e)
	}
	delivered := map[uuid.UUID]bool{}
	for _, id := range tr.byPos {
		delivered[id] = true
	}
	missing, unknown := 0, 0
	for id := range committed {
		if all && !delivered[id] {
			missing++
		}
	}
	for id := range delivered {
		if !committed[id] {
			unknown++
		}
	}
	if missing > 0 || unknown > 0 {
		t.Errorf("%s: %d of %d committed events never delivered; %d delivered events not committed",
			tr.name, missing, len(committed), unknown)
	}
	t.Logf("%s: %d events, %d duplicates", tr.name, len(tr.byPos), tr.dups)
}

// consume receives, records and acknowledges batches in the background until stopped. work is
// slept per event, to make a slow subscriber. staleAcks tolerates ErrUnexpectedAck, which a
// subscriber gets for events delivered before the subscription lost its lock (they come again).
func consume(t *testing.T, sub *es.Subscriber, tr *tracker, work time.Duration, staleAcks bool) (stop func()) {
	stopCh, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stopCh:
				return
			case b, ok := <-sub.Events():
				if !ok {
					if err := sub.Err(); !errors.Is(err, context.Canceled) { // the test ended
						t.Errorf("%s: events closed: %v", tr.name, err)
					}
					return
				}
				tr.add(b...)
				if work > 0 {
					time.Sleep(work * time.Duration(len(b)))
				}
				if err := sub.Ack(b...); err != nil && !(staleAcks && errors.Is(err, es.ErrUnexpectedAck)) {
					t.Errorf("%s: ack %v: %v", tr.name, numbers(b), err)
					return
				}
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() { close(stopCh) })
		<-done
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after the wait guard.
func waitFor(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastPosition is the last event number of stream (or of $all, settled), retried across
// connection failures.
func lastPosition(t *testing.T, store *es.Store, stream string) int64 {
	t.Helper()
	var info es.StreamInfo
	var err error
	waitFor(t, func() string { return fmt.Sprintf("stream info of %s: %v", stream, err) }, func() bool {
		info, err = store.StreamInfo(t.Context(), stream)
		return err == nil
	})
	return info.StreamVersion
}

// finish waits until the subscription delivered every position up to the stream's last and
// checkpointed it, then checks the deliveries against the committed events.
func finish(t *testing.T, store *es.Store, stream, name string, tr *tracker, w *writers) {
	t.Helper()
	last := lastPosition(t, store, stream)
	committed := w.l.of(stream)
	if int64(len(committed)) != last {
		t.Errorf("%s: %d events committed, last position %d", stream, len(committed), last)
	}
	waitFor(t, tr.String, func() bool { return int64(tr.distinct()) >= last })
	checkpointReaches(t, store, stream, name, last)
	tr.check(t, committed, true)
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// testLogger sends the stores' warnings to the test's output, shown on failure or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// listenerConnections counts the server connections named app.
func listenerConnections(t *testing.T, db *sql.DB, app string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
		t.Fatalf("count connections of %s: %v", app, err)
	}
	return n
}

// terminateListener kills the backend of the LISTEN connection named app, once it is connected,
// and waits until the backend is gone.
func terminateListener(t *testing.T, db *sql.DB, app string) {
	t.Helper()
	terminateBackends(t, db, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app, 1)
}

// terminateBackends waits until query (with arg) returns want backend pids, terminates them and
// waits until they are gone.
func terminateBackends(t *testing.T, db *sql.DB, query string, arg any, want int) {
	t.Helper()
	ctx := t.Context()
	var pids []int
	waitFor(t, func() string { return fmt.Sprintf("%d backends for %v, have %v", want, arg, pids) }, func() bool {
		pids = pids[:0]
		rows, err := db.QueryContext(ctx, query, arg)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var pid int
			if err := rows.Scan(&pid); err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return len(pids) == want
	})
	for _, pid := range pids {
		var ok bool
		if err := db.QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate backend %d: %v, %v", pid, ok, err)
		}
	}
	for _, pid := range pids {
		waitFor(t, func() string { return fmt.Sprintf("backend %d gone", pid) }, func() bool {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 0
		})
	}
}

// stealLease makes the subscription's lease look taken over by another process and already run
// out again (as after a holder that was paused, or cut off from the database, past its lease):
// its epoch moves on, so the holder's next checkpoint write or renewal is refused, and it takes
// the lease again with a new epoch and delivers again from its checkpoint.
func stealLease(t *testing.T, store *es.Store, stream string, names ...string) {
	t.Helper()
	for _, name := range names {
		res, err := estest.DB(t).ExecContext(t.Context(), `UPDATE `+store.Schema()+`.subscriptions
			SET epoch = epoch + 1, holder = 'intruder', lease_expires_at = now()
			WHERE stream_name = $1 AND subscription_name = $2`, stream, name)
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			t.Fatalf("steal lease of %s/%s: %d rows", stream, name, n)
		}
	}
}

// leaseFaultStores returns a writer store and, on the same schema, a subscriber store standing
// for another process. With renewals (short leases renewed often), a stolen lease is noticed soon
// even without a checkpoint write; without (an hour's lease), only a checkpoint write notices.
func leaseFaultStores(t *testing.T, poll time.Duration, renewals bool) (writer, store *es.Store) {
	t.Helper()
	writer = estest.NewStore(t, nil)
	cfg := es.Config{ListenDSN: estest.DSN(t), SubscriptionPollInterval: poll,
		LeaseDuration: time.Hour, LeaseRenewInterval: 20 * time.Minute}
	if renewals {
		cfg.LeaseDuration, cfg.LeaseRenewInterval = time.Second, 50*time.Millisecond
	}
	store = subscriberStore(t, estest.DB(t), writer.Schema(), cfg)
	return writer, store
}

// subscriberStore opens a second Store on store's schema that stands for another process: it
// learns of the writers' appends only through NOTIFY (or its poll), since its own sequencer,
// which would wake its subscriptions in-process, practically never runs.
func subscriberStore(t *testing.T, db *sql.DB, schema string, cfg es.Config) *es.Store {
	t.Helper()
	cfg.Schema = schema
	cfg.SequencerInterval = time.Hour
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := es.New(db, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// 1. The listener's backend is terminated, three times, while writers (another process) append
// and subscriptions to $all and to one stream deliver. No poll fallback: only NOTIFY and the
// wake-up after the listener's reconnect bring the events.
func TestFaultListenerTerminated(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	db := estest.DB(t)
	writer := estest.NewStore(t, nil)
	app := randomName("es-fault-listener-")
	store := subscriberStore(t, db, writer.Schema(), es.Config{
		ListenDSN: estest.DSN(t), ListenApplicationName: app, SubscriptionPollInterval: time.Hour,
	})

	all, err := store.SubscribeToAll(ctx, "all", &es.SubscriptionOptions{BufferSize: 20})
	is.NoErr(err)
	one, err := store.SubscribeToStream(ctx, "s-0", "one", &es.SubscriptionOptions{BufferSize: 5})
	is.NoErr(err)
	subscribed(t, all)
	subscribed(t, one)
	allTr, oneTr := newTracker("$all", true, false), newTracker("s-0", true, false)
	consume(t, all, allTr, 0, false)
	consume(t, one, oneTr, 0, false)

	w := startWriters(t, writer, writerOptions{writers: 4, streams: 4, maxBatch: 3, pause: 2 * time.Millisecond})
	for range 3 {
		target := allTr.distinct() + 150
		waitFor(t, allTr.String, func() bool { return allTr.distinct() >= target })
		terminateListener(t, db, app)
	}
	target := allTr.distinct() + 150
	waitFor(t, allTr.String, func() bool { return allTr.distinct() >= target })
	w.Stop()

	finish(t, writer, es.AllStream, "all", allTr, w)
	finish(t, writer, "s-0", "one", oneTr, w)
}

// 2. The PostgreSQL server (a private one) is restarted twice while writers append and
// subscriptions deliver. Every connection breaks: the writers retry with the same event ids, the
// subscriptions lose their locks (their sessions end) and take them again, the listener
// reconnects.
func TestFaultServerRestart(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	pg, err := pgtest.StartPostgres(ctx, nil)
	is.NoErr(err)
	t.Cleanup(func() { _ = pg.Stop() })
	db, err := sql.Open(estest.Driver(), pg.DSN(""))
	is.NoErr(err)
	db.SetMaxOpenConns(40)
	t.Cleanup(func() { _ = db.Close() })
	const schema = "fault_restart"
	_, err = goose.Up(ctx, db, schema)
	is.NoErr(err)

	writer, err := es.New(db, &es.Config{Schema: schema, Logger: testLogger(t)})
	is.NoErr(err)
	t.Cleanup(func() { _ = writer.Close() })
	store := subscriberStore(t, db, schema, es.Config{ListenDSN: pg.DSN(""), ListenApplicationName: randomName("es-fault-restart-")})

	// $all at full speed, and two slow stream subscribers (by default one event in flight, and
	// a few) whose delivered batches wait in their channels when the lock is lost.
	subs := []struct {
		stream, name string
		buffer       int
		work         time.Duration
		tr           *tracker
	}{
		{stream: es.AllStream, name: "all", buffer: 10},
		{stream: "s-0", name: "one", buffer: 1, work: 5 * time.Millisecond},
		{stream: "s-1", name: "few", buffer: 4, work: 5 * time.Millisecond},
	}
	for i := range subs {
		sc := &subs[i]
		sub, err := store.SubscribeToStream(ctx, sc.stream, sc.name, &es.SubscriptionOptions{BufferSize: sc.buffer, RetryInterval: 50 * time.Millisecond})
		is.NoErr(err)
		subscribed(t, sub)
		sc.tr = newTracker(sc.stream, true, false)
		consume(t, sub, sc.tr, sc.work, true)
	}
	allTr := subs[0].tr

	w := startWriters(t, writer, writerOptions{writers: 4, streams: 4, maxBatch: 3, pause: 2 * time.Millisecond, retry: true})
	for range 2 {
		target := allTr.distinct() + 100
		waitFor(t, allTr.String, func() bool { return allTr.distinct() >= target })
		is.NoErr(pg.Restart(ctx))
	}
	target := allTr.distinct() + 100
	waitFor(t, allTr.String, func() bool { return allTr.distinct() >= target })
	w.Stop()

	for _, sc := range subs {
		finish(t, writer, sc.stream, sc.name, sc.tr, w)
	}
}

// Environment of TestHelperSubscriberProcess.
const (
	helperEnv       = "ES_FAULT_HELPER"
	helperDSNEnv    = "ES_FAULT_DSN"
	helperSchemaEnv = "ES_FAULT_SCHEMA"
	helperSubEnv    = "ES_FAULT_SUBSCRIPTION"
)

// TestHelperSubscriberProcess is the child process of TestFaultSubscriberProcessKilled; it does
// nothing unless ES_FAULT_HELPER=1. It subscribes to $all and, for each batch, prints a line
// "recv <position> <event id>" per event, then acknowledges the batch, until it is killed.
func TestHelperSubscriberProcess(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // in case nobody kills us
	defer cancel()
	dsn := os.Getenv(helperDSNEnv)
	db, err := sql.Open(estest.Driver(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store, err := es.New(db, &es.Config{Schema: os.Getenv(helperSchemaEnv), ListenDSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// A checkpoint threshold above one leaves acknowledged events uncheckpointed at the kill.
	sub, err := store.SubscribeToAll(ctx, os.Getenv(helperSubEnv), &es.SubscriptionOptions{BufferSize: 5, CheckpointThreshold: 7})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-sub.Subscribed():
	case <-ctx.Done():
		t.Fatal("not subscribed")
	}
	fmt.Println("subscribed")
	for b := range sub.Events() {
		var line strings.Builder
		for _, ev := range b {
			fmt.Fprintf(&line, "recv %d %s\n", ev.EventNumber, ev.EventID)
		}
		os.Stdout.WriteString(line.String()) // before the ack: whatever was acked was printed
		if err := sub.Ack(b...); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("events closed: %v", sub.Err())
}

// 3. A child process runs the subscription and is killed with SIGKILL mid-stream while writers
// append; this process, already waiting for the subscription, takes over and delivers every
// event after the child's last checkpoint, including those the child received but had not
// checkpointed.
func TestFaultSubscriberProcessKilled(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	store := estest.NewStore(t, &es.Config{Logger: testLogger(t)})
	const name = "killed"

	w := startWriters(t, store, writerOptions{writers: 3, streams: 4, maxBatch: 3, pause: 3 * time.Millisecond})

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperSubscriberProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", helperDSNEnv+"="+estest.DSN(t),
		helperSchemaEnv+"="+store.Schema(), helperSubEnv+"="+name, "ES_TEST_DRIVER="+estest.Driver())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	is.NoErr(err)
	is.NoErr(cmd.Start())

	// The child's progress: positions and event ids it received.
	var (
		mu         sync.Mutex
		childGot   = map[int64]uuid.UUID{}
		childOrder []int64
		childUp    = make(chan struct{})
		readDone   = make(chan struct{})
	)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-readDone
		_ = cmd.Wait()
		if bytes.Contains(stderr.Bytes(), []byte("DATA RACE")) {
			t.Error("the child process reported a data race")
		}
		t.Logf("child stderr:\n%s", stderr.Bytes())
	})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "subscribed":
				close(childUp)
			case len(f) == 3 && f[0] == "recv":
				pos, err1 := strconv.ParseInt(f[1], 10, 64)
				id, err2 := uuid.Parse(f[2])
				if err1 != nil || err2 != nil {
					t.Errorf("child: bad line %q", sc.Text())
					continue
				}
				mu.Lock()
				childGot[pos] = id
				childOrder = append(childOrder, pos)
				mu.Unlock()
			}
		}
	}()
	childCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(childGot)
	}
	select {
	case <-childUp:
	case <-readDone:
		t.Fatalf("child exited before subscribing; stderr:\n%s", stderr.Bytes())
	case <-time.After(wait):
		t.Fatal("child did not subscribe")
	}

	// This process waits for the subscription while the child holds it.
	sub, err := store.SubscribeToAll(ctx, name, &es.SubscriptionOptions{BufferSize: 8, RetryInterval: 20 * time.Millisecond})
	is.NoErr(err)
	waitFor(t, func() string { return fmt.Sprintf("child received %d events", childCount()) },
		func() bool { return childCount() >= 200 })
	select {
	case <-sub.Subscribed():
		t.Fatal("this process runs the subscription while the child holds it")
	default:
	}

	is.NoErr(cmd.Process.Signal(syscall.SIGKILL))
	<-readDone
	_ = cmd.Wait()
	cpAtKill, err := store.SubscriptionCheckpoint(ctx, es.AllStream, name)
	is.NoErr(err)

	subscribed(t, sub) // the takeover
	tr := newTracker("parent", true, true)
	consume(t, sub, tr, 0, false)
	waitFor(t, tr.String, func() bool { return tr.distinct() >= 200 }) // writers still writing
	w.Stop()

	last := lastPosition(t, store, es.AllStream)
	committed := w.l.of(es.AllStream)
	is.Equal(int64(len(committed)), last)
	waitFor(t, tr.String, func() bool { return tr.maxPos() >= last })
	checkpointReaches(t, store, es.AllStream, name, last)

	// The child received 1, 2, ... in order, without duplicates.
	mu.Lock()
	defer mu.Unlock()
	childMax := int64(len(childOrder))
	is.Equal(childOrder, seq(1, childMax))
	// The parent started right after the checkpoint the child left, which covers only events
	// the child received (and acknowledged); what the child received beyond it came again.
	first, parentGot := tr.snapshot()
	resumed := first - 1
	t.Logf("child received 1..%d, checkpoint seen at the kill %d, parent resumed after %d", childMax, cpAtKill, resumed)
	if resumed < cpAtKill || resumed > childMax {
		t.Errorf("parent resumed after %d: want between the checkpoint seen at the kill (%d) and the child's last event (%d)",
			resumed, cpAtKill, childMax)
	}
	got := map[uuid.UUID]bool{}
	for pos, id := range childGot {
		if pos <= resumed {
			got[id] = true
		}
		if pid, ok := parentGot[pos]; ok && pid != id {
			t.Errorf("position %d: the child got %s, the parent %s", pos, id, pid)
		}
	}
	for _, id := range parentGot {
		got[id] = true
	}
	missing := 0
	for id := range committed {
		if !got[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d committed events delivered neither to the child (and checkpointed) nor to the parent", missing, len(committed))
	}
	tr.check(t, committed, false)
}

// 4. Subscribers much slower than the writers, with a small queue and buffer: a single one on
// $all and a partitioned group of three, each sleeping per event while thousands of events are
// appended fast. Without faults, every event arrives exactly once, in order (for the group: in
// order per stream).
func TestFaultSlowSubscriber(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	single, err := store.SubscribeToAll(ctx, "slow", &es.SubscriptionOptions{BufferSize: 3, MaxQueueSize: 10})
	is.NoErr(err)
	subscribed(t, single)
	singleTr := newTracker("slow", true, false)
	consume(t, single, singleTr, time.Millisecond, false)

	groupTr := newTracker("slow-group", false, false)
	byStream := func(e es.RecordedEvent) string { return e.StreamID }
	for range 3 {
		sub, err := store.SubscribeToAll(ctx, "slow-group", &es.SubscriptionOptions{
			BufferSize: 2, MaxQueueSize: 10, ConcurrencyLimit: 3, PartitionBy: byStream,
		})
		is.NoErr(err)
		subscribed(t, sub)
		consume(t, sub, groupTr, time.Millisecond, false)
	}

	w := startWriters(t, store, writerOptions{writers: 4, streams: 6, maxBatch: 5, limit: 2000})
	w.wg.Wait() // the writers stop at their limit
	finish(t, store, es.AllStream, "slow", singleTr, w)
	finish(t, store, es.AllStream, "slow-group", groupTr, w)
	is.Equal(singleTr.duplicates(), 0) // no fault, no redelivery
	is.Equal(groupTr.duplicates(), 0)
}

// withUser returns dsn connecting as user with password instead.
func withUser(t *testing.T, dsn, user, password string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(user, password)
		return u.String()
	}
	return dsn + " user=" + user + " password=" + password // a later keyword wins
}

// 5. Events appended while the listener is disconnected are delivered without any further
// append. The listener connects as a role of its own, which is refused new logins while the
// listener is down: the appends provably happen while it is disconnected, and their NOTIFY is
// lost. With a poll interval of an hour, only the wake-up after the reconnect can deliver them.
func TestFaultAppendsWhileListenerDown(t *testing.T) {
	for _, poll := range []time.Duration{3 * time.Second, time.Hour} {
		t.Run("poll-"+poll.String(), func(t *testing.T) {
			t.Parallel()
			is := is.New(t)
			ctx := t.Context()
			db := estest.DB(t)
			role, password := randomName("es_fault_"), randomName("pw")
			_, err := db.ExecContext(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, role, password))
			is.NoErr(err)
			t.Cleanup(func() {
				_, _ = db.ExecContext(context.WithoutCancel(ctx), `DROP ROLE IF EXISTS `+role)
			})
			writer := estest.NewStore(t, nil)
			app := randomName("es-fault-down-")
			store := subscriberStore(t, db, writer.Schema(), es.Config{
				ListenDSN: withUser(t, estest.DSN(t), role, password), ListenApplicationName: app,
				SubscriptionPollInterval: poll,
			})
			sub, err := store.SubscribeToAll(ctx, "down", &es.SubscriptionOptions{BufferSize: 50})
			is.NoErr(err)
			subscribed(t, sub)
			tr := newTracker("down", true, false)
			consume(t, sub, tr, 0, false)

			// Concurrent writers while the listener is up: delivered through NOTIFY.
			appendConcurrently := func(w *writers) {
				var wg sync.WaitGroup
				for range 3 {
					wg.Go(func() {
						for range 5 {
							stream := fmt.Sprintf("s-%d", mrand.IntN(3))
							batch := events(2)
							for i := range batch {
								batch[i].EventID = uuid.New()
							}
							if err := appendCommitted(ctx, writer, stream, batch, false); err != nil {
								t.Error(err)
								return
							}
							w.l.add(stream, batch)
						}
					})
				}
				wg.Wait()
			}
			w := &writers{l: newLedger()}
			appendConcurrently(w)
			up := lastPosition(t, writer, es.AllStream)
			waitFor(t, tr.String, func() bool { return int64(tr.distinct()) >= up })

			// Down: no new logins for the role, then its connection terminated.
			_, err = db.ExecContext(ctx, `ALTER ROLE `+role+` NOLOGIN`)
			is.NoErr(err)
			terminateListener(t, db, app)
			appendConcurrently(w)
			last := lastPosition(t, writer, es.AllStream) // sequenced: the NOTIFY went out, unheard
			_, err = db.ExecContext(ctx, `ALTER ROLE `+role+` LOGIN`)
			is.NoErr(err)

			// Nothing more is appended: the reconnect (or the poll) must bring the events.
			waitFor(t, func() string {
				return fmt.Sprintf("%s; want %d; listener connections %d", tr, last, listenerConnections(t, db, app))
			}, func() bool { return int64(tr.distinct()) >= last })
			checkpointReaches(t, store, es.AllStream, "down", last)
			committed := w.l.of(es.AllStream)
			is.Equal(int64(len(committed)), last)
			tr.check(t, committed, true)
		})
	}
}

// withApplicationName returns dsn with application_name set (last, so that it wins).
func withApplicationName(t *testing.T, dsn, name string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("application_name", name)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " application_name=" + name
}

// 6. A subscription's lease is taken over (and left to run out) three times while writers
// append. The subscription notices when it next writes its checkpoint or renews, takes the
// lease again with a new epoch and redelivers from its checkpoint, while batches delivered
// before the loss still wait in the subscribers' channels: the consumers here do some work
// after each acknowledgement before they receive again.
func TestFaultLeaseTakenOver(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer, store := leaseFaultStores(t, time.Hour, false)

	// Two subscriptions of one stream, with one and three events in flight, whose consumers
	// work after each acknowledgement, and are slower than the writers.
	trackers := map[string]*tracker{}
	for _, buffer := range []int{1, 3} {
		name := fmt.Sprintf("lock-%d", buffer)
		sub, err := store.SubscribeToStream(ctx, "s-0", name, &es.SubscriptionOptions{BufferSize: buffer, RetryInterval: 20 * time.Millisecond})
		is.NoErr(err)
		subscribed(t, sub)
		tr := newTracker(name, true, false)
		trackers[name] = tr
		consumeThenWork(t, sub, tr, 30*time.Millisecond)
	}
	state := func() string { return fmt.Sprint(trackers["lock-1"], "; ", trackers["lock-3"]) }
	progress := func() int { return min(trackers["lock-1"].distinct(), trackers["lock-3"].distinct()) }
	// A little faster than the consumers: they lag, and have their next batch waiting in their
	// channel when they acknowledge.
	w := startWriters(t, writer, writerOptions{writers: 2, streams: 1, maxBatch: 1, pause: 30 * time.Millisecond})
	for range 3 {
		target := progress() + 15
		waitFor(t, state, func() bool { return progress() >= target })
		stealLease(t, writer, "s-0", "lock-1", "lock-3")
	}
	target := progress() + 15
	waitFor(t, state, func() bool { return progress() >= target })
	w.Stop()

	for name, tr := range trackers {
		finish(t, writer, "s-0", name, tr, w)
	}
}

// 7. The lease is taken over while the subscriber holds a batch it has not acknowledged yet:
// the subscription notices (by its renewal), takes the lease again and redelivers that batch,
// which waits in the channel; the subscriber's acknowledgement of the batch
// it holds then acknowledges the redelivered copy. The next batch must still reach the
// subscriber, after the copy. Writers append throughout.
func TestFaultLeaseLostWhileBatchHeld(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer, store := leaseFaultStores(t, 20*time.Millisecond, true)
	sub, err := store.SubscribeToStream(ctx, "s-0", "held", &es.SubscriptionOptions{RetryInterval: 20 * time.Millisecond}) // one in flight
	is.NoErr(err)
	subscribed(t, sub)
	tr := newTracker("held", true, false)
	w := startWriters(t, writer, writerOptions{writers: 2, streams: 1, maxBatch: 2, pause: 5 * time.Millisecond})

	receiveAck := func(n int) {
		for range n {
			b := next(t, sub.Events())
			tr.add(b...)
			if err := sub.Ack(b...); err != nil && !errors.Is(err, es.ErrUnexpectedAck) {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		receiveAck(10)
		held := next(t, sub.Events())
		tr.add(held...)
		// Everything before it is checkpointed: the redelivery starts with it.
		checkpointReaches(t, writer, "s-0", "held", held[0].EventNumber-1)
		stealLease(t, writer, "s-0", "held")
		waitFor(t, func() string { return "the held batch redelivered" }, func() bool { return len(sub.Events()) == 1 })
		is.NoErr(sub.Ack(held...)) // acknowledges the redelivered copy
		// The subscription writes the checkpoint after it has dispatched what the ack made room
		// for, while the copy still fills the channel.
		checkpointReaches(t, writer, "s-0", "held", held[len(held)-1].EventNumber)
		receiveAck(1) // the copy: ErrUnexpectedAck
	}
	receiveAck(10)
	w.Stop()
	stop := consume(t, sub, tr, 0, true)
	finish(t, writer, "s-0", "held", tr, w)
	stop()
}

// 8. The lease is taken over while a subscriber with two events in flight, in two batches,
// holds the first and the second waits in its channel. Its ack of the first finds the loss (the
// checkpoint write is refused); the redelivery brings both events again in one batch, behind
// the waiting one. The subscriber acks the waiting batch, which acknowledges the redelivered copy
// of its event, then the redelivered batch, whose other event must not stay in flight forever.
// Writers append to other streams throughout.
func TestFaultLeaseLostAckSpansRedelivery(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer, store := leaseFaultStores(t, time.Hour, false)
	const stream = "span" // the writers append to s-0 and s-1
	sub, err := store.SubscribeToStream(ctx, stream, "span", &es.SubscriptionOptions{BufferSize: 2, RetryInterval: 20 * time.Millisecond})
	is.NoErr(err)
	subscribed(t, sub)
	w := startWriters(t, writer, writerOptions{writers: 2, streams: 2, maxBatch: 2, pause: 5 * time.Millisecond})

	tr := newTracker(stream, true, false)
	appendOne := func() {
		batch := events(1)
		batch[0].EventID = uuid.New()
		is.NoErr(writer.AppendToStream(ctx, stream, es.AnyVersion, batch))
		w.l.add(stream, batch)
	}
	for round := range 3 {
		k := int64(2*round + 1)
		appendOne()
		first := next(t, sub.Events()) // held
		is.Equal(numbers(first), []int64{k})
		tr.add(first...)
		appendOne()
		waitFor(t, func() string { return "the second batch waiting" }, func() bool { return len(sub.Events()) == 1 })

		stealLease(t, writer, stream, "span")

		is.NoErr(sub.Ack(first...)) // its checkpoint write fails: the lock is lost, and taken again
		waitFor(t, func() string { return "the redelivery" }, func() bool { return len(sub.Events()) == 2 })
		waiting := next(t, sub.Events())
		is.Equal(numbers(waiting), []int64{k + 1})
		tr.add(waiting...)
		is.NoErr(sub.Ack(waiting...)) // acknowledges the redelivered copy
		again := next(t, sub.Events())
		is.Equal(numbers(again), []int64{k, k + 1})
		tr.add(again...)
		if err := sub.Ack(again...); !errors.Is(err, es.ErrUnexpectedAck) { // k+1: acknowledged already
			t.Fatalf("ack of the redelivered batch: %v, want ErrUnexpectedAck for its second event", err)
		}
		checkpointReaches(t, writer, stream, "span", k+1)
	}
	w.Stop()
	finish(t, writer, stream, "span", tr, w)
}

// consumeThenWork is consume for a subscriber that works a while after each acknowledgement
// before it receives again (so that batches wait in its channel); acknowledgements of events
// delivered before a lease loss may fail with ErrUnexpectedAck.
func consumeThenWork(t *testing.T, sub *es.Subscriber, tr *tracker, work time.Duration) {
	stopCh, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stopCh:
				return
			case b, ok := <-sub.Events():
				if !ok {
					if err := sub.Err(); !errors.Is(err, context.Canceled) {
						t.Errorf("%s: events closed: %v", tr.name, err)
					}
					return
				}
				tr.add(b...)
				if err := sub.Ack(b...); err != nil && !errors.Is(err, es.ErrUnexpectedAck) {
					t.Errorf("%s: ack %v: %v", tr.name, numbers(b), err)
					return
				}
				time.Sleep(work)
			}
		}
	}()
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(stopCh) })
		<-done
	})
}
