package es

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// Lease defaults (Config.LeaseDuration, Config.LeaseRenewInterval).
const (
	// DefaultLeaseDuration is how long a subscription's lease runs without renewal. A holder
	// killed without a clean stop is replaced within it plus RetryInterval.
	DefaultLeaseDuration = 6 * time.Second
	// DefaultLeaseRenewInterval is how often a process renews its leases: a third of the lease,
	// so that two renewals in a row may fail before delivery stops.
	DefaultLeaseRenewInterval = 2 * time.Second
)

// leaseKeeper takes and renews the subscription leases of one Store (DESIGN: fenced leases).
// Each subscription row holds a holder, an expiry on the database clock and an epoch bumped by
// every take. The keeper renews all of its process's leases in one statement per renewal
// interval, and takes the leases its subscriptions wait for in one statement per attempt, so idle
// subscriptions cost a few queries a second whatever their number. No connection is held between
// statements.
type leaseKeeper struct {
	s          *Store
	holder     string
	duration   time.Duration
	renewEvery time.Duration
	kick       chan struct{}

	mu        sync.Mutex
	wanted    map[*leaseClaim]struct{}
	held      map[*leaseClaim]struct{}
	lastRenew time.Time
}

// leaseClaim is one subscription's interest in its lease. granted receives each grant; lost is
// called (without the keeper's lock) when a renewal finds the lease taken or gone, gone when a
// take finds the subscription deleted.
type leaseClaim struct {
	id      int64
	retry   time.Duration
	nextTry time.Time
	granted chan leaseGrant
	renewed func(epoch int64, deadline time.Time)
	lost    func()
	gone    func() // the subscription was deleted while this process waited for its lease
	epoch   int64  // guarded by the keeper's mu
}

type leaseGrant struct {
	epoch      int64
	checkpoint int64
	streamPK   int64 // 0: none recorded
	deadline   time.Time
}

func newLeaseKeeper(s *Store, duration, renewEvery time.Duration) *leaseKeeper {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &leaseKeeper{
		s:          s,
		holder:     fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:])),
		duration:   duration,
		renewEvery: renewEvery,
		kick:       make(chan struct{}, 1),
		wanted:     map[*leaseClaim]struct{}{},
		held:       map[*leaseClaim]struct{}{},
	}
}

// want asks for c's lease: the keeper tries at once, then every c.retry while another holds it.
func (k *leaseKeeper) want(c *leaseClaim) {
	k.mu.Lock()
	delete(k.held, c)
	c.nextTry = time.Time{}
	k.wanted[c] = struct{}{}
	k.mu.Unlock()
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// drop forgets c: it is neither taken nor renewed any more (its owner releases it).
func (k *leaseKeeper) drop(c *leaseClaim) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.wanted, c)
	delete(k.held, c)
}

func (k *leaseKeeper) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		k.mu.Lock()
		next := now.Add(time.Hour)
		if len(k.held) > 0 {
			next = k.lastRenew.Add(k.renewEvery)
		}
		for c := range k.wanted {
			if c.nextTry.Before(next) {
				next = c.nextTry
			}
		}
		k.mu.Unlock()
		if wait := next.Sub(now); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-k.kick:
				continue
			case <-timer.C:
			}
		}
		k.renew(ctx)
		k.take(ctx)
	}
}

