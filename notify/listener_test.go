package notify_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/internal/pgtest"
	"github.com/go-eventstore/eventstore/notify"
)

func TestMain(m *testing.M) { estest.Main(m) }

// long bounds every wait for something that must happen; absent is how long a test watches for
// something that must not.
const (
	long   = 20 * time.Second
	absent = 300 * time.Millisecond
)

func randName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testConfig gives a Listener an application_name of its own, so that a test can find (and
// kill) exactly its connection, fast reconnects and frequent pings.
func testConfig(t *testing.T) *notify.Config {
	return &notify.Config{
		ApplicationName: randName("eventstore-listener-"),
		MinReconnect:    10 * time.Millisecond,
		MaxReconnect:    200 * time.Millisecond,
		PingInterval:    50 * time.Millisecond,
		Logger:          testLogger(t),
	}
}

// newListener returns a Listener on the test database, closed when the test ends, and its
// application_name.
func newListener(t *testing.T) (*notify.Listener, string) {
	t.Helper()
	cfg := testConfig(t)
	l := notify.NewListener(estest.DSN(t), cfg)
	t.Cleanup(func() { _ = l.Close() })
	return l, cfg.ApplicationName
}

func wait(t *testing.T, l *notify.Listener, channel string) *notify.Waiter {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), long)
	defer cancel()
	w, err := l.WaitContext(ctx, channel)
	if err != nil {
		t.Fatalf("Wait(%q): %v", channel, err)
	}
	t.Cleanup(w.Close)
	return w
}

// send runs pg_notify on the shared pool of the current driver.
func send(t *testing.T, channel, payload string) {
	t.Helper()
	if _, err := estest.DB(t).ExecContext(t.Context(), `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		t.Fatalf("pg_notify(%q, %q): %v", channel, payload, err)
	}
}

func mustWake(t *testing.T, w *notify.Waiter, what string) {
	t.Helper()
	select {
	case <-w.C:
	case <-time.After(long):
		t.Fatalf("%s: no wake-up within %v", what, long)
	}
}

func mustNotWake(t *testing.T, w *notify.Waiter, what string) {
	t.Helper()
	select {
	case <-w.C:
		t.Fatalf("%s: unexpected wake-up", what)
	case <-time.After(absent):
	}
}

// connections counts the server connections with application_name app.
func connections(t *testing.T, app string) int {
	t.Helper()
	var n int
	err := estest.DB(t).QueryRowContext(t.Context(),
		`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n)
	if err != nil {
		t.Fatalf("count connections: %v", err)
	}
	return n
}

// eventually polls cond until it holds, failing the test after long.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(long); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, long)
		}
	}
}

func TestNotifyWakesWaiter(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l, _ := newListener(t)
	ch := randName("c_")
	w := wait(t, l, ch)
	is.Equal(cap(w.C), 1)
	is.Equal(len(w.C), 0) // no wake-up before a NOTIFY

	send(t, ch, "x")
	mustWake(t, w, "after NOTIFY")
	is.Equal(w.LastPayload(), "x")

	send(t, ch, "y")
	mustWake(t, w, "after second NOTIFY")
	is.Equal(w.LastPayload(), "y")
}

func TestWaitersOfAChannel(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l, _ := newListener(t)
	a, b := randName("a_"), randName("b_")
	a1, a2 := wait(t, l, a), wait(t, l, a)
	b1 := wait(t, l, b)

	send(t, a, "1")
	mustWake(t, a1, "first waiter")
	mustWake(t, a2, "second waiter")
	mustNotWake(t, b1, "waiter of another channel")
	is.Equal(b1.LastPayload(), "")

	send(t, b, "2")
	mustWake(t, b1, "waiter of b")
	mustNotWake(t, a1, "waiter of a after NOTIFY b")
}

