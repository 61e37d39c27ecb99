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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// Environment of TestHelperSegmentMember.
const (
	segmentHelperEnv = "ES_SEGMENT_HELPER" // the read model table
	segmentCountEnv  = "ES_SEGMENT_EVENTS" // events TestSegmentsAcrossProcesses appends (default 100000)
)

// TestHelperSegmentMember is a child process of TestSegmentsAcrossProcesses; it does nothing
// unless ES_SEGMENT_HELPER names a read-model table. It projects $all in 16 segments into the
// table, prints "subscribed" once it holds a segment, and runs until killed.
func TestHelperSegmentMember(t *testing.T) {
	table := os.Getenv(segmentHelperEnv)
	if table == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // in case nobody kills us
	defer cancel()
	dsn := os.Getenv(helperDSNEnv)
	db, err := sql.Open(estest.Driver(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(8)
	store, err := es.New(db, &es.Config{
		Schema: os.Getenv(helperSchemaEnv), ListenDSN: dsn,
		LeaseDuration: 2 * time.Second, LeaseRenewInterval: 250 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p, err := store.Project(ctx, es.AllStream, os.Getenv(helperSubEnv), &es.ProjectionOptions{
		Segments: 16, SubscriptionOptions: es.SubscriptionOptions{RetryInterval: 100 * time.Millisecond},
	}, batchInsertHandler(table))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Subscribed():
		fmt.Println("subscribed")
	case <-p.Done():
		t.Fatalf("projection stopped: %v", p.Err())
	}
	<-p.Done()
	t.Fatalf("projection stopped: %v", p.Err())
}

// segmentMember is a running child process of TestHelperSegmentMember.
type segmentMember struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{}
	up     chan struct{} // closed once it holds a segment
}

// startSegmentMember starts a member and waits until it holds a segment.
func startSegmentMember(t testing.TB, schema, table, name string) *segmentMember {
	t.Helper()
	m := launchSegmentMember(t, schema, table, name)
	select {
	case <-m.up:
	case <-m.exited:
		t.Fatalf("child exited before it held a segment:\n%s", m.stderr.String())
	case <-time.After(wait):
		t.Fatal("child holds no segment")
	}
	return m
}

// launchSegmentMember starts a member.
func launchSegmentMember(t testing.TB, schema, table, name string) *segmentMember {
	t.Helper()
	m := &segmentMember{exited: make(chan struct{}), up: make(chan struct{})}
	m.cmd = exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperSegmentMember$")
	m.cmd.Env = append(os.Environ(), segmentHelperEnv+"="+table, helperDSNEnv+"="+estest.DSN(t),
		helperSchemaEnv+"="+schema, helperSubEnv+"="+name, "ES_TEST_DRIVER="+estest.Driver())
	m.cmd.Stderr = &m.stderr
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(m.exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "subscribed" {
				close(m.up)
			}
		}
		_ = m.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.exited
		if bytes.Contains(m.stderr.Bytes(), []byte("DATA RACE")) {
			t.Error("a child process reported a data race")
		}
		if t.Failed() {
			t.Logf("child %d stderr (tail):\n%s", m.cmd.Process.Pid, tail(m.stderr.String(), 3000))
		}
	})
	return m
}

// waitLong is waitFor with room for 100,000 events through three processes on two shared cores.
func waitLong(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(4 * wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Three processes share a 16-segment projection while 10 writers append 100,000 events to 1,000
// streams; one process is SIGKILLed mid-run and started again. Every event is handled exactly
// once (the read model's primary key is the event id), each stream's events in version order,
// and the segments end evenly spread over the three processes.
func TestSegmentsAcrossProcesses(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	total := 100000
	if v := os.Getenv(segmentCountEnv); v != "" {
		n, err := strconv.Atoi(v)
		is.NoErr(err)
		total = n
	}
	writer := estest.NewStore(t, &es.Config{Logger: testLogger(t)})
	table := readModel(t, writer)
	const name = "spread"

	members := []*segmentMember{
		startSegmentMember(t, writer.Schema(), table, name),
		startSegmentMember(t, writer.Schema(), table, name),
		startSegmentMember(t, writer.Schema(), table, name),
	}
	start := time.Now()
	w := startWriters(t, writer, writerOptions{writers: 10, streams: 1000, maxBatch: 20, limit: total})

	// Mid-run: the second process dies without a word, and comes back.
	waitLong(t, func() string { return fmt.Sprint(rows(t, table), " rows handled") }, func() bool { return rows(t, table) >= total/3 })
	is.NoErr(members[1].cmd.Process.Signal(syscall.SIGKILL))
	<-members[1].exited
	killedAt := rows(t, table)
	members[1] = startSegmentMember(t, writer.Schema(), table, name)

	w.Wait()
	appended := w.l.len()
	t.Logf("%d events appended in %s", appended, time.Since(start).Round(time.Millisecond))
	is.True(appended >= total)
	waitLong(t, func() string { return fmt.Sprint(rows(t, table), " rows handled of ", appended) }, func() bool { return rows(t, table) >= appended })
	checkReadModel(t, table, appended)
	t.Logf("%d events handled in %s; SIGKILL after %d", appended, time.Since(start).Round(time.Millisecond), killedAt)

	// Evenly spread: 6, 5 and 5 segments, all held, by the three live processes.
	counts := func() []int {
		var c []int
		for h, n := range spread(t, writer, name) {
			if h == "" {
				return nil
			}
			c = append(c, n)
		}
		slices.Sort(c)
		return c
	}
	waitFor(t, func() string { return fmt.Sprint("segments per holder: ", spread(t, writer, name)) },
		func() bool { return slices.Equal(counts(), []int{5, 5, 6}) })
	var pids []string
	for _, m := range members {
		pids = append(pids, strconv.Itoa(m.cmd.Process.Pid))
	}
	for h := range spread(t, writer, name) {
		is.True(slices.ContainsFunc(pids, func(pid string) bool { return strings.Contains(h, ":"+pid+":") })) // a live process holds it
	}
}
