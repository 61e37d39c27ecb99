package es

import (
	"cmp"
	"context"
	"database/sql"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/notify"
)

// heads is what one poll learns for all of a process's subscriptions.
type heads struct {
	all     int64                 // the $all head
	streams map[string]streamHead // the subscribed streams that exist
}

type streamHead struct {
	pk, version int64
	deleted     bool
}

// source is what a running subscription (persistent or transient) reads and where it stands,
// for the poller's decisions.
type source struct {
	stream string // the subscription's key
	all    bool   // reads $all (filtered or not), not stream
}

// watched is the stream the poller must look at for this source: AllStream for $all readers.
func (src source) watched() string {
	if src.all {
		return AllStream
	}
	return src.stream
}

// hasNews says whether a poll saw something for a reader at pos (of stream incarnation pk, read
// under deletes generation gen) to read: new events, a re-created stream, or a delete.
func (src source) hasNews(h *heads, pos, pk, gen, curGen int64) bool {
	if gen != curGen {
		return true
	}
	if src.all {
		return h.all > pos
	}
	st, ok := h.streams[src.stream]
	return ok && (st.pk != pk || st.version > pos)
}

// watcher is a running subscription (persistent or transient) that the poller wakes.
type watcher interface {
	watchedStream() string
	observe(h *heads)
}

// poller wakes a Store's subscriptions (DESIGN: polling first, NOTIFY as a hint). Delivery never
// waits for LISTEN: subscriptions read from their checkpoint at once, and whenever the poller
// sees new events, which it looks for on a NOTIFY, after this process's sequencer passes and
// deletes, after a LISTEN reconnect, and every SubscriptionPollInterval. One poll is one query of
// the $all head (plus one of the subscribed streams' versions), whatever the number of
// subscriptions; only the subscriptions that have something new to read are woken.
type poller struct {
	s        *Store
	interval time.Duration
	kick     chan struct{}

	// deleteGen counts the deletes this process knows of: its own, and the database's
	// deletions generation seen changing. Subscriptions drop what they read ahead when it moves.
	deleteGen atomic.Int64
	dbGen     int64        // the database's generation at the last poll (-1: not polled yet)
	head      atomic.Int64 // the $all head at the last poll

	mu       sync.Mutex
	watchers map[watcher]struct{}
}

func newPoller(s *Store, interval time.Duration) *poller {
	return &poller{s: s, interval: interval, kick: make(chan struct{}, 1), dbGen: -1, watchers: map[watcher]struct{}{}}
}

// wake asks for a poll soon; it never blocks.
func (p *poller) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// deleted records a delete this process committed.
func (p *poller) deleted() {
	p.deleteGen.Add(1)
	p.wake()
}

func (p *poller) register(w watcher) {
	p.mu.Lock()
	p.watchers[w] = struct{}{}
	p.mu.Unlock()
	p.wake()
}

func (p *poller) unregister(w watcher) {
	p.mu.Lock()
	delete(p.watchers, w)
	p.mu.Unlock()
}

func (p *poller) run(ctx context.Context) {
	var wakeups <-chan struct{}
	if p.s.listenDSN != "" {
		ch := make(chan struct{}, 1)
		wakeups = ch
		go p.listen(ctx, ch)
	}
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-wakeups:
		case <-ticker.C:
		}
		p.mu.Lock()
		n := len(p.watchers)
		p.mu.Unlock()
		if n == 0 {
			continue
		}
		if err := p.poll(ctx); err != nil && ctx.Err() == nil {
			// Subscriptions also read on their own wake-ups; the next tick polls again.
			p.s.logger.Debug("subscription poll failed", "error", err)
		}
	}
}

// raiseHead moves the known $all head up to last, never down: a poll that started before a
// sequencer pass of this process may report an older head than advanced did.
func (p *poller) raiseHead(last int64) {
	for {
		old := p.head.Load()
		if last <= old || p.head.CompareAndSwap(old, last) {
			return
		}
	}
}

