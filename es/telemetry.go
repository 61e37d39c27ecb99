package es

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-eventstore/eventstore/db"
)

// InstrumentationName is the OpenTelemetry instrumentation scope of the store's tracer and meter.
const InstrumentationName = "github.com/go-eventstore/eventstore/es"

// Metric names (see README.md, "Operating"). Every metric carries the attribute
// eventstore.schema; per-subscription ones also eventstore.stream and eventstore.subscription,
// and the gauges eventstore.segment (a segmented projection's segment, 0 without segments).
const (
	MetricAppendDuration      = "eventstore.append.duration"       // histogram, s: appends, by outcome
	MetricAppendEvents        = "eventstore.append.events"         // counter: events appended
	MetricReadEvents          = "eventstore.read.events"           // counter: events returned by reads
	MetricSequencerPasses     = "eventstore.sequencer.passes"      // counter: passes that numbered appends
	MetricAllHead             = "eventstore.all.head"              // gauge: the last $all position
	MetricSequencerPending    = "eventstore.sequencer.pending"     // gauge: appends not yet in $all
	MetricSubscriptionLag     = "eventstore.subscription.lag"      // gauge: events after the checkpoint
	MetricSubscriptionLagTime = "eventstore.subscription.lag.time" // gauge, s: age of the oldest of them
	MetricSubscriptionHeld    = "eventstore.subscription.held"     // gauge: 1 while a lease runs, else 0
	MetricSubscriptionParked  = "eventstore.subscription.parked"   // gauge: parked events, any status
	MetricSubscriptionEvents  = "eventstore.subscription.events"   // counter: events handed to subscribers here
)

// Attribute keys of the store's spans and metrics.
const (
	attrSchema       = attribute.Key("eventstore.schema")
	attrStream       = attribute.Key("eventstore.stream")
	attrSubscription = attribute.Key("eventstore.subscription")
	attrSegment      = attribute.Key("eventstore.segment") // 0 without segments
	attrOutcome      = attribute.Key("eventstore.outcome")
	attrEvents       = attribute.Key("eventstore.events")
	attrOperation    = attribute.Key("eventstore.operation")
)

// telemetry holds the store's tracer and instruments. A Store without Config.MeterProvider and
// Config.TracerProvider has a nil *telemetry, and every method below returns at its first line:
// no span, no clock read, no allocation.
type telemetry struct {
	tracer trace.Tracer // nil without a TracerProvider
	meter  metric.Meter // nil without a MeterProvider
	schema attribute.KeyValue
	attrs  metric.MeasurementOption // the schema attribute, for measurements

	appendDuration metric.Float64Histogram
	appendEvents   metric.Int64Counter
	readEvents     metric.Int64Counter
	seqPasses      metric.Int64Counter
	subEvents      metric.Int64Counter
	registration   metric.Registration
}

