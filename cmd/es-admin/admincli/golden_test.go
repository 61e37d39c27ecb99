package admincli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/es-admin")

// goldenDir holds es-admin's expected outputs, one file per scenario.
var goldenDir = filepath.Join("..", "..", "..", "testdata", "es-admin")

var normalizers = []struct {
	re *regexp.Regexp
	to string
}{
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`), "<time>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`), "<time>             "},
	{regexp.MustCompile(`"lag_seconds":[0-9.e+-]+`), `"lag_seconds":<seconds>`},
	{regexp.MustCompile(`  (\d+h)?(\d+m)?\d+s  `), "  <dur>  "},
}

// syncBuffer is a bytes.Buffer safe for a running command and a test reading it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// transcript runs es-admin once and returns what it printed, as the golden files show it.
func transcript(ctx context.Context, t *testing.T, schema string, args ...string) string {
	var stdout, stderr syncBuffer
	code := Run(ctx, append([]string{"--driver", estest.Driver(), "--database-url", estest.DSN(t), "--schema", schema}, args...), &stdout, &stderr)
	return format(args, code, stdout.String(), stderr.String())
}

func format(args []string, code int, stdout, stderr string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ es-admin %s\n[exit %d]\n%s", strings.Join(args, " "), code, stdout)
	for _, line := range strings.SplitAfter(stderr, "\n") {
		if line != "" {
			b.WriteString("stderr: " + line)
		}
	}
	b.WriteString("\n")
	return b.String()
}

// golden compares out, with the schema and times normalized, with testdata/es-admin/<name>.golden.
// Both drivers must print the same.
func golden(t *testing.T, name, schema, out string) {
	t.Helper()
	out = strings.ReplaceAll(out, schema, "<schema>")
	for _, n := range normalizers {
		out = n.re.ReplaceAllString(out, n.to)
	}
	path := filepath.Join(goldenDir, name+".golden")
	if *update && estest.Driver() == estest.Drivers[0] {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/es-admin/admincli -run TestGolden -update to write it)", err)
	}
	if out != string(want) {
		t.Errorf("es-admin output differs from %s (driver %s; -update rewrites it):\n--- got\n%s\n--- want\n%s", path, estest.Driver(), out, want)
	}
}

// testID is the event id n of the seeded events.
func testID(n int) uuid.UUID { return uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012d", n)) }

// seed appends a small, fixed set of events and makes a subscription two events behind.
func seed(t *testing.T, store *es.Store) {
	is := is.New(t)
	ctx := context.Background()
	id := testID
	is.NoErr(store.AppendToStream(ctx, "account-1", es.NoStream, []es.EventData{
		{EventID: id(1), EventType: "AccountOpened", Data: map[string]any{"owner": "Ada"}, Metadata: map[string]any{"by": "test"}},
		{EventID: id(2), EventType: "MoneyDeposited", Data: map[string]any{"amount": 10}},
	}))
	is.NoErr(store.AppendToStream(ctx, "account-2", es.NoStream, []es.EventData{
		{EventID: id(3), EventType: "AccountOpened", Data: map[string]any{"owner": "Grace"}},
	}))
	is.NoErr(store.AppendToStream(ctx, "order-1", es.NoStream, []es.EventData{
		{EventID: id(4), EventType: "OrderPlaced", Data: map[string]any{"total": 25}},
	}))
	_, err := store.ReadAllForward(ctx, 0, 1) // settles $all
	is.NoErr(err)
	is.NoErr(store.SetSubscriptionCheckpoint(ctx, es.AllStream, "projector", 2))
	is.NoErr(store.SetSubscriptionCheckpoint(ctx, "account-1", "mailer", 1))
}

func TestGoldenCommands(t *testing.T) {
	t.Parallel()
	store := estest.NewStore(t, nil)
	schema := schemaOf(t, store)
	seed(t, store)
	ctx := t.Context()
	var out strings.Builder
	for _, args := range [][]string{
		{"streams"},
		{"streams", "--search", "acc", "--json"},
		{"streams", "--page-size", "2", "--page", "2"},
		{"read", "account-1"},
		{"read", "account-1", "--json"},
		{"read", "$all", "--count", "3"},
		{"read", "$all", "--backward", "--count", "2", "--json"},
		{"read", "$all", "--category", "order"},
		{"read", "missing-1"},
		{"subscriptions"},
		{"subscriptions", "--json", "--stream", "$all"},
		{"set-checkpoint", "$all", "projector", "4"},
		{"subscriptions"},
		{"reset-checkpoint", "$all", "projector"},
		{"subscriptions", "--stream", "$all"},
		{"set-checkpoint", "$all", "projector", "x"},
		{"parked"},
		{"frobnicate"},
	} {
		out.WriteString(transcript(ctx, t, schema, args...))
	}
	golden(t, "commands", schema, out.String())
}

// TestGoldenTail follows a category from now on: what was appended before is not printed, what
// is appended after is, until --count events.
func TestGoldenTail(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	store := estest.NewStore(t, nil)
	schema := schemaOf(t, store)
	seed(t, store)
	args := []string{"tail", "account", "--count", "2"}
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- Run(t.Context(), append([]string{"--driver", estest.Driver(), "--database-url", estest.DSN(t), "--schema", schema}, args...), &stdout, &stderr)
	}()
	for !strings.Contains(stderr.String(), "following") {
		select {
		case code := <-done:
			t.Fatalf("tail ended early with %d: %s", code, stderr.String())
		default:
			waitABit()
		}
	}
	ctx := context.Background()
	is.NoErr(store.AppendToStream(ctx, "order-2", es.NoStream, []es.EventData{{EventType: "OrderPlaced", Data: map[string]any{"total": 1}}}))
	is.NoErr(store.AppendToStream(ctx, "account-3", es.NoStream, []es.EventData{{EventType: "AccountOpened", Data: map[string]any{"owner": "Linus"}}}))
	is.NoErr(store.AppendToStream(ctx, "account-1", es.StreamExists, []es.EventData{{EventType: "MoneyWithdrawn", Data: map[string]any{"amount": 3}}}))
	code := <-done
	golden(t, "tail", schema, format(args, code, stdout.String(), stderr.String()))
}

