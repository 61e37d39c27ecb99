package es

import (
	"context"
	"math"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// sequencer gives committed appends their $all positions (docs/design.md, "The $all stream").
// Appends never touch a global row; passes serialize on the $all counter row, in this process and
// across all.
type sequencer struct {
	s        *Store
	wakeCh   chan struct{}
	interval time.Duration
	delay    time.Duration
	batch    int
}

func newSequencer(s *Store, interval, delay time.Duration, batch int) *sequencer {
	return &sequencer{s: s, wakeCh: make(chan struct{}, 1), interval: interval, delay: delay, batch: batch}
}

// wake asks for a pass soon; it never blocks.
func (q *sequencer) wake() {
	select {
	case q.wakeCh <- struct{}{}:
	default:
	}
}

func (q *sequencer) run(ctx context.Context) {
	ticker := time.NewTicker(q.interval)
	defer ticker.Stop()
	var backoff time.Duration // after failed passes, so an unreachable database is not hammered
	var lastPass time.Time
	for {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wakeCh:
			// Passes start at most every delay: a steady stream of appends is numbered in
			// batches, one commit for several, while an append after a quiet spell goes at once.
			if wait := q.delay - time.Since(lastPass); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		case <-ticker.C:
		}
		lastPass = time.Now()
		// Polls are for appends made elsewhere; a pass that just ran served them too.
		ticker.Reset(q.interval)
		// Drain: pass back to back while passes are full. A pass that took fewer appends than the
		// batch emptied what it could see; looping on would commit once per concurrent append.
		for ctx.Err() == nil {
			full, err := q.pass(ctx, q.batch)
			if err != nil {
				if ctx.Err() == nil && backoff == 0 {
					q.s.logger.Warn("sequencer pass failed; retrying with backoff", "error", err)
				}
				backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
				break
			}
			if backoff > 0 {
				q.s.logger.Info("sequencer passes succeed again")
				backoff = 0
			}
			if !full {
				break
			}
		}
	}
}

// pass runs one sequencer pass over at most max pending appends. full reports that it took max,
// so more may be waiting.
func (q *sequencer) pass(ctx context.Context, max int) (full bool, err error) {
	max = min(max, math.MaxInt32)
	var start time.Time
	if q.s.tel != nil {
		start = time.Now()
	}
	r, err := q.s.q.SequenceAll(ctx, q.s.tmpl.Wrap(q.s.db), db.SequenceAllParams{
		MaxPending: int32(max),
		Channel:    q.s.channel,
	})
	q.s.tel.sequencerPass(start, r, err)
	if r.LastPosition > 0 {
		q.s.poller.advanced(r.LastPosition) // this process's subscribers need not wait for the NOTIFY
	}
	return int(r.Appends) >= max, err
}

// settle sequences every append committed so far, so that a read of $all that follows sees them.
func (s *Store) settle(ctx context.Context) error {
	_, err := s.seq.pass(ctx, math.MaxInt32)
	return err
}