// advanced wakes the $all readers after a sequencer pass of this process committed positions up
// to last. They need no poll to learn the head: the pass just gave it, so they read at once,
// without a head query between an append and its delivery. Readers of single streams still
// wait for a poll, and so does news of other processes' deletes (their NOTIFY or the poll
// interval).
func (p *poller) advanced(last int64) {
	p.raiseHead(last)
	p.mu.Lock()
	ws := slices.Collect(maps.Keys(p.watchers))
	p.mu.Unlock()
	h := &heads{all: p.head.Load()}
	streams := false
	for _, w := range ws {
		if w.watchedStream() == AllStream {
			w.observe(h)
		} else {
			streams = true
		}
	}
	if streams {
		p.wake()
	}
}

// listen forwards NOTIFY wake-ups until ctx ends. The Listener connects and reconnects on its
// own, logging the cause of a failure once per outage; meanwhile, polling delivers.
func (p *poller) listen(ctx context.Context, out chan<- struct{}) {
	for ctx.Err() == nil {
		w, err := p.s.listener().WaitContext(ctx, p.s.channel)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(p.interval):
				continue
			}
		}
		for {
			select {
			case <-ctx.Done():
				w.Close()
				return
			case <-w.C:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}
}

func (p *poller) poll(ctx context.Context) error {
	p.mu.Lock()
	ws := slices.Collect(maps.Keys(p.watchers))
	p.mu.Unlock()
	conn := p.s.tmpl.Wrap(p.s.db)
	r, err := p.s.q.PollHeads(ctx, conn)
	if err != nil {
		return err
	}
	if p.dbGen >= 0 && r.Generation != p.dbGen {
		p.deleteGen.Add(1)
	}
	p.dbGen = r.Generation
	p.raiseHead(r.LastPosition)
	h := &heads{all: p.head.Load()}
	var names []string
	for _, w := range ws {
		if st := w.watchedStream(); st != AllStream && !slices.Contains(names, st) {
			names = append(names, st)
		}
	}
	if len(names) > 0 {
		rows, err := p.s.q.PollStreams(ctx, conn, names)
		if err != nil {
			return err
		}
		h.streams = make(map[string]streamHead, len(rows))
		for _, r := range rows {
			h.streams[r.StreamName] = streamHead{pk: r.ID, version: r.StreamVersion, deleted: r.Deleted}
		}
	}
	for _, w := range ws {
		w.observe(h)
	}
	return nil
}

// listener returns the process-wide LISTEN connection for ListenDSN, started on first use.
func (s *Store) listener() *notify.Listener {
	s.listenOnce.Do(func() {
		s.listenConn = notify.Shared(s.listenDSN, &notify.Config{Logger: s.logger, ApplicationName: s.listenApp})
	})
	return s.listenConn
}

// position reads where a stream or $all stands now: for StartCurrent, fixed before Subscribe
// returns. For a stream, pk is its incarnation (0: it does not exist).
func (s *Store) position(ctx context.Context, stream string) (pos, pk int64, err error) {
	conn := s.tmpl.Wrap(s.db)
	if stream == AllStream {
		if err := s.settle(ctx); err != nil {
			return 0, 0, err
		}
		c, err := s.q.GetAllCounter(ctx, conn)
		return c.LastPosition, 0, err
	}
	st, err := s.q.GetStream(ctx, conn, stream)
	if err == sql.ErrNoRows {
		return 0, 0, nil
	}
	return st.StreamVersion, st.ID, err
}

// readAfter reads up to n events of a stream after pos, with the stream's incarnation (0 when it
// does not exist); a missing or soft-deleted stream reads as empty. ($all is read by
// readAllRuns.)
func (s *Store) readAfter(ctx context.Context, stream string, pos int64, n int) (events []RecordedEvent, pk int64, err error) {
	n = min(n, subscriptionReadPage)
	conn, err := s.catchUpConn(ctx) // the replica, when the store has one (es/replica.go)
	if err != nil {
		return nil, 0, err
	}
	var deleted bool
	evs, err := s.streamRowsPK("subscription read", stream, n, &pk, &deleted, func(fn func(*db.ReadStreamForwardRow) error) error {
		return s.q.ReadStreamForwardEach(ctx, conn, db.ReadStreamForwardParams{
			StreamName: stream, Start: pos + 1, MaxCount: int64(n), MaxRows: int64(n) + 1,
		}, fn)
	})
	if err != nil {
		return nil, 0, err
	}
	if deleted {
		return nil, pk, nil
	}
	return evs, pk, nil
}