// seedParked adds to seed a withdrawal from account-1 ($all position 5) and runs the projection
// balances, whose handler fails on the poisoned events: with account-1's deposit ($all position
// 2) poisoned, it parks the deposit, and the withdrawal waits behind it (same stream, the
// default partition key). It waits for want parked events and returns the projection, still
// running.
func seedParked(t *testing.T, store *es.Store, poison *poisonSet, want int) *es.Projection {
	is := is.New(t)
	ctx := context.Background()
	is.NoErr(store.AppendToStream(ctx, "account-1", 2, []es.EventData{
		{EventID: testID(5), EventType: "MoneyWithdrawn", Data: map[string]any{"amount": 4}},
	}))
	_, err := store.ReadAllForward(ctx, 0, 1) // settles $all
	is.NoErr(err)
	return project(t, store, "balances", poison, want)
}

// TestGoldenParked lists a projection's parked events, retries and discards them by id and with
// --all, and shows the parked counts in the subscriptions list.
func TestGoldenParked(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	store := estest.NewStore(t, nil)
	schema := schemaOf(t, store)
	seed(t, store)
	p := seedParked(t, store, newPoison(testID(2)), 2)
	is.NoErr(p.Close()) // nothing changes the parked events but the commands below
	ps, err := store.ListParked(t.Context(), es.AllStream, "balances")
	is.NoErr(err)
	is.Equal(len(ps), 2)
	failed, waiting := fmt.Sprint(ps[0].ID), fmt.Sprint(ps[1].ID)
	ctx := t.Context()
	var out strings.Builder
	for _, args := range [][]string{
		{"subscriptions", "--stream", "$all"},
		{"subscriptions", "--json", "--stream", "$all"},
		{"parked", "$all", "balances"},
		{"parked", "$all", "balances", "--json"},
		{"retry-parked", "$all", "balances"},
		{"retry-parked", "$all", "balances", failed, "--all"},
		{"retry-parked", "$all", "balances", "x"},
		{"retry-parked", "$all", "balances", failed, waiting}, // the waiting one is not retried alone
		{"parked", "$all", "balances"},
		{"discard-parked", "$all", "balances", failed},
		{"parked", "$all", "balances"}, // the withdrawal is handed to the projection
		{"discard-parked", "$all", "balances", "--all"},
		{"parked", "$all", "balances"},
		{"subscriptions", "--stream", "$all"},
		{"parked", "$all", "missing"},
		{"discard-parked", "$all", "missing", "--all"},
		{"parked", "$all"},
	} {
		out.WriteString(transcript(ctx, t, schema, args...))
	}
	golden(t, "parked", schema, out.String())
}
