package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// op is one call of a worker: it returns how many events it wrote or read. A worker's op keeps
// its state (stream, version) from one slice of the measurement to the next.
type op func(ctx context.Context) (int, error)

// compare measures the store's and the baseline's ops with the same number of workers, in
// Config.Rounds alternating slices (store, then raw, ...) of Duration/Rounds each, so that a
// change in the machine's load during the measurement weighs on both sides alike. between runs
// after each store slice, outside the timing. It returns events per second of each side.
func (r *runner) compare(ctx context.Context, workers int, storeNew, rawNew func(w int) op, between func() error) (store, raw float64, err error) {
	storeOps, rawOps := make([]op, workers), make([]op, workers)
	for w := range workers {
		storeOps[w], rawOps[w] = storeNew(w), rawNew(w)
	}
	slice := r.cfg.Duration / time.Duration(r.cfg.Rounds)
	var sn, rn int64
	var sd, rd time.Duration
	for range r.cfg.Rounds {
		n, d, err := runSlice(ctx, storeOps, r.cfg.Warmup, slice)
		if err != nil {
			return 0, 0, fmt.Errorf("store: %w", err)
		}
		sn, sd = sn+n, sd+d
		if err := between(); err != nil {
			return 0, 0, fmt.Errorf("store: %w", err)
		}
		n, d, err = runSlice(ctx, rawOps, r.cfg.Warmup, slice)
		if err != nil {
			return float64(sn) / sd.Seconds(), 0, fmt.Errorf("raw: %w", err)
		}
		rn, rd = rn+n, rd+d
	}
	return float64(sn) / sd.Seconds(), float64(rn) / rd.Seconds(), nil
}

// runSlice runs one goroutine per op, each calling its op in a loop, and returns the events
// completed during d and d's actual length. The measurement starts after a warm-up that lasts at
// least warm and until the workers have completed as many calls as there are workers (up to
// 30s), so that they no longer move in step, as they all do at the start. When no call completes within d (a very short
// d, or a loaded machine), it waits for the first completion, up to 30s. Workers stop between
// calls: no call is cancelled, so no statement is cut short.
func runSlice(ctx context.Context, ops []op, warm, d time.Duration) (int64, time.Duration, error) {
	var (
		total   atomic.Int64
		stop    atomic.Bool
		errOnce sync.Once
		runErr  error
		failed  = make(chan struct{})
		calls   atomic.Int64 // calls completed
		allWarm = make(chan struct{})
		wg      sync.WaitGroup
	)
	for _, call := range ops {
		wg.Go(func() {
			for !stop.Load() && ctx.Err() == nil {
				n, err := call(ctx)
				if err != nil {
					errOnce.Do(func() {
						runErr = err
						stop.Store(true)
						close(failed)
					})
					return
				}
				total.Add(int64(n))
				if calls.Add(1) == int64(len(ops)) {
					close(allWarm)
				}
			}
		})
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-failed:
		case <-ctx.Done():
		}
		return false
	}
	var n int64
	var elapsed time.Duration
	ok := wait(warm)
	if ok {
		limit := time.NewTimer(30 * time.Second)
		select {
		case <-allWarm:
		case <-limit.C:
		case <-failed:
			ok = false
		case <-ctx.Done():
			ok = false
		}
		limit.Stop()
	}
	if ok {
		c0, t0 := total.Load(), time.Now()
		ok := wait(d)
		for limit := t0.Add(30 * time.Second); ok && total.Load() == c0 && time.Now().Before(limit); {
			ok = wait(time.Millisecond)
		}
		n, elapsed = total.Load()-c0, time.Since(t0)
	}
	stop.Store(true)
	wg.Wait()
	if runErr != nil {
		return 0, 0, runErr
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	if n <= 0 {
		return 0, 0, errors.New("no call completed within 30s")
	}
	return n, elapsed, nil
}
