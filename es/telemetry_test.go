package es_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matryer/is"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// collectMetrics reads every metric once through the in-memory reader.
func collectMetrics(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// gaugeFor returns a gauge's value for the data point whose attributes include want.
func gaugeFor[N int64 | float64](t *testing.T, data metricdata.Aggregation, want ...attribute.KeyValue) (N, bool) {
	t.Helper()
	g, ok := data.(metricdata.Gauge[N])
	if !ok {
		return 0, false
	}
next:
	for _, dp := range g.DataPoints {
		for _, kv := range want {
			if v, ok := dp.Attributes.Value(kv.Key); !ok || v != kv.Value {
				continue next
			}
		}
		return dp.Value, true
	}
	return 0, false
}

func sumOf(data metricdata.Aggregation) int64 {
	s, ok := data.(metricdata.Sum[int64])
	if !ok {
		return -1
	}
	var n int64
	for _, dp := range s.DataPoints {
		n += dp.Value
	}
	return n
}

// TestTelemetryWorkload runs a scripted workload against a store with the SDK's in-memory metric
// reader and span recorder: lag rises while the subscriber is stopped and falls after it caught up.
func TestTelemetryWorkload(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	store := estest.NewStore(t, &es.Config{MeterProvider: mp, TracerProvider: tp})

	appendN := func(stream string, n int) {
		t.Helper()
		evs := make([]es.EventData, n)
		for i := range evs {
			evs[i] = es.EventData{EventType: "Tick", Data: map[string]int{"i": i}}
		}
		is.NoErr(store.AppendToStream(ctx, stream, es.AnyVersion, evs))
	}
	consume := func(upTo int64) {
		t.Helper()
		sub, err := store.SubscribeToAll(ctx, "projector", &es.SubscriptionOptions{BufferSize: 100})
		is.NoErr(err)
		for batch := range sub.Events() {
			is.NoErr(sub.Ack(batch...))
			if batch[len(batch)-1].EventNumber >= upTo {
				break
			}
		}
		is.NoErr(sub.Close()) // writes the checkpoint and releases the lease
	}
	subAttrs := []attribute.KeyValue{attribute.String("eventstore.stream", es.AllStream), attribute.String("eventstore.subscription", "projector")}

	appendN("tick-1", 5)
	consume(5)
	m := collectMetrics(t, reader)
	lag, ok := gaugeFor[int64](t, m[es.MetricSubscriptionLag], subAttrs...)
	is.True(ok)
	is.Equal(lag, int64(0)) // caught up
	lagTime, _ := gaugeFor[float64](t, m[es.MetricSubscriptionLagTime], subAttrs...)
	is.Equal(lagTime, 0.0)
	head, _ := gaugeFor[int64](t, m[es.MetricAllHead])
	is.Equal(head, int64(5))
	is.Equal(sumOf(m[es.MetricAppendEvents]), int64(5))
	held, _ := gaugeFor[int64](t, m[es.MetricSubscriptionHeld], subAttrs...)
	is.Equal(held, int64(0)) // released on close

	// The subscriber is stopped: the lag rises with each append.
	appendN("tick-2", 3)
	_, err := store.ReadAllForward(ctx, 0, 100) // settles $all
	is.NoErr(err)
	m = collectMetrics(t, reader)
	lag, _ = gaugeFor[int64](t, m[es.MetricSubscriptionLag], subAttrs...)
	is.Equal(lag, int64(3))
	lagTime, _ = gaugeFor[float64](t, m[es.MetricSubscriptionLagTime], subAttrs...)
	is.True(lagTime > 0) // the oldest waiting event has an age
	pending, _ := gaugeFor[int64](t, m[es.MetricSequencerPending])
	is.Equal(pending, int64(0)) // the read settled $all
	is.Equal(sumOf(m[es.MetricAppendEvents]), int64(8))
	is.Equal(sumOf(m[es.MetricReadEvents]), int64(8))
	hist, ok := m[es.MetricAppendDuration].(metricdata.Histogram[float64])
	is.True(ok)
	var appends uint64
	for _, dp := range hist.DataPoints {
		appends += dp.Count
	}
	is.Equal(appends, uint64(2))

	// It runs again and catches up: the lag falls back to 0.
	consume(8)
	m = collectMetrics(t, reader)
	lag, _ = gaugeFor[int64](t, m[es.MetricSubscriptionLag], subAttrs...)
	is.Equal(lag, int64(0))
	is.True(sumOf(m[es.MetricSubscriptionEvents]) >= 8) // at least once: 8 delivered, maybe again
	is.True(sumOf(m[es.MetricSequencerPasses]) >= 1)

	names := map[string]int{}
	for _, s := range spans.Ended() {
		names[s.Name()]++
	}
	is.Equal(names["eventstore.append"], 2)
	is.Equal(names["eventstore.read"], 1)
	is.True(names["eventstore.sequencer.pass"] >= 1)
	is.True(names["eventstore.subscription.batch"] >= 2)
}

// TestTelemetryClosedStore: a closed store's callback is unregistered, so collecting after Close
// neither queries nor fails.
func TestTelemetryClosedStore(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	reader := sdkmetric.NewManualReader()
	store := estest.NewStore(t, &es.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	is.NoErr(store.Close())
	m := collectMetrics(t, reader)
	_, ok := gaugeFor[int64](t, m[es.MetricAllHead])
	is.True(!ok)
}

// TestListSubscriptionsParked: ListSubscriptions counts a projection's parked events, the failed
// one and those waiting behind it, and counts none once they are discarded and applied.
func TestListSubscriptionsParked(t *testing.T) {
	store, ctx, is := setupSub(t, nil)
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "a", es.NoStream, events(4)))
	is.NoErr(store.AppendToStream(ctx, "b", es.NoStream, events(2)))
	is.NoErr(store.SetSubscriptionCheckpoint(ctx, es.AllStream, "other", 0))
	var poison atomic.Bool
	poison.Store(true)
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		MaxAttempts: 1, MinBackoff: time.Millisecond,
	}, poisoned(table, &poison))
	is.NoErr(err)
	defer func() { is.NoErr(p.Close()) }()
	checkpointReaches(t, store, es.AllStream, "rm", 6)
	parked := func() map[string]int64 {
		subs, err := store.ListSubscriptions(ctx, es.ListSubscriptionsOptions{Stream: es.AllStream})
		is.NoErr(err)
		out := map[string]int64{}
		for _, s := range subs {
			out[s.Name] = s.Parked
		}
		return out
	}
	is.Equal(parked(), map[string]int64{"other": 0, "rm": 3}) // a/2 parked, a/3 and a/4 waiting

	_, err = store.DiscardParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	parkedUntil(t, store, es.AllStream, "rm", func(ps []es.ParkedEvent) bool { return len(ps) == 0 })
	is.Equal(parked(), map[string]int64{"other": 0, "rm": 0})
}

