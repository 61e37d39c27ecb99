//go:build unix

package es_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
)

// Environment of TestHelperLeaseHolder.
const (
	leaseHelperEnv  = "ES_LEASE_HELPER"
	leaseBouncerEnv = "ES_LEASE_BOUNCER" // DisablePreparedStatements
	leaseListenEnv  = "ES_LEASE_LISTEN"  // ListenDSN
)

// leaseChild is a child process running TestHelperLeaseHolder, and the deliveries it printed
// (plus this process's own, once logParent is called).
type leaseChild struct {
	cmd        *exec.Cmd
	mu         sync.Mutex
	deliveries []delivery
}

// startLeaseHolder starts a child process holding the persistent $all subscription name, on dsn
// (through PgBouncer with bouncer), and waits until it delivers.
func startLeaseHolder(t *testing.T, dsn, schema, name string, bouncer bool) *leaseChild {
	t.Helper()
	c := &leaseChild{}
	childUp, readDone := make(chan struct{}), make(chan struct{})
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperLeaseHolder$")
	cmd.Env = append(os.Environ(), leaseHelperEnv+"=1", helperDSNEnv+"="+dsn, leaseListenEnv+"="+estest.DSN(t),
		helperSchemaEnv+"="+schema, helperSubEnv+"="+name, "ES_TEST_DRIVER="+estest.Driver())
	if bouncer {
		cmd.Env = append(cmd.Env, leaseBouncerEnv+"=1")
	}
	c.cmd = cmd
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-readDone
		_ = cmd.Wait()
		if bytes.Contains(stderr.Bytes(), []byte("DATA RACE")) {
			t.Error("the child process reported a data race")
		}
		if t.Failed() {
			t.Logf("child stderr:\n%s", stderr.Bytes())
		}
	})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 1 && f[0] == "subscribed":
				close(childUp)
			case len(f) == 5 && f[0] == "deliver":
				var n [4]int64
				for i := range n {
					n[i], _ = strconv.ParseInt(f[i+1], 10, 64)
				}
				c.mu.Lock()
				c.deliveries = append(c.deliveries, delivery{"child", n[0], time.Unix(0, n[1]), n[2], n[3]})
				c.mu.Unlock()
			}
		}
	}()
	select {
	case <-childUp:
	case <-readDone:
		t.Fatalf("child exited before subscribing; stderr:\n%s", stderr.Bytes())
	case <-time.After(wait):
		t.Fatal("child did not subscribe")
	}
	return c
}

// logParent records this process's deliveries of subscription name too.
func (c *leaseChild) logParent(t *testing.T, name string) {
	installDeliveryLogs.Do(func() {
		es.SetDeliveryHook(func(_, n string, epoch int64, b []es.RecordedEvent) {
			if v, ok := deliveryLogs.Load(n); ok {
				c := v.(*leaseChild)
				c.mu.Lock()
				defer c.mu.Unlock()
				c.deliveries = append(c.deliveries, delivery{"parent", epoch, time.Now(), b[0].EventNumber, b[len(b)-1].EventNumber})
			}
		})
	})
	deliveryLogs.Store(name, c)
	t.Cleanup(func() { deliveryLogs.Delete(name) })
}

// The delivery hook is process-wide: it dispatches to the tests' logs by subscription name.
var (
	installDeliveryLogs sync.Once
	deliveryLogs        sync.Map // subscription name -> *leaseChild
)

// delivery is one batch handed to a subscriber, as a delivery hook saw it.
type delivery struct {
	who         string
	epoch       int64
	at          time.Time
	first, last int64
}

// printDeliveries makes the delivery hook print "deliver <epoch> <unix nanos> <first> <last>".
func printDeliveries() {
	var mu sync.Mutex
	es.SetDeliveryHook(func(_, _ string, epoch int64, b []es.RecordedEvent) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf("deliver %d %d %d %d\n", epoch, time.Now().UnixNano(), b[0].EventNumber, b[len(b)-1].EventNumber)
	})
}