// renew renews every held lease that is due, in one statement.
func (k *leaseKeeper) renew(ctx context.Context) {
	start := time.Now()
	k.mu.Lock()
	if len(k.held) == 0 || start.Before(k.lastRenew.Add(k.renewEvery)) {
		k.mu.Unlock()
		return
	}
	k.lastRenew = start
	claims := make([]*leaseClaim, 0, len(k.held))
	ids, epochs := make([]int64, 0, len(k.held)), make([]int64, 0, len(k.held))
	for c := range k.held {
		claims = append(claims, c)
		ids, epochs = append(ids, c.id), append(epochs, c.epoch)
	}
	k.mu.Unlock()
	renewed, err := k.s.q.RenewLeases(ctx, k.s.tmpl.Wrap(k.s.db), db.RenewLeasesParams{
		LeaseSeconds: k.duration.Seconds(), Holder: k.holder, Ids: ids, Epochs: epochs,
	})
	if err != nil {
		// The deadlines stay as they were: subscriptions stop delivering when theirs pass.
		if ctx.Err() == nil {
			k.s.logger.Warn("subscription leases not renewed; retrying", "error", err)
		}
		return
	}
	deadline := start.Add(k.duration)
	var lost []*leaseClaim
	k.mu.Lock()
	for _, c := range claims {
		if _, still := k.held[c]; !still {
			continue
		}
		if slices.Contains(renewed, c.id) {
			c.renewed(c.epoch, deadline)
			continue
		}
		delete(k.held, c)
		lost = append(lost, c)
	}
	k.mu.Unlock()
	for _, c := range lost {
		c.lost()
	}
}

// take tries, in one statement, the leases wanted and due.
func (k *leaseKeeper) take(ctx context.Context) {
	start := time.Now()
	k.mu.Lock()
	var claims []*leaseClaim
	var ids []int64
	for c := range k.wanted {
		if !c.nextTry.After(start) {
			claims = append(claims, c)
			ids = append(ids, c.id)
			c.nextTry = start.Add(c.retry)
		}
	}
	k.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	rows, err := k.s.q.TakeLeases(ctx, k.s.tmpl.Wrap(k.s.db), db.TakeLeasesParams{
		Holder: k.holder, LeaseSeconds: k.duration.Seconds(), Ids: ids,
	})
	if err != nil {
		if ctx.Err() == nil {
			k.s.logger.Warn("subscription leases not taken; retrying", "error", err)
		}
		return
	}
	deadline := start.Add(k.duration)
	var unwanted []db.TakeLeasesRow
	var gone []*leaseClaim
	k.mu.Lock()
	if len(k.held) == 0 {
		k.lastRenew = start
	}
	for i, id := range ids {
		if !slices.ContainsFunc(rows, func(r db.TakeLeasesRow) bool { return r.ID == id }) {
			if _, still := k.wanted[claims[i]]; still {
				delete(k.wanted, claims[i]) // deleted: its subscription ends
				gone = append(gone, claims[i])
			}
		}
	}
	for _, r := range rows {
		i := slices.Index(ids, r.ID)
		if i < 0 || !r.Taken {
			continue
		}
		c := claims[i]
		if _, still := k.wanted[c]; !still {
			unwanted = append(unwanted, r) // dropped meanwhile: hand it back at once
			continue
		}
		delete(k.wanted, c)
		k.held[c] = struct{}{}
		c.epoch = r.Epoch
		select {
		case c.granted <- leaseGrant{epoch: r.Epoch, checkpoint: r.LastSeen, streamPK: r.StreamPk.Int64, deadline: deadline}:
		default: // cannot happen: a claim is wanted again only after its last grant was received
		}
	}
	k.mu.Unlock()
	for _, c := range gone {
		c.gone()
	}
	for _, r := range unwanted {
		_, _ = k.release(k.s.hardCtx, r.ID, r.Epoch, r.LastSeen, r.StreamPk.Int64, true)
	}
}

// release hands a lease back with its last checkpoint, bounded in time and by ctx (a clean stop
// must not hang on an unreachable database; pass the Store's hard-stop context). It reports whether the write went through: false when the
// lease was no longer ours (fenced) or the subscription is gone. With forward the checkpoint
// never moves back (projections).
func (k *leaseKeeper) release(ctx context.Context, id, epoch, checkpoint, streamPK int64, forward bool) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	n, err := k.s.q.ReleaseLease(ctx, k.s.tmpl.Wrap(k.s.db), db.ReleaseLeaseParams{
		LastSeen: checkpoint, StreamPk: nullPK(streamPK), ID: id, Epoch: epoch, Forward: forward,
	})
	return n == 1, err
}

// releaseTimeout bounds a lease's release (and its last checkpoint) on a stop.
const releaseTimeout = 5 * time.Second

func nullPK(pk int64) sql.NullInt64 { return sql.NullInt64{Int64: pk, Valid: pk != 0} }
