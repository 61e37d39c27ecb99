//go:build unix

package es_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// benchProjectionEvents is how many events the projection benchmarks project (in 1,000 streams);
// ES_BENCH_PROJECTION_EVENTS overrides it.
func benchProjectionEvents(b *testing.B) int {
	n := 20000
	if v := os.Getenv("ES_BENCH_PROJECTION_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// preload appends n events to 1,000 streams, 100 per append, and returns the store.
func preload(b *testing.B, n int) *es.Store {
	store := estest.NewStore(b, nil)
	for i := 0; i < n; i += 100 {
		if err := store.AppendToStream(b.Context(), fmt.Sprintf("acc-%d", (i/100)%1000), es.AnyVersion, events(min(100, n-i))); err != nil {
			b.Fatal(err)
		}
	}
	return store
}

// BenchmarkProjectionProcesses: handler-form throughput of a 16-segment projection of $all over
// 1, 2 and 4 OS processes (TestHelperSegmentMember), catching up on a preloaded store; each
// handler call inserts its batch into a read-model table in one statement. The time runs from
// starting the processes (their start, joins and rebalancing included) to the last row.
// Run with -benchtime=1x.
func BenchmarkProjectionProcesses(b *testing.B) {
	n := benchProjectionEvents(b)
	for _, procs := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				store := preload(b, n)
				table := readModel(b, store)
				b.StartTimer()
				start := time.Now()
				for range procs {
					launchSegmentMember(b, store.Schema(), table, "bench")
				}
				for rows(b, table) < n {
					time.Sleep(10 * time.Millisecond)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
			}
		})
	}
}

// BenchmarkProjectionCatchUp: one process catching up on a preloaded $all, handler form
// (Store.Project: a transaction per batch with the checkpoint in it) against the channel form
// (SubscribeToAll: the same transaction per batch, then Ack), each inserting its batch into a
// read-model table, and each with an empty handler (the runtimes' own cost). Batches of 100.
// Run with -benchtime=1x.
func BenchmarkProjectionCatchUp(b *testing.B) {
	n := benchProjectionEvents(b)
	for _, c := range []struct {
		name    string
		handler bool
		insert  bool
	}{{"handler/insert", true, true}, {"channel/insert", false, true}, {"handler/empty", true, false}, {"channel/empty", false, false}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				store := preload(b, n)
				table := readModel(b, store)
				apply := func(ctx context.Context, tx *sql.Tx, batch []es.RecordedEvent) error {
					if !c.insert {
						return nil
					}
					return batchInsertHandler(table)(ctx, tx, batch)
				}
				b.StartTimer()
				start := time.Now()
				opts := es.SubscriptionOptions{BufferSize: 100, CheckpointThreshold: 100}
				if c.handler {
					p, err := store.Project(b.Context(), es.AllStream, "bench", &es.ProjectionOptions{SubscriptionOptions: opts}, apply)
					if err != nil {
						b.Fatal(err)
					}
					for {
						cp, err := store.SubscriptionCheckpoint(b.Context(), es.AllStream, "bench")
						if err != nil {
							b.Fatal(err)
						}
						if cp >= int64(n) {
							break
						}
						time.Sleep(5 * time.Millisecond)
					}
					b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
					_ = p.Close()
					continue
				}
				sub, err := store.SubscribeToAll(b.Context(), "bench", &opts)
				if err != nil {
					b.Fatal(err)
				}
				db := estest.DB(b)
				for got := 0; got < n; {
					batch := <-sub.Events()
					tx, err := db.BeginTx(b.Context(), nil)
					if err != nil {
						b.Fatal(err)
					}
					if err := apply(b.Context(), tx, batch); err != nil {
						b.Fatal(err)
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
					if err := sub.Ack(batch...); err != nil {
						b.Fatal(err)
					}
					got += len(batch)
				}
				b.ReportMetric(float64(n)/time.Since(start).Seconds(), "events/s")
				_ = sub.Close()
			}
		})
	}
}
