package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// LSN is a position in PostgreSQL's write-ahead log (a pg_lsn), in bytes. A read-only server
// that has replayed the WAL up to an LSN sees every transaction the primary committed before
// it. The zero LSN is before everything: reading at it asks for no freshness at all.
type LSN uint64

// String formats the LSN as PostgreSQL does, for example "0/16B3748".
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// ParseLSN parses an LSN in PostgreSQL's form ("0/16B3748"), as String writes it. Anything
// else is ErrInvalidArgument.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%w: LSN %q, want the form 16/B374D848", ErrInvalidArgument, s)
	}
	return LSN(h<<32 | l), nil
}

// DefaultReplicaPollInterval is Config.ReplicaPollInterval's default.
const DefaultReplicaPollInterval = 50 * time.Millisecond

// replicaState is what a Store knows of its replica (Config.Replica).
type replicaState struct {
	db       *sql.DB
	tmpl     *sqltmpl.Templater
	interval time.Duration

	replayed atomic.Int64 // the replica's replay LSN at its last look (-1: not looked yet)
	healthy  atomic.Bool  // the last look at the replica (or read on it) succeeded
	lastLook atomic.Int64 // when the last look began, in UnixNano

	catchUpOnReplica, catchUpOnPrimary atomic.Int64 // catch-up reads served by each (tests, figures)

	mu        sync.Mutex
	floorGen  int64 // the deletions generation the floor was taken at
	floorLSN  int64 // the primary's LSN once floorGen was seen: subscriptions read the replica only past it
	floorSet  bool
	downSince time.Time // when looks at the replica began to fail (zero: it answers)
}

func newReplicaState(database *sql.DB, schema string, unprepared bool, interval time.Duration) (*replicaState, error) {
	tmpl, err := sqltmpl.NewTemplater(schema)
	if err != nil {
		return nil, err
	}
	if unprepared {
		tmpl.Unprepared(database)
	} else {
		tmpl.Prepare(database)
	}
	r := &replicaState{db: database, tmpl: tmpl, interval: interval}
	r.replayed.Store(-1)
	return r, nil
}

// conn returns the replica's pool, as a DBTX that marks the replica unhealthy when a query on it
// fails for another reason than its context: the next reads then look at it before using it, and
// go to the primary while it does not answer.
func (r *replicaState) conn() sqltmpl.DBTX { return replicaConn{r.tmpl.Wrap(r.db), r} }

type replicaConn struct {
	sqltmpl.DBTX
	r *replicaState
}

func (c replicaConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := c.DBTX.QueryContext(ctx, query, args...)
	if err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		c.r.healthy.Store(false)
	}
	return rows, err
}

// usable says whether reads may go to the replica without looking at it first.
func (r *replicaState) usable(minLSN int64) bool {
	return r.healthy.Load() && r.replayed.Load() >= minLSN
}

// recentlyDown says whether the replica failed and was looked at less than a second ago: reads go
// straight to the primary rather than wait for a server that does not answer.
func (r *replicaState) recentlyDown() bool {
	return !r.healthy.Load() && time.Since(time.Unix(0, r.lastLook.Load())) < time.Second
}

// lookAtReplica reads where the replica stands and remembers its replay LSN.
func (s *Store) lookAtReplica(ctx context.Context) (inRecovery bool, lsn int64, err error) {
	r := s.replica
	r.lastLook.Store(time.Now().UnixNano())
	st, err := s.q.ReplicaLSN(ctx, r.conn())
	if err != nil {
		r.healthy.Store(false)
		r.mu.Lock()
		first := r.downSince.IsZero()
		if first {
			r.downSince = time.Now()
		}
		r.mu.Unlock()
		if first && ctx.Err() == nil {
			s.logger.Warn("replica unreachable; reading from the primary until it answers", "error", err)
		}
		return false, 0, err
	}
	r.mu.Lock()
	if !r.downSince.IsZero() {
		s.logger.Info("replica answers again", "down", time.Since(r.downSince).Round(time.Millisecond))
		r.downSince = time.Time{}
	}
	r.mu.Unlock()
	for {
		old := r.replayed.Load()
		if st.Lsn <= old || r.replayed.CompareAndSwap(old, st.Lsn) {
			break
		}
	}
	r.healthy.Store(true)
	return st.InRecovery, st.Lsn, nil
}