func TestCoalescing(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l, _ := newListener(t)
	ch := randName("c_")
	reader, idle := wait(t, l, ch), wait(t, l, ch)

	const n = 50
	for i := range n {
		send(t, ch, fmt.Sprintf("p%02d", i))
	}
	last := "p49"
	wakes := 0
	// Each wake-up is sent after the payload is recorded: the loop ends with the wake-up that
	// stands for the last notification.
	for deadline := time.After(long); wakes == 0 || reader.LastPayload() != last; {
		select {
		case <-reader.C:
			wakes++
		case <-deadline:
			t.Fatalf("last payload %q after %d wake-ups, want %q", reader.LastPayload(), wakes, last)
		}
	}
	t.Logf("%d notifications, %d wake-ups", n, wakes)
	is.True(wakes >= 1)
	// The idle waiter never read: its wake-ups coalesced into one, and never held anyone up.
	is.Equal(len(idle.C), 1)
	is.Equal(idle.LastPayload(), last)
	<-idle.C
	mustNotWake(t, idle, "idle waiter after draining its one wake-up")
}

func TestReconnectWakesEveryWaiter(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l, app := newListener(t)
	a, b := randName("a_"), randName("b_")
	a1, a2, b1 := wait(t, l, a), wait(t, l, a), wait(t, l, b)
	is.Equal(len(a1.C)+len(a2.C)+len(b1.C), 0)

	var killed int
	err := estest.DB(t).QueryRowContext(t.Context(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&killed)
	is.NoErr(err)
	is.Equal(killed, 1) // exactly this test's listener

	mustWake(t, a1, "waiter a1 after reconnect")
	mustWake(t, a2, "waiter a2 after reconnect")
	mustWake(t, b1, "waiter b1 after reconnect")
	eventually(t, "listener back in pg_stat_activity", func() bool { return connections(t, app) == 1 })

	// LISTEN is re-issued by pq on its own: a NOTIFY after the reconnect arrives. Retry, since
	// nothing tells when the LISTEN is back in effect.
	for deadline := time.After(long); ; {
		send(t, b, "after")
		select {
		case <-b1.C:
			if b1.LastPayload() == "after" {
				return
			}
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no NOTIFY delivered after the reconnect within %v", long)
		}
	}
}

func TestShared(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	dsn, cfg := estest.DSN(t), testConfig(t)
	app := cfg.ApplicationName

	l1 := notify.Shared(dsn, cfg)
	l2 := notify.Shared(dsn, &notify.Config{ApplicationName: app})
	is.True(l1 == l2) // same DSN: one Listener

	other := notify.Shared(dsn, &notify.Config{ApplicationName: randName("eventstore-listener-")})
	is.True(other != l1) // another application_name is another connection string
	is.NoErr(other.Close())

	ch := randName("c_")
	w := wait(t, l1, ch)
	is.Equal(connections(t, app), 1)

	is.NoErr(l2.Close()) // not the last reference
	send(t, ch, "still open")
	mustWake(t, w, "after the first Close")
	_, err := l1.Wait(randName("c_"))
	is.NoErr(err)

	is.NoErr(l1.Close()) // the last reference: really closes
	_, err = l1.Wait(ch)
	is.True(errors.Is(err, notify.ErrClosed))
	eventually(t, "connection gone", func() bool { return connections(t, app) == 0 })
	is.NoErr(l1.Close()) // extra Close: no effect

	l3 := notify.Shared(dsn, cfg)
	defer l3.Close()
	is.True(l3 != l1) // a fresh Listener after the last Close
	wait(t, l3, ch)
}

func TestInvalidChannel(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l, _ := newListener(t)
	for _, name := range []string{
		"", "1abc", "a-b", "a b", "Abc", `a"b`, "a;b", "é", "a\x00", strings.Repeat("a", 64),
	} {
		_, err := l.Wait(name)
		is.True(errors.Is(err, notify.ErrInvalidChannel)) // refused
		is.True(strings.Contains(err.Error(), "at most 63 bytes"))
		is.True(errors.Is(notify.ValidateChannel(name), notify.ErrInvalidChannel))
	}
	for _, name := range []string{"a", "_", "_1", "abc_123", strings.Repeat("z", 63)} {
		is.NoErr(notify.ValidateChannel(name))
	}

	// The longest name works end to end.
	ch := randName("c_")
	ch += strings.Repeat("x", notify.MaxChannelLen-len(ch))
	w := wait(t, l, ch)
	send(t, ch, "long")
	mustWake(t, w, "63-byte channel")
}

func TestWaiterClose(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	l, _ := newListener(t)
	ch := randName("c_")
	w1, w2 := wait(t, l, ch), wait(t, l, ch)

	w1.Close()
	w1.Close() // idempotent
	send(t, ch, "1")
	mustWake(t, w2, "remaining waiter")
	mustNotWake(t, w1, "closed waiter") // also: C is not closed

	// The last Close UNLISTENs; a new Waiter LISTENs again.
	w2.Close()
	w3 := wait(t, l, ch)
	send(t, ch, "2")
	mustWake(t, w3, "waiter after the channel was released")
	is.Equal(w3.LastPayload(), "2")
	mustNotWake(t, w2, "closed waiter")

	// Churn: Waiters coming and going must leave the channel listened.
	for range 20 {
		w := wait(t, l, ch)
		w.Close()
	}
	send(t, ch, "3")
	mustWake(t, w3, "waiter after churn")
}

func TestApplicationName(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	dsns := map[string]string{"estest.DSN": estest.DSN(t)}
	if srv := sharedServer(t); srv != nil {
		url, kv := srv.DSN("postgres"), srv.SocketDSN("postgres")
		dsns["url"] = url
		dsns["url with application_name"] = url + "&application_name=other"
		dsns["keyword/value"] = kv
		dsns["keyword/value with application_name"] = kv + " application_name=other"
	}
	for name, dsn := range dsns {
		cfg := testConfig(t)
		l := notify.NewListener(dsn, cfg)
		wait(t, l, randName("c_")) // connected
		if n := connections(t, cfg.ApplicationName); n != 1 {
			t.Errorf("%s: %d connections named %s, want 1", name, n, cfg.ApplicationName)
		}
		is.NoErr(l.Close())
	}

	l := notify.NewListener(estest.DSN(t), nil)
	defer l.Close()
	wait(t, l, randName("c_"))
	is.True(connections(t, notify.DefaultApplicationName) >= 1)
}

func TestWaitWhileDisconnected(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	cfg := testConfig(t)
	l := notify.NewListener("host=127.0.0.1 port=1 user=postgres sslmode=disable connect_timeout=1", cfg)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := l.WaitContext(ctx, "c")
	is.True(errors.Is(err, context.DeadlineExceeded))

	errc := make(chan error, 1)
	go func() {
		_, err := l.Wait("c")
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	is.NoErr(l.Close())
	t.Logf("Close took %v", time.Since(start))
	is.True(time.Since(start) < 5*time.Second)
	select {
	case err := <-errc:
		is.True(errors.Is(err, notify.ErrClosed)) // a blocked Wait ends with Close
	case <-time.After(long):
		t.Fatal("Wait still blocked after Close")
	}
	_, err = l.Wait("c")
	is.True(errors.Is(err, notify.ErrClosed))
}

// TestCloseEndsGoroutines does not run in parallel: it counts the process' goroutines.
func TestCloseEndsGoroutines(t *testing.T) {
	is := is.New(t)
	send(t, "warm_up", "") // opens the pool before counting
	before := runtime.NumGoroutine()

	cfg := testConfig(t)
	l := notify.NewListener(estest.DSN(t), cfg)
	ch := randName("c_")
	w1, w2 := wait(t, l, ch), wait(t, l, randName("c_"))
	send(t, ch, "x")
	mustWake(t, w1, "before Close")
	is.True(runtime.NumGoroutine() > before)

	is.NoErr(l.Close())
	is.NoErr(l.Close()) // idempotent
	w2.Close()          // still allowed

	// Close waited for the Listener's goroutines and pq's; pq's connection goroutine may take a
	// moment longer to return after its last action.
	const slack = 0
	eventually(t, "goroutines back to the count before", func() bool {
		return runtime.NumGoroutine() <= before+slack
	})
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, fn := range []string{"eventstore/notify.(*Listener)", "lib/pq.(*Listener)", "lib/pq.(*ListenerConn)"} {
		if strings.Contains(stacks, fn) {
			t.Errorf("a goroutine in %s is still running:\n%s", fn, stacks)
		}
	}
	mustNotWake(t, w1, "waiter of a closed Listener") // C is not closed either
}

// sharedServer is the throwaway server estest started (nil with ES_TEST_DATABASE_URL).
func sharedServer(t testing.TB) *pgtest.Postgres {
	estest.DSN(t)
	return pgtest.Shared()
}
