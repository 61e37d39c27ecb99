package es_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// The $all invariants of docs/design.md ("The $all stream") under real concurrency: writers inside and outside
// callers' transactions, on their own and on shared streams, with random delays and rollbacks,
// through two Stores on one schema (two sequencers, as two processes would run), while readers
// tail $all. Positions are 1..N without gaps, each committed event appears exactly once, no
// rolled-back event appears, each stream's events appear in version order, and no reader ever
// sees a position appear below one it has already seen.
func TestAllInvariantsUnderConcurrency(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	store := estest.NewStore(t, nil)
	db := estest.DB(t)
	other, err := es.New(db, &es.Config{Schema: store.Schema()})
	is.NoErr(err)
	t.Cleanup(func() { _ = other.Close() })
	stores := []*es.Store{store, other}

	const writers, target = 8, 5000
	var (
		mu         sync.Mutex
		committed  = map[uuid.UUID]string{} // event id -> stream
		rolledBack = map[uuid.UUID]bool{}
		total      atomic.Int64
		wg         sync.WaitGroup
		writersWG  sync.WaitGroup
		writeErr   = make(chan error, writers)
	)
	for w := range writers {
		writersWG.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			s := stores[w%2]
			for total.Load() < target {
				stream := fmt.Sprintf("w%d-%d", w, rng.IntN(4))
				if rng.IntN(4) == 0 {
					stream = fmt.Sprintf("shared-%d", rng.IntN(2))
				}
				batch := events(1 + rng.IntN(5))
				for i := range batch {
					batch[i].EventID = uuid.New()
				}
				inTx, rollback := rng.IntN(2) == 0, rng.IntN(6) == 0
				var err error
				if inTx {
					err = appendInTx(ctx, db, s, stream, batch, time.Duration(rng.IntN(2000))*time.Microsecond, rollback)
				} else {
					rollback = false
					err = s.AppendToStream(ctx, stream, es.AnyVersion, batch)
				}
				if err != nil {
					writeErr <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				mu.Lock()
				for _, e := range batch {
					if rollback {
						rolledBack[e.EventID] = true
					} else {
						committed[e.EventID] = stream
					}
				}
				mu.Unlock()
				if !rollback {
					total.Add(int64(len(batch)))
				}
			}
		})
	}

	// Readers tail $all and must see a gap-free, strictly growing prefix.
	var writing atomic.Bool
	writing.Store(true)
	readerErr := make(chan error, 3)
	for r := range 3 {
		wg.Go(func() {
			s := stores[r%2]
			var last int64
			seen := map[uuid.UUID]bool{}
			for {
				done := !writing.Load()
				batch, err := s.ReadAllForward(ctx, last+1, 500)
				if err != nil {
					readerErr <- err
					return
				}
				for _, ev := range batch {
					if ev.EventNumber != last+1 {
						readerErr <- fmt.Errorf("reader %d: saw position %d after %d", r, ev.EventNumber, last)
						return
					}
					if seen[ev.EventID] {
						readerErr <- fmt.Errorf("reader %d: event %s twice", r, ev.EventID)
						return
					}
					seen[ev.EventID] = true
					last = ev.EventNumber
				}
				if done && len(batch) == 0 {
					return
				}
			}
		})
	}
	writersWG.Wait()
	writing.Store(false)
	wg.Wait()
	close(writeErr)
	close(readerErr)
	for err := range writeErr {
		t.Fatal(err)
	}
	for err := range readerErr {
		t.Fatal(err)
	}

	var all []es.RecordedEvent
	for ev, err := range store.StreamAllForward(ctx, 0, es.WithBatchSize(700)) {
		is.NoErr(err)
		all = append(all, ev)
	}
	is.True(len(all) >= target)
	is.Equal(len(all), len(committed))
	lastVersion := map[string]int64{}
	for i, ev := range all {
		is.Equal(ev.EventNumber, int64(i+1)) // gap-free
		stream, ok := committed[ev.EventID]
		is.True(ok)                      // committed, so not rolled back
		is.True(!rolledBack[ev.EventID]) // never a rolled-back event
		is.Equal(ev.StreamID, stream)
		is.True(ev.StreamVersion > lastVersion[stream]) // stream order kept in $all
		lastVersion[stream] = ev.StreamVersion
		delete(committed, ev.EventID) // exactly once
	}
	is.Equal(len(committed), 0)
}

func appendInTx(ctx context.Context, db *sql.DB, s *es.Store, stream string, batch []es.EventData, delay time.Duration, rollback bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.AppendToStream(ctx, stream, es.AnyVersion, batch, es.WithTx(tx)); err != nil {
		return err
	}
	time.Sleep(delay)
	if rollback {
		return tx.Rollback()
	}
	return tx.Commit()
}
