package es

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-eventstore/eventstore/db"
)

// ErrNotHandled is returned by WaitFor when its context ends before the subscription handled
// the append; the error also wraps the context's error (context.DeadlineExceeded or
// context.Canceled).
var ErrNotHandled = errors.New("append not handled by the subscription yet")

// AppendResult describes an append, for read-your-writes (Store.WaitFor). AppendToStream fills
// it when given WithAppendResult; the other calls ignore that option.
type AppendResult struct {
	// Stream is the stream appended to.
	Stream string
	// FirstVersion and LastVersion are the versions of the first and last events appended (of
	// the stored ones, for an idempotent re-send).
	FirstVersion, LastVersion int64

	streamPK int64 // the stream's incarnation
}

// WithAppendResult makes AppendToStream fill *r once the append succeeded (one more query), so
// that Store.WaitFor can wait for a subscription to handle it. Within WithTx, r describes the
// caller's uncommitted append; WaitFor waits for the commit too.
func WithAppendResult(r *AppendResult) Option {
	return func(o *callOptions) {
		if r == nil {
			o.err = fmt.Errorf("%w: WithAppendResult(nil)", ErrInvalidArgument)
		}
		o.result = r
	}
}

// waitForBackoff bounds the pause between two looks at a subscription's checkpoint.
const (
	waitForMinBackoff = 2 * time.Millisecond
	waitForMaxBackoff = 100 * time.Millisecond
)

// WaitFor waits, bounded by ctx, until the persistent subscription name of stream (the key given
// to SubscribeToStream or Project: a stream, AllStream or CategoryStream(c)) has handled the
// append r describes: until its stored checkpoint passed every event of the append (a
// projection's, committed with its effects, so the read model shows them once WaitFor returns).
// For $all and category subscriptions it first waits for the events' $all positions, and then
// for the checkpoint to reach the $all head as it was when they got them (events appended
// concurrently before them count too). Events a projection parked count as handled. A stream
// subscription must be of r's stream; when that stream was re-created since the append, there
// is nothing left to wait for. An append not committed (an open or rolled-back transaction of
// WithTx) is never handled: WaitFor waits for its commit, until ctx ends; so does one whose
// stream was hard deleted before WaitFor first saw it. The subscription may run in any process; WaitFor reads its
// checkpoint from the database, at most every 100ms. A segmented projection has handled the
// append once every segment's checkpoint passed it.
//
// Errors: ErrNotHandled wrapping ctx's error when ctx ends first, ErrSubscriptionNotFound,
// ErrInvalidArgument (r nil or not filled, or of another stream than a stream subscription's),
// ErrClosed, or the database's error.
func (s *Store) WaitFor(ctx context.Context, stream, name string, r *AppendResult) error {
	const op = "wait for subscription"
	if _, err := s.options(op, stream, nil); err != nil {
		return err
	}
	if err := checkSubscriptionStream(op, stream); err != nil {
		return err
	}
	if err := checkSubscriptionName(op, stream, name); err != nil {
		return err
	}
	if r == nil || r.streamPK == 0 {
		return opError(op, stream, fmt.Errorf("%w: no AppendResult filled by AppendToStream", ErrInvalidArgument))
	}
	all := stream == AllStream || strings.HasPrefix(stream, categoryPrefix)
	if !all && stream != r.Stream {
		return opError(op, stream, fmt.Errorf("%w: the append was to stream %q", ErrInvalidArgument, shownName(r.Stream)))
	}
	conn := s.tmpl.Wrap(s.db)
	target, sequenced, committed := r.LastVersion, !all, false
	backoff := waitForMinBackoff
	for {
		done, err := func() (bool, error) {
			if !committed {
				// Until the append is seen committed nothing counts: an append rolled back in
				// the caller's transaction (whose pending row and stream were never visible)
				// must not pass for one handled.
				ok, err := s.q.AppendCommitted(ctx, conn, db.AppendCommittedParams{StreamPk: r.streamPK, LastVersion: r.LastVersion})
				if err != nil || !ok {
					return false, err
				}
				committed = true
			}
			if !sequenced {
				q, err := s.q.AppendSequenced(ctx, conn, db.AppendSequencedParams{
					StreamPk: r.streamPK, FirstVersion: r.FirstVersion, LastVersion: r.LastVersion,
				})
				if err != nil || !q.Sequenced.Bool {
					return false, err
				}
				sequenced, target = true, q.Head
			}
			rows, err := s.q.SubscriptionProgress(ctx, conn, db.SubscriptionProgressParams{StreamName: stream, SubscriptionName: name})
			if err != nil {
				return false, err
			}
			if len(rows) == 0 {
				return false, ErrSubscriptionNotFound
			}
			// Every segment: the append's events are in one of them, and which one depends on a
			// partition key only the projection's process knows.
			for _, p := range rows {
				if !all && p.StreamPk.Valid && p.StreamPk.Int64 > r.streamPK {
					// A later incarnation of the stream (ids only grow): the append's is gone. An
					// earlier one means the subscription has not reached the append's yet.
					return true, nil
				}
				if p.LastSeen < target || (!all && p.StreamPk.Int64 != r.streamPK) {
					return false, nil
				}
			}
			return true, nil
		}()
		switch {
		case done:
			return nil
		case err != nil && ctx.Err() == nil:
			return mapDBError(op, stream, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return opError(op, stream, fmt.Errorf("%s: %w: %w", name, ErrNotHandled, ctx.Err()))
		case <-t.C:
		}
		backoff = min(2*backoff, waitForMaxBackoff)
	}
}
