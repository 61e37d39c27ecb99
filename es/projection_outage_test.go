package es_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// tcpProxy forwards connections to PostgreSQL's TCP port; cut drops them all and refuses new
// ones until restore: a network outage between one Store and the database.
type tcpProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]struct{}
}

// newProxy starts a proxy to the test server and returns it with a DSN through it; it skips the
// test when the server's DSN names no port (an ES_TEST_DATABASE_URL of another form).
func newProxy(t *testing.T) (*tcpProxy, string) {
	t.Helper()
	dsn := estest.DSN(t)
	m := regexp.MustCompile(`\bport=(\d+)`).FindStringSubmatch(dsn)
	if m == nil || !strings.Contains(dsn, "host=") {
		t.Skip("needs a key=value DSN with host and port")
	}
	p := &tcpProxy{target: "127.0.0.1:" + m[1], conns: map[net.Conn]struct{}{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	p.serve(l)
	t.Cleanup(p.cut)
	host, port, _ := net.SplitHostPort(p.addr)
	proxied := regexp.MustCompile(`\bhost=\S+`).ReplaceAllString(dsn, "host="+host)
	return p, regexp.MustCompile(`\bport=\d+`).ReplaceAllString(proxied, "port="+port)
}

func (p *tcpProxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()
}

// cut closes the listener and every connection.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		_ = p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// restore listens again on the same address.
func (p *tcpProxy) restore(t *testing.T) {
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(l)
}

// countingHandler counts the log records whose message starts with "projection".
type countingHandler struct {
	slog.Handler
	text string
	n    *atomic.Int64
}

func (h countingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(as), h.text, h.n}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.text, h.n}
}

func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, h.text) {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

// An outage of the database mid-batch parks nothing: the store's failures do not count as the
// handler's attempts, and a handler error while the database does not answer is the outage's.
// Before, an outage longer than the attempts' backoff parked good events.
func TestProjectionOutageParksNothing(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer := estest.NewStore(t, nil)
	table := readModel(t, writer)
	proxy, dsn := newProxy(t)
	db, err := sql.Open(estest.Driver(), dsn)
	is.NoErr(err)
	t.Cleanup(func() { _ = db.Close() })
	var outages atomic.Int64
	logger := slog.New(countingHandler{slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}),
		"projection", &outages}) // its failures and retries, whatever it makes of them
	store, err := es.New(db, &es.Config{Schema: writer.Schema(), Logger: logger, LeaseDuration: time.Minute, LeaseRenewInterval: 20 * time.Second})
	is.NoErr(err)
	t.Cleanup(func() { _ = store.Close() })

	is.NoErr(writer.AppendToStream(ctx, "acc-1", es.NoStream, events(10)))
	var cut atomic.Bool
	insert := batchInsertHandler(table)
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		MaxAttempts: 2, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		SubscriptionOptions: es.SubscriptionOptions{BufferSize: 4},
	}, func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if ev.StreamVersion == 6 && cut.CompareAndSwap(false, true) {
				proxy.cut() // the network goes, mid-batch
				return errors.New("write: connection reset by peer")
			}
		}
		return insert(ctx, tx, batch)
	})
	is.NoErr(err)
	waitFor(t, func() string { return fmt.Sprint(outages.Load(), " projection failures logged") }, func() bool { return outages.Load() >= 10 })
	proxy.restore(t)
	checkpointReaches(t, writer, es.AllStream, "rm", 10)
	checkReadModel(t, table, 10)
	parked, err := writer.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(len(parked), 0) // nothing parked for the outage
	is.NoErr(p.Close())
}

// A projection that ran with ParkWaitKey (an event parked, the later ones of its key waiting)
// and runs again with ParkSkip handles the waiting events: they wait no more.
func TestProjectionParkSkipReleasesWaiting(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	store := estest.NewStore(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "acc-1", es.NoStream, events(4)))
	insert := batchInsertHandler(table)
	poison := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
		for _, ev := range batch {
			if ev.StreamVersion == 2 {
				return errors.New("poison")
			}
		}
		return insert(ctx, tx, batch)
	}
	opts := &es.ProjectionOptions{MaxAttempts: 1, MinBackoff: 10 * time.Millisecond}
	p, err := store.Project(ctx, es.AllStream, "rm", opts, poison)
	is.NoErr(err)
	checkpointReaches(t, store, es.AllStream, "rm", 4)
	is.NoErr(p.Close())
	parked, err := store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(len(parked), 3) // 2 parked, 3 and 4 waiting
	is.Equal(rows(t, table), 1)

	opts.ParkPolicy = es.ParkSkip
	p, err = store.Project(ctx, es.AllStream, "rm", opts, poison)
	is.NoErr(err)
	waitFor(t, func() string { return fmt.Sprint(rows(t, table), " rows") }, func() bool { return rows(t, table) == 3 })
	parked, err = store.ListParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(len(parked), 1) // only the poison event is left
	is.Equal(parked[0].Status, es.ParkedFailed)
	n, err := store.DiscardParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	is.Equal(n, 1)
	is.NoErr(p.Close())
}