// leaseTestConfig: short leases, so a paused holder's lease runs out quickly.
func leaseTestConfig(schema string) *es.Config {
	return &es.Config{Schema: schema, LeaseDuration: time.Second, LeaseRenewInterval: 200 * time.Millisecond}
}

// TestHelperLeaseHolder is the child process of TestFaultHolderPaused; it does nothing unless
// ES_LEASE_HELPER=1. It runs a persistent subscription to $all with short leases, prints every
// delivery (see printDeliveries) and acknowledges each batch.
func TestHelperLeaseHolder(t *testing.T) {
	if os.Getenv(leaseHelperEnv) != "1" {
		return
	}
	printDeliveries()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // in case nobody kills us
	defer cancel()
	db, err := sql.Open(estest.Driver(), os.Getenv(helperDSNEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := leaseTestConfig(os.Getenv(helperSchemaEnv))
	cfg.DisablePreparedStatements = os.Getenv(leaseBouncerEnv) == "1"
	cfg.ListenDSN = os.Getenv(leaseListenEnv)
	store, err := es.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sub, err := store.SubscribeToAll(ctx, os.Getenv(helperSubEnv), &es.SubscriptionOptions{BufferSize: 5, RetryInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.Subscribed()
	fmt.Println("subscribed")
	for b := range sub.Events() {
		_ = sub.Ack(b...) // after a lease loss, stale acks are refused: fine here
	}
}

// A holder SIGSTOPped past its lease: another process takes over; after SIGCONT the old holder
// stops delivering (its lease ran out while it was stopped, and its checkpoint writes name an
// old epoch). From the delivery logs: at no instant did two holders deliver, and every committed
// event was delivered.
func TestFaultHolderPaused(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	writer := estest.NewStore(t, nil)
	const name = "paused"

	child := startLeaseHolder(t, estest.DSN(t), writer.Schema(), name, false)
	mu, deliveries := &child.mu, &child.deliveries
	cmd := child.cmd

	// This process waits for the subscription, logging its deliveries the same way.
	child.logParent(t, name)
	store, err := es.New(estest.DB(t), leaseTestConfig(writer.Schema()))
	is.NoErr(err)
	t.Cleanup(func() { _ = store.Close() })
	sub, err := store.SubscribeToAll(ctx, name, &es.SubscriptionOptions{BufferSize: 5, RetryInterval: 50 * time.Millisecond})
	is.NoErr(err)
	tr := newTracker("parent", true, true)

	w := startWriters(t, writer, writerOptions{writers: 2, streams: 3, maxBatch: 3, pause: 5 * time.Millisecond})
	count := func(who string) int {
		mu.Lock()
		defer mu.Unlock()
		return countDeliveries(*deliveries, who)
	}
	waitFor(t, func() string { return "child deliveries" }, func() bool { return count("child") >= 20 })
	is.NoErr(cmd.Process.Signal(syscall.SIGSTOP))
	stoppedAt := time.Now()
	subscribed(t, sub) // the takeover, once the child's lease ran out
	t.Logf("taken over %s after the SIGSTOP", time.Since(stoppedAt).Round(time.Millisecond))
	consume(t, sub, tr, 0, false)
	waitFor(t, tr.String, func() bool { return tr.distinct() >= 50 })
	is.NoErr(cmd.Process.Signal(syscall.SIGCONT))
	childBefore := count("child")
	waitFor(t, tr.String, func() bool { return tr.distinct() >= 150 }) // the child runs again meanwhile
	w.Stop()
	last := lastPosition(t, writer, es.AllStream)
	waitFor(t, tr.String, func() bool { return tr.maxPos() >= last })
	checkpointReaches(t, writer, es.AllStream, name, last)

	mu.Lock()
	defer mu.Unlock()
	if n := countDeliveries(*deliveries, "child") - childBefore; n > 0 {
		t.Errorf("the old holder delivered %d batches after SIGCONT", n)
	}
	// Epochs: the child's all below the parent's; every child delivery before the parent's first.
	var parentFirst time.Time
	var childLast time.Time
	var childMaxEpoch, parentMinEpoch int64 = 0, 1 << 62
	for _, d := range *deliveries {
		switch d.who {
		case "child":
			childMaxEpoch = max(childMaxEpoch, d.epoch)
			if d.at.After(childLast) {
				childLast = d.at
			}
		case "parent":
			parentMinEpoch = min(parentMinEpoch, d.epoch)
			if parentFirst.IsZero() || d.at.Before(parentFirst) {
				parentFirst = d.at
			}
		}
	}
	is.True(childMaxEpoch < parentMinEpoch)
	if !childLast.Before(parentFirst) {
		t.Errorf("two holders delivered at once: the child's last delivery at %s, the parent's first at %s", childLast, parentFirst)
	}
	// Nothing lost: the parent resumed at the checkpoint the child left, and delivered the rest.
	first, _ := tr.snapshot()
	var childMax int64
	for _, d := range *deliveries {
		if d.who == "child" {
			childMax = max(childMax, d.last)
		}
	}
	if first-1 > childMax {
		t.Errorf("the parent started after %d, beyond the child's last delivered position %d", first-1, childMax)
	}
	tr.check(t, w.l.of(es.AllStream), false)
}

func countDeliveries(ds []delivery, who string) int {
	n := 0
	for _, d := range ds {
		if d.who == who {
			n++
		}
	}
	return n
}

// Behind PgBouncer in transaction mode, where a session advisory lock means nothing: two
// processes run the same persistent subscription, and only the lease holder delivers; when it is
// SIGKILLed the other takes over, and every committed event is delivered.
func TestPgBouncerSubscriptionOneHolder(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	schema := estest.NewSchema(t)
	dsn := estest.PgBouncerDSN(t)
	const name = "bounced"
	child := startLeaseHolder(t, dsn, schema, name, true)
	child.logParent(t, name)

	if estest.Driver() == "postgres" {
		var err error
		dsn, err = pgdsn.ForLibPQ(dsn)
		is.NoErr(err)
	}
	db, err := sql.Open(estest.Driver(), dsn)
	is.NoErr(err)
	t.Cleanup(func() { _ = db.Close() })
	cfg := leaseTestConfig(schema)
	cfg.DisablePreparedStatements = true
	cfg.ListenDSN = estest.DSN(t) // LISTEN needs a session: straight to the server
	store, err := es.New(db, cfg)
	is.NoErr(err)
	t.Cleanup(func() { _ = store.Close() })
	sub, err := store.SubscribeToAll(ctx, name, &es.SubscriptionOptions{BufferSize: 5, RetryInterval: 50 * time.Millisecond})
	is.NoErr(err)

	w := startWriters(t, store, writerOptions{writers: 2, streams: 3, maxBatch: 3, pause: 5 * time.Millisecond})
	count := func(who string) int {
		child.mu.Lock()
		defer child.mu.Unlock()
		return countDeliveries(child.deliveries, who)
	}
	waitFor(t, func() string { return "child deliveries" }, func() bool { return count("child") >= 30 })
	select {
	case <-sub.Subscribed():
		t.Fatal("both processes hold the subscription")
	default:
	}
	is.Equal(count("parent"), 0)

	is.NoErr(child.cmd.Process.Signal(syscall.SIGKILL))
	subscribed(t, sub)
	tr := newTracker("parent", true, true)
	consume(t, sub, tr, 0, false)
	waitFor(t, tr.String, func() bool { return tr.distinct() >= 30 })
	w.Stop()
	last := lastPosition(t, store, es.AllStream)
	waitFor(t, tr.String, func() bool { return tr.maxPos() >= last })
	checkpointReaches(t, store, es.AllStream, name, last)
	child.mu.Lock()
	var childMax int64
	for _, d := range child.deliveries {
		if d.who == "child" {
			childMax = max(childMax, d.last)
		}
	}
	child.mu.Unlock()
	if first, _ := tr.snapshot(); first-1 > childMax {
		t.Errorf("the parent started after %d, beyond the child's last delivered position %d", first-1, childMax)
	}
	tr.check(t, w.l.of(es.AllStream), false)
}
