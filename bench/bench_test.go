package bench_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/bench"
	"github.com/go-eventstore/eventstore/estest"
)

func TestMain(m *testing.M) { estest.Main(m) }

// TestHarness runs every workload for a moment against the shared throwaway server (fsync off),
// to prove the harness works: every figure is positive and every ratio computed. It asserts
// nothing about speed.
func TestHarness(t *testing.T) {
	is := is.New(t)
	var progress bytes.Buffer
	rep, err := bench.Run(t.Context(), bench.Config{
		DatabaseURL:      estest.DSN(t),
		Drivers:          []string{estest.Driver()},
		Duration:         100 * time.Millisecond,
		Warmup:           20 * time.Millisecond,
		Workloads:        bench.AllWorkloads,
		Levels:           []int{1, 4}, // the harness is the same at any concurrency; 100 only costs time
		BigLevels:        []int{2},
		LoadEvents:       2500, // three streams: 1000, 1000 and 500 events
		Subscriptions:    20,
		LoadWriters:      2,
		LatencyMinEvents: 20,
		SoakDuration:     300 * time.Millisecond,
		SoakInterval:     100 * time.Millisecond,
		SoakRate:         200,
		Progress:         &progress,
	})
	if err != nil || testing.Verbose() {
		t.Log(progress.String())
	}
	is.NoErr(err)

	want := map[string]bool{
		"append 1 event/call, 4 writers, distinct streams":                                                        false,
		"append 100 events/call, 1 writer, distinct streams":                                                      false,
		"append 1 event/call, 10 writers, one stream (AnyVersion)":                                                false,
		"read a 100-event stream, 4 readers":                                                                      false,
		"preload 2,500 events (1000/call, 2 writers)":                                                             false,
		"[2,500 loaded] append 100 events/call, 2 writers, distinct streams":                                      false,
		"[2,500 loaded] read the first 100 events of a 1000-event stream, 1 reader":                               false,
		"append parts, the store's append, $all sequencer held back, 1 event/call, 10 writers":                    false,
		"append parts, floor: the stream row's UPDATE and the event's INSERT (2 indexes), 1 event/call, 1 writer": false,
	}
	var latency, catchup, soak bool
	for _, r := range rep.Results {
		is.Equal(r.Driver, estest.Driver())
		is.NoErr(r.Err)
		if r.Store <= 0 {
			t.Errorf("%s: store figure %v", r.Workload, r.Store)
		}
		if _, ok := want[r.Workload]; ok {
			want[r.Workload] = true
		}
		switch {
		case strings.HasPrefix(r.Workload, "soak:"):
			soak = true
			is.True(len(r.Notes) >= 2) // a line per interval, and the trend
			is.Equal(r.RatioString(), "-")
		case r.Latency != nil:
			latency = true
			is.True(r.Latency.N >= 20)
			is.True(r.Latency.P50 <= r.Latency.P99 && r.Latency.P99 <= r.Latency.Max)
			is.Equal(r.RatioString(), "-")
		default:
			catchup = catchup || strings.HasPrefix(r.Workload, "$all catch-up of 2,500 events")
			if r.Raw <= 0 {
				t.Errorf("%s: raw figure %v", r.Workload, r.Raw)
			}
			ratio, ok := r.Ratio()
			is.True(ok)
			is.True(ratio > 0)
			is.True(strings.HasSuffix(r.RatioString(), "x"))
		}
	}
	for w, seen := range want {
		if !seen {
			t.Errorf("no result for %q", w)
		}
	}
	is.True(latency)
	is.True(catchup)
	is.True(soak)
	// 2 + 2 + 1 + 2 append and read levels, latency, preload, catch-up, 2 big appends, 2 big reads,
	// 4 filtered reads, many subscriptions, soak, 4 append parts at 2 levels.
	is.Equal(len(rep.Results), 28)

	var out bytes.Buffer
	is.NoErr(rep.WriteMarkdown(&out))
	for _, s := range []string{"| workload | driver | store | raw | ratio |", "fsync=", "synchronous_commit=", "PostgreSQL", "GOMAXPROCS"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}
}
