package es

import (
	"database/sql"
	"math"
	"sync"
)

// A persistent subscription of $all that catches up reads its next page while it hands out the
// current one. Reading a page is a query whose server time and whose decoding in Go take about
// the same (300,000 events, pgx: 3.6 µs of Go per event, the rest waiting for the server), and
// done one after the other they left one of the two halves idle: with the next page's query in
// flight on a second connection, the server works on it while this process decodes.
//
// A read started early is a read, nothing more: fill uses it only when nothing it depends on
// changed since it started (the position, the lease's epoch, the deletes generation), and then
// checks it as it checks its own reads. Its rows are a snapshot from its start, so fill reads
// again after using one, in case events came after it.

// maxReadAheads is how many reads ahead a Store runs at once when its pool has no limit; with a
// limit, a quarter of it. A pool of fewer than four connections gets none: a read ahead holds a
// connection the subscription's own reads, checkpoints and handlers may need. With a limit of
// one, every other page is read ahead (the next cannot start while the one taken runs); starting
// it once the one taken was read measured slower on 2 cores (catch-up 0.40-0.49x of the raw scan
// against 0.48-0.55x), so it does not.
const maxReadAheads = 4

// readAhead is one page read before fill asked for it.
type readAhead struct {
	from, epoch, gen int64 // what the read depends on, as it started
	n                int   // the most events it reads
	done             chan struct{}

	// Set before done is closed.
	events []RecordedEvent
	readTo int64
	more   bool
	err    error
}

// readAheadLimit is how many reads ahead the Store runs at once.
func (s *Store) readAheadLimit() int32 {
	limit := poolReadAheads(s.db)
	if s.replica != nil { // catch-up reads go to the replica while it keeps up, else here
		limit = min(limit, poolReadAheads(s.replica.db))
	}
	return limit
}

// poolReadAheads is how many reads ahead a pool takes at once: a quarter of its connections, at
// most maxReadAheads.
func poolReadAheads(pool *sql.DB) int32 {
	if open := pool.Stats().MaxOpenConnections; open > 0 {
		return int32(min(open/4, maxReadAheads))
	}
	return maxReadAheads
}

// readAheadAfter starts reading the page that follows a read of n positions after from, while
// that read runs, when the subscription reads all of $all (whose positions have no gaps, so a
// full page ends at from+n) and $all reaches past both pages; room is what the queue will have
// left for it. Must hold mu.
func (sub *subscription) readAheadAfter(from int64, n, room int) {
	next := min(room, subscriptionReadPage)
	if !sub.all || !sub.f.isZero() || next <= 0 || from > math.MaxInt64-int64(n+next) ||
		sub.store.poller.head.Load() < from+int64(n+next) {
		return
	}
	a := &readAhead{from: from + int64(n), epoch: sub.epoch, gen: sub.gen, n: next, done: make(chan struct{})}
	if sub.store.aheads.start(sub.store.readAheadLimit(), func() {
		defer close(a.done)
		a.events, a.readTo, _, a.more, a.err = sub.store.readSource(sub.ctx, sub.stream, sub.all, sub.f, a.from, a.n)
	}) {
		sub.ahead = a
	}
}

// takeReadAhead returns the read ahead that fill can use in place of reading up to room events
// after from, or nil. Any other read ahead is dropped: it ends on its own. Must hold mu.
func (sub *subscription) takeReadAhead(from int64, room int) *readAhead {
	a := sub.ahead
	sub.ahead = nil
	if a == nil || a.from != from || a.n > room || a.epoch != sub.epoch || a.gen != sub.gen {
		return nil
	}
	return a
}

// readAheads runs the reads ahead of a Store, at most a limit at once, and lets Shutdown wait
// for them before it closes the prepared statements they use.
type readAheads struct {
	mu      sync.Mutex
	running int32
	stopped bool
	wg      sync.WaitGroup
}

// start runs fn in a goroutine, unless limit of them are running or the Store is shutting down.
func (r *readAheads) start(limit int32, fn func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.running >= limit {
		return false
	}
	r.running++
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			r.running--
			r.mu.Unlock()
		}()
		fn()
	})
	return true
}

// stop refuses new reads ahead and waits for those running.
func (r *readAheads) stop() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.wg.Wait()
}