func newTelemetry(s *Store, schema string, mp metric.MeterProvider, tp trace.TracerProvider) (*telemetry, error) {
	if mp == nil && tp == nil {
		return nil, nil
	}
	t := &telemetry{schema: attrSchema.String(schema)}
	t.attrs = metric.WithAttributes(t.schema)
	if tp != nil {
		t.tracer = tp.Tracer(InstrumentationName)
	}
	if mp == nil {
		return t, nil
	}
	m := mp.Meter(InstrumentationName)
	t.meter = m
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	t.appendDuration, err = m.Float64Histogram(MetricAppendDuration, metric.WithUnit("s"),
		metric.WithDescription("How long appends take, from call to return, by outcome (ok or error)."))
	add(err)
	t.appendEvents, err = m.Int64Counter(MetricAppendEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Events appended (successful appends only)."))
	add(err)
	t.readEvents, err = m.Int64Counter(MetricReadEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Events returned by reads of streams and $all."))
	add(err)
	t.seqPasses, err = m.Int64Counter(MetricSequencerPasses, metric.WithUnit("{pass}"),
		metric.WithDescription("Sequencer passes of this process that gave $all positions to appends."))
	add(err)
	t.subEvents, err = m.Int64Counter(MetricSubscriptionEvents, metric.WithUnit("{event}"),
		metric.WithDescription("Events handed to this process's subscribers, by subscription."))
	add(err)
	head, err := m.Int64ObservableGauge(MetricAllHead, metric.WithUnit("{event}"),
		metric.WithDescription("The last $all position."))
	add(err)
	pending, err := m.Int64ObservableGauge(MetricSequencerPending, metric.WithUnit("{append}"),
		metric.WithDescription("Committed appends not yet given $all positions: the sequencer's lag."))
	add(err)
	lag, err := m.Int64ObservableGauge(MetricSubscriptionLag, metric.WithUnit("{event}"),
		metric.WithDescription("Events after a persistent subscription's checkpoint."))
	add(err)
	lagTime, err := m.Float64ObservableGauge(MetricSubscriptionLagTime, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest event after a persistent subscription's checkpoint (0: none)."))
	add(err)
	held, err := m.Int64ObservableGauge(MetricSubscriptionHeld, metric.WithUnit("1"),
		metric.WithDescription("1 while a process holds the subscription's lease, else 0."))
	add(err)
	parked, err := m.Int64ObservableGauge(MetricSubscriptionParked, metric.WithUnit("{event}"),
		metric.WithDescription("A persistent subscription's parked events (failed, waiting or marked for a retry)."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// One callback, two queries per collection, whatever the number of subscriptions. Every
	// process with a MeterProvider reports the same schema-wide values: aggregate with max.
	t.registration, err = m.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		r, err := s.q.PendingAppends(ctx, s.tmpl.Wrap(s.db))
		if err != nil {
			return err
		}
		o.ObserveInt64(head, r.LastPosition, t.attrs)
		o.ObserveInt64(pending, r.Pending, t.attrs)
		subs, err := s.ListSubscriptions(ctx, ListSubscriptionsOptions{})
		if err != nil {
			return err
		}
		for _, in := range subs {
			attrs := metric.WithAttributes(t.schema, attrStream.String(in.Stream), attrSubscription.String(in.Name),
				attrSegment.Int(in.Segment))
			o.ObserveInt64(lag, in.Lag, attrs)
			o.ObserveFloat64(lagTime, in.LagSeconds, attrs)
			h := int64(0)
			if in.Held {
				h = 1
			}
			o.ObserveInt64(held, h, attrs)
			o.ObserveInt64(parked, in.Parked, attrs)
		}
		return nil
	}, head, pending, lag, lagTime, held, parked)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// close unregisters the metric callback, so a closed store is not queried.
func (t *telemetry) close() {
	if t != nil && t.registration != nil {
		_ = t.registration.Unregister()
	}
}

// opSpan is an operation in progress: a span when tracing, and its start for the duration.
type opSpan struct {
	t     *telemetry
	span  trace.Span
	start time.Time
}

// start begins an operation (spanName: eventstore.append, eventstore.read) on stream.
func (t *telemetry) start(ctx context.Context, spanName, op, stream string) (context.Context, opSpan) {
	if t == nil {
		return ctx, opSpan{}
	}
	o := opSpan{t: t, start: time.Now()}
	if t.tracer != nil {
		ctx, o.span = t.tracer.Start(ctx, spanName, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(t.schema, attrOperation.String(op), attrStream.String(stream)))
	}
	return ctx, o
}

// endAppend ends an append of n events.
func (o opSpan) endAppend(ctx context.Context, n int, err error) {
	if o.t == nil {
		return
	}
	o.endSpan(n, err)
	if o.t.meter == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	o.t.appendDuration.Record(ctx, time.Since(o.start).Seconds(), metric.WithAttributes(o.t.schema, attrOutcome.String(outcome)))
	if err == nil {
		o.t.appendEvents.Add(ctx, int64(n), o.t.attrs)
	}
}

// endRead ends a read that returned n events.
func (o opSpan) endRead(ctx context.Context, n int, err error) {
	if o.t == nil {
		return
	}
	o.endSpan(n, err)
	if o.t.meter != nil && n > 0 {
		o.t.readEvents.Add(ctx, int64(n), o.t.attrs)
	}
}

func (o opSpan) endSpan(n int, err error) {
	if o.span == nil {
		return
	}
	o.span.SetAttributes(attrEvents.Int(n))
	if err != nil {
		o.span.RecordError(err)
		o.span.SetStatus(codes.Error, err.Error())
	}
	o.span.End()
}

// sequencerPass records a pass that began at start, after the fact, only when it numbered
// appends: idle passes (every SequencerInterval) make neither spans nor counts.
func (t *telemetry) sequencerPass(start time.Time, r db.SequenceAllRow, err error) {
	if t == nil || (err == nil && r.Appends == 0) {
		return
	}
	ctx := context.Background()
	if t.tracer != nil {
		_, span := t.tracer.Start(ctx, "eventstore.sequencer.pass", trace.WithTimestamp(start),
			trace.WithAttributes(t.schema, attribute.Int64("eventstore.appends", int64(r.Appends)),
				attribute.Int64("eventstore.last_position", r.LastPosition)))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	if t.meter != nil && err == nil {
		t.seqPasses.Add(ctx, 1, t.attrs)
	}
}

// subscriptionBatch records a batch handed to a subscriber of a persistent subscription.
func (t *telemetry) subscriptionBatch(stream, name string, batch []RecordedEvent) {
	if t == nil || len(batch) == 0 {
		return
	}
	ctx := context.Background()
	if t.tracer != nil {
		_, span := t.tracer.Start(ctx, "eventstore.subscription.batch", trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(t.schema, attrStream.String(stream), attrSubscription.String(name),
				attrEvents.Int(len(batch)),
				attribute.Int64("eventstore.first_position", batch[0].EventNumber),
				attribute.Int64("eventstore.last_position", batch[len(batch)-1].EventNumber)))
		span.End()
	}
	if t.meter != nil {
		t.subEvents.Add(ctx, int64(len(batch)), metric.WithAttributes(t.schema, attrStream.String(stream), attrSubscription.String(name)))
	}
}