// readSource reads up to n events after pos for a subscription: of a stream (all false; pk is its
// incarnation), of $all, or of $all through a filter. readTo is the last position the read
// examined (filtered-out events included); more says that more events may wait beyond it.
func (s *Store) readSource(ctx context.Context, stream string, all bool, f filter, pos int64, n int) (events []RecordedEvent, readTo, pk int64, more bool, err error) {
	n = min(n, subscriptionReadPage)
	if all && !f.isZero() {
		events, readTo, err = s.readFilteredAfter(ctx, f, pos, n)
		more = readTo > pos && (len(events) == n || readTo < s.poller.head.Load())
		return events, readTo, 0, more, err
	}
	if all {
		events, readTo, err = s.readAllRuns(ctx, pos, n)
		return events, readTo, 0, len(events) == n || readTo > pos && readTo < s.poller.head.Load(), err
	}
	events, pk, err = s.readAfter(ctx, stream, pos, n)
	readTo = pos
	if len(events) > 0 {
		readTo = events[len(events)-1].EventNumber
	}
	return events, readTo, pk, len(events) == n, err
}

// allPage is one read of $all shared by the subscriptions that asked for it at once.
type allPage struct {
	events []RecordedEvent
	readTo int64
}

// readAllRuns reads up to n positions of $all after pos (holes count), the subscriptions' way
// (see ReadAllRuns), without settling first. readTo is the last position examined. Identical
// reads in flight at once are one query: subscriptions that caught up wake together after each
// sequencer pass and ask for the same page, so a thousand of them cost one read, not a thousand.
// They share the events' Data and Metadata values (as every reader of a RecordedEvent should,
// treat them as read-only).
func (s *Store) readAllRuns(ctx context.Context, pos int64, n int) (events []RecordedEvent, readTo int64, err error) {
	v, err, shared := s.allReads.Do(strconv.FormatInt(pos, 10)+"/"+strconv.Itoa(n), func() (any, error) {
		events, readTo, err := s.readAllRunsOnce(ctx, pos, n)
		return allPage{events, readTo}, err
	})
	if err != nil {
		return nil, pos, err
	}
	p := v.(allPage)
	if !shared {
		return p.events, p.readTo, nil // a catching-up subscription's own page: no copy
	}
	return slices.Clone(p.events), p.readTo, nil // callers filter their slice in place
}

func (s *Store) readAllRunsOnce(ctx context.Context, pos int64, n int) (events []RecordedEvent, readTo int64, err error) {
	conn, err := s.catchUpConn(ctx) // the replica, when the store has one (es/replica.go)
	if err != nil {
		return nil, pos, err
	}
	readTo = pos
	events = make([]RecordedEvent, 0, n)
	var meta metadataDecoder
	// Row by row into the events: collecting the generated rows first, then converting them,
	// copied every page twice.
	err = s.q.ReadAllRunsEach(ctx, conn, db.ReadAllRunsParams{Start: pos + 1, MaxCount: int64(n), EventTypes: []string{}}, func(r *db.ReadAllRunsRow) error {
		if r.Scanned { // the last row: the last position examined, no event
			readTo = r.EventNumber
			return nil
		}
		events = append(events, RecordedEvent{
			EventNumber: r.EventNumber, EventID: r.EventID, StreamID: r.OriginName, StreamVersion: r.OriginVersion,
			EventType: r.EventType, CausationID: nullUUID(r.CausationID), CorrelationID: nullUUID(r.CorrelationID),
			CreatedAt: r.CreatedAt,
		})
		ev := &events[len(events)-1]
		if err := s.decode(&meta, ev, r.Data, r.Metadata); err != nil {
			return opError("subscription read", "", err)
		}
		return nil
	})
	if err != nil {
		return nil, pos, err
	}
	// The query's rows come in position order in practice (see ReadAllRuns), not by promise.
	if !slices.IsSortedFunc(events, byEventNumber) {
		slices.SortFunc(events, byEventNumber)
	}
	return events, readTo, nil
}

func byEventNumber(a, b RecordedEvent) int { return cmp.Compare(a.EventNumber, b.EventNumber) }

// subscriptionReadPage is the most events a subscription reads in one query, whatever its
// MaxQueueSize or BatchSize.
const subscriptionReadPage = 1000