// TestTelemetryParked: the parked gauge reports a projection's parked events, and 0 once the
// event is discarded.
func TestTelemetryParked(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	store, ctx, is := setupSub(t, &es.Config{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	table := readModel(t, store)
	is.NoErr(store.AppendToStream(ctx, "a", es.NoStream, events(3)))
	var poison atomic.Bool
	poison.Store(true)
	p, err := store.Project(ctx, es.AllStream, "rm", &es.ProjectionOptions{
		MaxAttempts: 1, MinBackoff: time.Millisecond, ParkPolicy: es.ParkSkip,
	}, poisoned(table, &poison))
	is.NoErr(err)
	defer func() { is.NoErr(p.Close()) }()
	checkpointReaches(t, store, es.AllStream, "rm", 3)
	attrs := []attribute.KeyValue{attribute.String("eventstore.stream", es.AllStream), attribute.String("eventstore.subscription", "rm")}
	n, ok := gaugeFor[int64](t, collectMetrics(t, reader)[es.MetricSubscriptionParked], attrs...)
	is.True(ok)
	is.Equal(n, int64(1))

	_, err = store.DiscardParked(ctx, es.AllStream, "rm")
	is.NoErr(err)
	n, ok = gaugeFor[int64](t, collectMetrics(t, reader)[es.MetricSubscriptionParked], attrs...)
	is.True(ok)
	is.Equal(n, int64(0))
}
