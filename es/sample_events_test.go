package es_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// sampleEvent is one event of the fixtures in testdata/events.
type sampleEvent struct {
	EventType string          `json:"event_type"`
	Data      json.RawMessage `json:"data"`
	Metadata  map[string]any  `json:"metadata"`
}

// TestSampleEventsRoundTrip appends the sample events of testdata/events (odd text, numbers,
// nesting) and reads them back unchanged.
func TestSampleEventsRoundTrip(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "events", "account-1.json"))
	is.NoErr(err)
	var samples []sampleEvent
	is.NoErr(json.Unmarshal(raw, &samples))
	is.True(len(samples) > 0)

	store := estest.NewStore(t, nil)
	in := make([]es.EventData, len(samples))
	for i, s := range samples {
		var data any
		is.NoErr(json.Unmarshal(s.Data, &data))
		in[i] = es.EventData{EventType: s.EventType, Data: data, Metadata: s.Metadata}
	}
	is.NoErr(store.AppendToStream(t.Context(), "account-1", es.NoStream, in))
	out, err := store.ReadStreamForward(t.Context(), "account-1", 0, 100)
	is.NoErr(err)
	is.Equal(len(out), len(samples))
	for i, ev := range out {
		is.Equal(ev.EventType, samples[i].EventType)
		got, err := json.Marshal(ev.Data)
		is.NoErr(err)
		is.Equal(string(got), string(mustCompact(t, samples[i].Data)))
		if len(samples[i].Metadata) > 0 {
			is.Equal(ev.Metadata, samples[i].Metadata)
		}
	}
}

func mustCompact(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