// PrimaryLSN gives $all positions to every append committed so far (a sequencer pass) and
// returns the primary's current WAL position. Every event committed before the call, with its
// $all position, is on a replica once the replica has replayed this LSN: pass it to WithMinLSN
// (or WithMinLSNOrPrimary) to read one's own writes from Config.Replica. Call it after the
// append returned (or after committing your transaction, for appends made WithTx). It costs two
// round trips to the primary. Errors: ErrClosed, and the database's.
func (s *Store) PrimaryLSN(ctx context.Context) (LSN, error) {
	const op = "primary lsn"
	if _, err := s.options(op, "", nil); err != nil {
		return 0, err
	}
	if err := s.settle(ctx); err != nil {
		return 0, mapDBError(op, "", err)
	}
	lsn, err := s.q.PrimaryLSN(ctx, s.tmpl.Wrap(s.db))
	if err != nil {
		return 0, mapDBError(op, "", err)
	}
	return LSN(lsn), nil
}

// ReplicaLSN returns how far Config.Replica has replayed the primary's WAL: the LSN up to which
// it sees the primary's commits. A replica that was promoted (it is a primary now) reports its
// own current position. Errors: ErrInvalidArgument without a replica, ErrClosed, and the
// database's.
func (s *Store) ReplicaLSN(ctx context.Context) (LSN, error) {
	const op = "replica lsn"
	if _, err := s.options(op, "", nil); err != nil {
		return 0, err
	}
	if s.replica == nil {
		return 0, invalid(op, "", "the store has no Config.Replica")
	}
	_, lsn, err := s.lookAtReplica(ctx)
	if err != nil {
		return 0, mapDBError(op, "", err)
	}
	return LSN(max(lsn, 0)), nil
}

// WithPrimary makes a read run on the primary even though the store has a Config.Replica: for a
// read that must see everything committed so far. Without a replica it changes nothing.
func WithPrimary() Option {
	return func(o *callOptions) { o.primary = true }
}

// WithMinLSN makes a read served by Config.Replica wait until the replica has replayed lsn (from
// PrimaryLSN), so that it sees every write committed before lsn was taken: read-your-writes on a
// replica. The wait polls the replica (every millisecond at first, backing off to
// Config.ReplicaPollInterval) and is bounded by the call's context only: when ctx ends first,
// the read fails with ctx's error. Use WithMinLSNOrPrimary to fall back to the primary instead of
// waiting. A replica that does not answer is not waited for: the read goes to the primary. Without
// a replica, or WithTx or WithPrimary, it changes nothing.
func WithMinLSN(lsn LSN) Option {
	return func(o *callOptions) { o.minLSN, o.lsnFallback = max(o.minLSN, lsn), false }
}

// WithMinLSNOrPrimary makes a read go to Config.Replica if it has replayed lsn (from PrimaryLSN)
// already, and to the primary otherwise: read-your-writes at once, at the primary's expense while
// the replica lags. It costs one round trip to the replica to learn its position, none when the
// store saw it past lsn before.
func WithMinLSNOrPrimary(lsn LSN) Option {
	return func(o *callOptions) { o.minLSN, o.lsnFallback = max(o.minLSN, lsn), true }
}

