package es_test

import (
	"context"
	"fmt"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// BenchmarkAppendTelemetry appends one event per operation, without telemetry (none, the
// default) and with the OpenTelemetry SDK. The no-provider cost is none's ns/op against the same
// loop on a commit before telemetry existed (README.md, "Operating", has the figures).
func BenchmarkAppendTelemetry(b *testing.B) {
	for _, bc := range benchTelemetryConfigs(b) {
		b.Run(bc.name, func(b *testing.B) {
			store := estest.NewStore(b, bc.cfg)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if err := store.AppendToStream(ctx, fmt.Sprintf("bench-%d", i%64), es.AnyVersion,
					[]es.EventData{{EventType: "Benched", Data: map[string]int{"i": i}}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchTelemetryConfig struct {
	name string
	cfg  *es.Config
}

// benchTelemetryConfigs: none (the default), and the OpenTelemetry SDK with an in-memory metric
// reader and a tracer that records every span and exports nowhere (the SDK's own cost).
func benchTelemetryConfigs(testing.TB) []benchTelemetryConfig {
	return []benchTelemetryConfig{
		{name: "none", cfg: nil},
		{name: "otel-sdk", cfg: &es.Config{
			MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())),
			TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder())),
		}},
	}
}
