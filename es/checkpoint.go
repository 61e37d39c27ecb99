package es

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// checkpointer decides when a persistent subscription writes its checkpoint: after
// CheckpointThreshold acknowledged (or stepped-over) events, or CheckpointAfter after the first
// of them. It holds no database state; the runner writes, fenced by its lease's epoch.
type checkpointer struct {
	threshold int
	after     time.Duration

	written     int64     // the last position written (or, transient, kept in memory)
	unwritten   int       // events done with since
	unwrittenAt time.Time // when the first of them was done with
}

// progress counts n events done with.
func (c *checkpointer) progress(n int, now time.Time) {
	if n <= 0 {
		return
	}
	if c.unwritten == 0 {
		c.unwrittenAt = now
	}
	c.unwritten += n
}

// due says whether pos should be written now (force: on a clean stop).
func (c *checkpointer) due(pos int64, force bool, now time.Time) bool {
	if pos <= c.written {
		return false
	}
	return force || c.unwritten >= c.threshold ||
		(c.after > 0 && c.unwritten > 0 && now.Sub(c.unwrittenAt) >= c.after)
}

// wrote records a successful write of pos that covered n of the unwritten events.
func (c *checkpointer) wrote(pos int64, n int) {
	c.written = max(c.written, pos)
	c.unwritten = max(c.unwritten-n, 0)
}

// timer says how long until CheckpointAfter requires a write, if it will.
func (c *checkpointer) timer(now time.Time) (time.Duration, bool) {
	if c.after <= 0 || c.unwritten == 0 {
		return 0, false
	}
	return max(c.unwrittenAt.Add(c.after).Sub(now), 0), true
}

// reset restarts the count from a checkpoint read from the database.
func (c *checkpointer) reset(pos int64) {
	c.written = pos
	c.unwritten = 0
}

// checkpointWriter writes the running subscriptions' checkpoints of one Store in batches: every
// write waiting when a flush starts goes in one statement (WriteCheckpoints), each fenced by its
// epoch. A thousand subscriptions that acknowledge at once cost one statement, not a thousand
// commits on the pool. Writers wait for the flush that carries their write.
type checkpointWriter struct {
	s    *Store
	kick chan struct{}

	mu      sync.Mutex
	pending []*checkpointWrite
}

type checkpointWrite struct {
	id, epoch, pos, pk int64
	forward            bool // never back (projections): see WriteCheckpoint
	written            bool
	done               chan error
}

func newCheckpointWriter(s *Store) *checkpointWriter {
	return &checkpointWriter{s: s, kick: make(chan struct{}, 1)}
}

// write queues a fenced checkpoint write and waits for its flush. It reports whether the row was
// written (false: fenced, or the subscription deleted).
func (w *checkpointWriter) write(ctx context.Context, id, epoch, pos, pk int64, forward bool) (bool, error) {
	req := &checkpointWrite{id: id, epoch: epoch, pos: pos, pk: pk, forward: forward, done: make(chan error, 1)}
	w.mu.Lock()
	w.pending = append(w.pending, req)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	select {
	case err := <-req.done:
		return req.written, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (w *checkpointWriter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			w.fail(ctx.Err())
			return
		case <-w.kick:
		}
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		w.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		p := db.WriteCheckpointsParams{}
		for _, r := range batch {
			p.Ids, p.Epochs = append(p.Ids, r.id), append(p.Epochs, r.epoch)
			p.Positions, p.StreamPks = append(p.Positions, r.pos), append(p.StreamPks, r.pk)
			p.Forwards = append(p.Forwards, r.forward)
		}
		ids, err := w.s.q.WriteCheckpoints(ctx, w.s.tmpl.Wrap(w.s.db), p)
		for _, r := range batch {
			r.written = err == nil && slices.Contains(ids, r.id)
			r.done <- err
		}
	}
}

// fail ends the writes still waiting when the store stops.
func (w *checkpointWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.pending {
		r.done <- err
	}
	w.pending = nil
}
