package admincli

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/go-eventstore/eventstore/es"
)

// schemaOf returns the fresh schema estest gave a test store, which es-admin must be pointed at.
func schemaOf(t *testing.T, store *es.Store) string {
	t.Helper()
	return store.Schema()
}

// waitABit yields while polling for a condition (never an assertion on time).
func waitABit() { time.Sleep(10 * time.Millisecond) }

// poisonSet is the event ids a test projection's handler fails on; a test removes one to let a
// retry succeed.
type poisonSet struct {
	mu  sync.Mutex
	ids map[uuid.UUID]bool
}

func newPoison(ids ...uuid.UUID) *poisonSet {
	p := &poisonSet{ids: map[uuid.UUID]bool{}}
	for _, id := range ids {
		p.ids[id] = true
	}
	return p
}

func (p *poisonSet) cure(id uuid.UUID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.ids, id)
}

func (p *poisonSet) has(id uuid.UUID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[id]
}

// project runs the projection name on $all whose handler fails on the poisoned events, one
// attempt each, so that they are parked, and waits until its checkpoint reached the $all head
// and it parked want events (those waiting behind one included). The test's end closes it.
func project(t *testing.T, store *es.Store, name string, poison *poisonSet, want int) *es.Projection {
	t.Helper()
	ctx := context.Background()
	info, err := store.StreamInfo(ctx, es.AllStream)
	if err != nil {
		t.Fatal(err)
	}
	p, err := store.Project(ctx, es.AllStream, name, &es.ProjectionOptions{MaxAttempts: 1, MinBackoff: time.Millisecond},
		func(_ context.Context, _ *sql.Tx, batch []es.RecordedEvent) error {
			for _, ev := range batch {
				if poison.has(ev.EventID) {
					return fmt.Errorf("cannot apply %s %s@%d: account frozen", ev.EventType, ev.StreamID, ev.StreamVersion)
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	parkedUntil(t, store, name, func(ps []es.ParkedEvent) bool {
		cp, err := store.SubscriptionCheckpoint(ctx, es.AllStream, name)
		return err == nil && cp >= info.StreamVersion && len(ps) == want
	})
	return p
}

// parkedUntil polls the parked events of the projection name on $all until ok accepts them. The
// deadline only keeps a broken test from hanging; no assertion depends on it.
func parkedUntil(t *testing.T, store *es.Store, name string, ok func([]es.ParkedEvent) bool) []es.ParkedEvent {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ps, err := store.ListParked(context.Background(), es.AllStream, name)
		if err != nil {
			t.Fatal(err)
		}
		if ok(ps) {
			return ps
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked events of %s: %+v", name, ps)
		}
		waitABit()
	}
}
