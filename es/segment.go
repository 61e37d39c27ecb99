package es

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// segmentOf is the segment of a PartitionBy key among n: FNV-1a (64 bits) of its bytes, modulo
// n. It is part of the stored format: a segment's checkpoint is only exact if every process, of
// every version, maps each key to the same segment. (Without PartitionBy, the key is the stream,
// and the segment is the stream's id modulo n, chosen in SQL: see filter.)
func segmentOf(key string, n int) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum64() % uint64(n))
}

func segmentCountError(name string, have, want int) error {
	return fmt.Errorf("%w: %s has %d segment(s), not %d: delete it and project again to change it",
		ErrSegmentCount, name, have, want)
}

// shares divides n segments among the live members: n/len(members) each, and one more for the
// first n%len(members) of them ordered by the segments they hold now (most first), then by
// holder id. The extras stay where they are, so a member that joins when members already
// outnumber segments moves nothing. Members that see the same holders compute the same shares.
func shares(n int, members, holders []string) map[string]int {
	out := make(map[string]int, len(members))
	if len(members) == 0 {
		return out
	}
	held := map[string]int{}
	for _, h := range holders {
		held[h]++
	}
	order := slices.Clone(members)
	slices.SortFunc(order, func(a, b string) int {
		if c := cmp.Compare(held[b], held[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	for r, m := range order {
		out[m] = n / len(members)
		if r < n%len(members) {
			out[m]++
		}
	}
	return out
}

// segmentOrphanRounds is how many heartbeats in a row a segment may be seen free, and run by no
// member, before a member at its fair share takes it anyway (members whose views disagree for a
// while must not leave a segment unhandled).
const segmentOrphanRounds = 3

// segmentView is one member's view of a segmented subscription at one heartbeat, for
// planSegments.
type segmentView struct {
	self    string
	members []string // the live members, sorted, self included
	holders []string // per segment: the holder of its running lease, "" when free
	running []bool   // per segment: self runs it (holds its lease or is taking it)
	freeFor []int    // per segment: heartbeats in a row it was seen free and not run by self
}

// planSegments decides which segments member self starts and stops running, so that every
// member ends with its fair share: stop waiting for segments another member holds; hand back
// segments beyond the fair share, only while another member has fewer than its own (so nothing
// is handed back that no one will take); take free segments up to the fair share, starting at
// the member's own place in the ring so that members joining together rarely race for the same
// ones; take a segment left free for segmentOrphanRounds whatever the share.
func planSegments(v segmentView) (start, stop []int) {
	n := len(v.holders)
	if n == 0 || len(v.members) == 0 {
		return nil, nil
	}
	share := shares(n, v.members, v.holders)
	target := share[v.self]
	var held, taking []int
	for i := range n {
		switch {
		case !v.running[i]:
		case v.holders[i] == v.self:
			held = append(held, i)
		case v.holders[i] == "":
			taking = append(taking, i)
		default:
			stop = append(stop, i) // another member holds it
		}
	}
	mine := append(held, taking...) // what is handed back first is last: segments not held yet
	if extra := len(mine) - target; extra > 0 && v.someoneShort(share) {
		stop = append(stop, mine[len(mine)-extra:]...)
		mine = mine[:len(mine)-extra]
	}
	offset := slices.Index(v.members, v.self) * n / len(v.members)
	for k := range n {
		i := (offset + k) % n
		if v.running[i] || v.holders[i] != "" {
			continue
		}
		if len(mine) < target || v.freeFor[i] >= segmentOrphanRounds {
			start = append(start, i)
			mine = append(mine, i)
		}
	}
	slices.Sort(stop)
	return start, stop
}

// someoneShort says whether a member other than self holds fewer segments than its share.
func (v segmentView) someoneShort(share map[string]int) bool {
	for _, m := range v.members {
		if m == v.self {
			continue
		}
		held := 0
		for _, h := range v.holders {
			if h == m {
				held++
			}
		}
		if held < share[m] {
			return true
		}
	}
	return false
}

// segmentGroup runs this process's share of a segmented projection: at every heartbeat
// (Config.LeaseRenewInterval) it renews its membership, reads who holds which segment, and
// starts or stops segment projectors as planSegments says. Each segment projector is a
// projection of its own (its subscription row, lease, checkpoint, parked events), whose
// subscription keeps the segment's events only.
type segmentGroup struct {
	s       *Store
	stream  string
	name    string
	po      ProjectionOptions
	so      SubscriptionOptions
	handler Handler
	starts  []subscriptionStart // per segment

	ctx        context.Context // ends the group, with a cause
	cancel     context.CancelCauseFunc
	done       chan struct{}
	subscribed chan struct{}
	subOnce    sync.Once

	mu       sync.Mutex
	running  map[int]*projector
	handing  map[*projector]int // segments being handed back (finishing their batch)
	stopping sync.WaitGroup     // their goroutines
	freeFor  []int              // owned by run
}

// errProjectionClosed is the cancel cause of a projection stopped by Close: Err is nil then.
var errProjectionClosed = errors.New("projection closed")

// projectSegments creates the segmented subscription's rows unless they exist, and starts this
// process's member of it.
func (s *Store) projectSegments(ctx context.Context, stream, name string, po ProjectionOptions, so SubscriptionOptions, handler Handler) (*segmentGroup, error) {
	const op = "project"
	starts, err := s.createSegments(ctx, stream, name, po.Segments, so)
	if err != nil {
		return nil, mapDBError(op, stream, err)
	}
	gctx, cancel := context.WithCancelCause(ctx)
	g := &segmentGroup{
		s: s, stream: stream, name: name, po: po, so: so, handler: handler, starts: starts,
		ctx: gctx, cancel: cancel, done: make(chan struct{}), subscribed: make(chan struct{}),
		running: map[int]*projector{}, handing: map[*projector]int{}, freeFor: make([]int, len(starts)),
	}
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	key := subKey{stream: stream, name: name}
	switch {
	case s.isClosed():
		cancel(ErrClosed)
		return nil, opError(op, stream, ErrClosed)
	case s.groups[key] != nil:
		cancel(ErrSubscriptionExists)
		return nil, opError(op, stream, fmt.Errorf("%s: %w", name, ErrSubscriptionExists))
	}
	s.groups[key] = g
	s.wg.Go(g.run)
	return g, nil
}

// createSegments creates the rows of a segmented subscription unless it exists, and returns
// each segment's start.
func (s *Store) createSegments(ctx context.Context, stream, name string, n int, o SubscriptionOptions) ([]subscriptionStart, error) {
	start, pk, err := s.resolveStart(ctx, stream, o)
	if err != nil {
		return nil, err
	}
	var starts []subscriptionStart
	err = s.inTx(ctx, &callOptions{}, func(conn sqltmpl.DBTX) error {
		if err := s.q.InsertSegments(ctx, conn, db.InsertSegmentsParams{
			StreamName: stream, SubscriptionName: name, Segments: int32(n), Start: start, StreamPk: pk,
		}); err != nil {
			return err
		}
		rows, err := s.q.SegmentRows(ctx, conn, db.SegmentRowsParams{StreamName: stream, SubscriptionName: name})
		if err != nil {
			return err
		}
		for _, r := range rows {
			if int(r.Segments) != n || len(rows) != n {
				return segmentCountError(name, int(r.Segments), n) // rolled back: nothing of ours stays
			}
			starts = append(starts, subscriptionStart{id: r.ID, checkpoint: r.LastSeen, streamPK: r.StreamPk.Int64})
		}
		return nil
	})
	return starts, err
}

func (g *segmentGroup) run() {
	defer close(g.done)
	defer func() {
		g.s.subsMu.Lock()
		delete(g.s.groups, subKey{stream: g.stream, name: g.name})
		g.s.subsMu.Unlock()
	}()
	defer g.leave()
	tick := time.NewTicker(g.s.leases.renewEvery)
	defer tick.Stop()
	for {
		g.round()
		select {
		case <-g.ctx.Done():
			return
		case <-g.s.closed:
			g.cancel(ErrClosed)
			return
		case <-tick.C:
		}
	}
}

// round is one heartbeat: renew the membership, look at the segments, start and stop.
func (g *segmentGroup) round() {
	s := g.s
	conn := s.tmpl.Wrap(s.db)
	g.reap()
	if g.ctx.Err() != nil {
		return
	}
	err := s.q.SegmentHeartbeat(g.ctx, conn, db.SegmentHeartbeatParams{
		StreamName: g.stream, SubscriptionName: g.name, Holder: s.leases.holder, LeaseSeconds: s.leases.duration.Seconds(),
	})
	var rows []db.SegmentStateRow
	if err == nil {
		rows, err = s.q.SegmentState(g.ctx, conn, db.SegmentStateParams{StreamName: g.stream, SubscriptionName: g.name})
	}
	if err != nil {
		if g.ctx.Err() == nil {
			s.logger.Warn("projection segments: heartbeat failed; retrying", "stream", g.stream, "subscription", g.name, "error", err)
		}
		return
	}
	if len(rows) != len(g.starts) || slices.ContainsFunc(rows, func(r db.SegmentStateRow) bool { return r.ID != g.starts[r.Segment].id }) {
		g.cancel(ErrSubscriptionNotFound) // deleted (and maybe created again: a new subscription)
		return
	}
	v := segmentView{
		self: s.leases.holder, members: rows[0].Members,
		holders: make([]string, len(rows)), running: make([]bool, len(rows)), freeFor: g.freeFor,
	}
	if !slices.Contains(v.members, v.self) {
		v.members = append(slices.Clone(v.members), v.self)
		slices.Sort(v.members)
	}
	g.mu.Lock()
	for i, r := range rows {
		v.holders[i] = r.Holder
		_, v.running[i] = g.running[i]
		if r.Holder == "" && !v.running[i] {
			g.freeFor[i]++
		} else {
			g.freeFor[i] = 0
		}
	}
	g.mu.Unlock()
	start, stop := planSegments(v)
	g.stop(stop)
	for _, i := range start {
		g.start(i)
	}
}

// start runs segment i in this process: it takes the lease at once if it is free.
func (g *segmentGroup) start(i int) {
	so := g.so
	so.segment, so.segments, so.segmentStart = i, len(g.starts), g.starts[i]
	if g.po.PartitionBy != nil {
		by, n, sel := g.po.keyOf(g.s.logger), len(g.starts), g.so.Selector
		so.Selector = func(ev RecordedEvent) bool {
			return segmentOf(by(ev), n) == i && (sel == nil || sel(ev))
		}
	} else {
		so.segmentByStream = true // chosen in SQL, by the stream's id: see ProjectionOptions.Segments
	}
	p, err := g.s.newProjector(g.ctx, g.stream, g.name, g.po, so, g.handler)
	if err != nil {
		if g.ctx.Err() == nil && !errors.Is(err, ErrClosed) {
			g.s.logger.Warn("projection segment not started; retrying", "stream", g.stream, "subscription", g.name, "segment", i, "error", err)
		}
		return
	}
	g.mu.Lock()
	g.running[i] = p
	g.mu.Unlock()
	g.freeFor[i] = 0
	go func() {
		select {
		case <-p.h.Subscribed():
			g.subOnce.Do(func() { close(g.subscribed) })
		case <-p.done:
		}
	}()
}

// stop ends the listed segments here, each finishing its batch in flight, writing its
// checkpoint and releasing its lease, in the background: a slow handler must not hold up the
// heartbeat (a member whose row ran out would look gone to the others).
func (g *segmentGroup) stop(segments []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, i := range segments {
		if p := g.running[i]; p != nil {
			delete(g.running, i)
			g.handing[p] = i
			g.stopping.Go(func() {
				p.handBack()
				g.mu.Lock()
				delete(g.handing, p)
				g.mu.Unlock()
			})
		}
	}
}

// reap forgets segment projectors that stopped on their own; a deleted subscription or a closed
// store ends the group.
func (g *segmentGroup) reap() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, p := range g.running {
		select {
		case <-p.done:
		default:
			continue
		}
		delete(g.running, i)
		switch err := p.h.Err(); {
		case errors.Is(err, ErrSubscriptionNotFound), errors.Is(err, ErrClosed):
			g.cancel(err)
		case err != nil && g.ctx.Err() == nil:
			g.s.logger.Warn("projection segment stopped; starting it again", "stream", g.stream, "subscription", g.name, "segment", i, "error", err)
		}
	}
}

// leave stops every segment here and removes the membership, so that the other members share
// the segments out at their next heartbeat.
func (g *segmentGroup) leave() {
	g.mu.Lock()
	all := make([]int, 0, len(g.running))
	for i := range g.running {
		all = append(all, i)
	}
	g.mu.Unlock()
	g.stop(all)
	stopped := make(chan struct{})
	go func() {
		g.stopping.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-g.s.hardCtx.Done():
		// Shutdown's deadline passed with a handler still running (it ignores its context):
		// the store's stop stays bounded; the segment's lease runs out on its own.
	}
	ctx, cancel := context.WithTimeout(g.s.hardCtx, releaseTimeout)
	defer cancel()
	if err := g.s.q.LeaveSegments(ctx, g.s.tmpl.Wrap(g.s.db), db.LeaveSegmentsParams{
		StreamName: g.stream, SubscriptionName: g.name, Holder: g.s.leases.holder,
	}); err != nil && g.s.hardCtx.Err() == nil && !errors.Is(context.Cause(g.ctx), ErrSubscriptionNotFound) {
		g.s.logger.Warn("projection segments: membership not removed; it runs out on its own",
			"stream", g.stream, "subscription", g.name, "error", err)
	}
}

func (g *segmentGroup) close() error {
	g.cancel(errProjectionClosed)
	<-g.done
	return nil
}

// err is Projection.Err for a segmented projection.
func (g *segmentGroup) err() error {
	if g.ctx.Err() == nil {
		return nil
	}
	switch cause := context.Cause(g.ctx); {
	case errors.Is(cause, errProjectionClosed):
		return nil
	case errors.Is(cause, ErrSubscriptionNotFound), errors.Is(cause, ErrClosed):
		return opError("project", g.stream, fmt.Errorf("%s: %w", g.name, cause))
	default:
		return cause
	}
}

// held lists the segments whose leases this process holds now.
func (g *segmentGroup) held() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []int
	for i, p := range g.running {
		if _, _, ok := p.sub.lease(); ok {
			out = append(out, i)
		}
	}
	for p, i := range g.handing {
		if _, _, ok := p.sub.lease(); ok {
			out = append(out, i) // still held until its batch in flight commits
		}
	}
	slices.Sort(out)
	return out
}