// readConn is where a read of streams or $all runs: the caller's transaction when given, else the
// replica (fresh enough for WithMinLSN) when the store has one and the call did not ask for the
// primary, else the primary. onPrimary says which pool it chose, so that $all reads on the
// primary settle first.
func (s *Store) readConn(ctx context.Context, o *callOptions) (conn sqltmpl.DBTX, onPrimary bool, err error) {
	if o.tx != nil || s.replica == nil || o.primary {
		return s.conn(o), true, nil
	}
	r := s.replica
	if r.usable(int64(o.minLSN)) {
		return r.conn(), false, nil
	}
	if r.recentlyDown() {
		return s.tmpl.Wrap(s.db), true, nil
	}
	for wait := time.Millisecond; ; wait = min(2*wait, r.interval) {
		_, lsn, err := s.lookAtReplica(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, false, ctx.Err()
		case err != nil:
			return s.tmpl.Wrap(s.db), true, nil // the replica is down: the primary serves
		case lsn >= int64(o.minLSN):
			return r.conn(), false, nil
		case o.lsnFallback:
			return s.tmpl.Wrap(s.db), true, nil
		}
		select {
		case <-ctx.Done():
			return nil, false, fmt.Errorf("waiting for the replica to replay %s: %w", o.minLSN, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// catchUpConn is where a subscription's catch-up read runs (readAfter, readFilteredAfter): the
// replica when the store has one that answers and has replayed every delete this process has
// seen, else the primary. Leases, checkpoints, the poller's head query and the sequencer always
// run on the primary.
//
// Why reading the replica never skips: positions are given by sequencer passes that commit one
// after the other (they serialize on the $all counter row), and a standby replays commits in the
// primary's commit order, so the replica's $all is always a prefix of the primary's; a read that
// comes back short (the replica lags) is read again on the next wake-up, from the same place.
// Deletes are the exception, as a lagging replica still shows what a delete erased: once the
// poller has seen a delete (the deletions generation moved), the replica serves only after it
// has replayed the primary's position taken after that, so the read again that follows a delete
// sees it on the replica as on the primary.
func (s *Store) catchUpConn(ctx context.Context) (sqltmpl.DBTX, error) {
	primary := s.tmpl.Wrap(s.db)
	r := s.replica
	if r == nil {
		return primary, nil
	}
	gen := s.poller.deleteGen.Load()
	r.mu.Lock()
	floor, ok := r.floorLSN, r.floorSet && r.floorGen == gen
	r.mu.Unlock()
	if !ok {
		// Taken after the generation was seen, so past the commit of every delete it counts
		// (and, on the first read, of every delete made before this store started).
		lsn, err := s.q.PrimaryLSN(ctx, primary)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		if !r.floorSet || r.floorGen != gen || r.floorLSN < lsn {
			r.floorGen, r.floorLSN, r.floorSet = gen, lsn, true
		}
		floor = r.floorLSN
		r.mu.Unlock()
	}
	if r.usable(floor) {
		r.catchUpOnReplica.Add(1)
		return r.conn(), nil
	}
	if !r.recentlyDown() {
		if _, lsn, err := s.lookAtReplica(ctx); err == nil && lsn >= floor {
			r.catchUpOnReplica.Add(1)
			return r.conn(), nil
		}
	}
	r.catchUpOnPrimary.Add(1)
	return primary, nil
}

// watchReplica wakes the poller when the replica's $all moves on, so that subscriptions that read
// it short (it lagged when the primary's NOTIFY woke them) read again soon after it caught up,
// rather than at the next poll. It looks every Config.ReplicaPollInterval, and only while the
// store runs subscriptions.
func (s *Store) watchReplica(ctx context.Context) {
	r := s.replica
	ticker := time.NewTicker(r.interval)
	defer ticker.Stop()
	last := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		s.poller.mu.Lock()
		n := len(s.poller.watchers)
		s.poller.mu.Unlock()
		if n == 0 {
			continue
		}
		c, err := s.q.GetAllCounter(ctx, r.conn()) // fails until the replica has the schema
		if err != nil {
			continue
		}
		if c.LastPosition != last {
			last = c.LastPosition
			s.poller.wake()
		}
	}
}
