package es

import (
	"time"
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
