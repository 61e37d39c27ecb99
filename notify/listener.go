// Package notify turns PostgreSQL LISTEN/NOTIFY into wake-up hints for subscriptions.
//
// A [Listener] holds one dedicated LISTEN connection (lib/pq's [pq.Listener]) and fans
// notifications out to any number of [Waiter]s, each interested in one channel. It reconnects
// with backoff on its own. The package knows nothing of what the notifications are about.
//
// A NOTIFY is only a hint, never the source of truth: notifications are lost while the
// connection is down, coalesced when they come faster than a receiver reads them, and their
// payloads are ignored. A receiver must therefore re-read its source of truth (for example, read
// events from its checkpoint) on every wake-up, and should also poll on an interval as a
// fallback. Every Waiter is woken after the Listener reconnects, since notifications may have
// been missed meanwhile; spurious wake-ups are harmless by design.
//
// The typical receiver loop:
//
//	w, err := l.Wait("my_channel")
//	if err != nil { ... poll only ... }
//	defer w.Close()
//	for {
//		readEverythingNew() // the source of truth
//		select {
//		case <-w.C:
//		case <-poll.C:
//		case <-ctx.Done():
//			return
//		}
//	}
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lib/pq"
)

// DefaultApplicationName is the application_name of a Listener's connection unless
// Config.ApplicationName says otherwise; operators find the connection by it in
// pg_stat_activity.
const DefaultApplicationName = "eventstore-listener"

// MaxChannelLen is the longest channel name PostgreSQL accepts, in bytes.
const MaxChannelLen = 63

// Defaults of Config.
const (
	DefaultMinReconnect = 100 * time.Millisecond
	DefaultMaxReconnect = 5 * time.Second
	DefaultPingInterval = 30 * time.Second
)

// ErrClosed is returned by Wait when the Listener is closed or being closed.
var ErrClosed = errors.New("notify: listener closed")

// ErrInvalidChannel is returned (wrapped, with the name) by Wait and ValidateChannel for a channel
// name that is not a plain lower-case identifier of at most MaxChannelLen bytes.
var ErrInvalidChannel = errors.New("notify: invalid channel name")

// Config configures a Listener. A nil *Config, and zero fields, mean the defaults.
type Config struct {
	// MinReconnect is the first wait before reconnecting after the connection was lost; it
	// doubles after each failed attempt up to MaxReconnect. Defaults to 100ms.
	MinReconnect time.Duration
	// MaxReconnect caps the wait between reconnection attempts. Defaults to 5s.
	MaxReconnect time.Duration
	// PingInterval is how often the connection is pinged so that a dead connection is noticed
	// (and replaced) even when no notification arrives. Defaults to 30s.
	PingInterval time.Duration
	// ApplicationName is the connection's application_name, overriding any in the DSN.
	// Defaults to DefaultApplicationName.
	ApplicationName string
	// Logger receives connection events: Warn on failed connection attempts and on
	// disconnects, Info on reconnects. Defaults to discarding.
	Logger *slog.Logger
}

func (c *Config) withDefaults() Config {
	var r Config
	if c != nil {
		r = *c
	}
	if r.MinReconnect <= 0 {
		r.MinReconnect = DefaultMinReconnect
	}
	if r.MaxReconnect <= 0 {
		r.MaxReconnect = DefaultMaxReconnect
	}
	if r.MaxReconnect < r.MinReconnect {
		r.MaxReconnect = r.MinReconnect
	}
	if r.PingInterval <= 0 {
		r.PingInterval = DefaultPingInterval
	}
	if r.ApplicationName == "" {
		r.ApplicationName = DefaultApplicationName
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// ValidateChannel accepts plain lower-case identifiers (lower-case ASCII letters, digits and
// underscores, not starting with a digit) of at most MaxChannelLen bytes. Such a name means the
// same in pg_notify('name', ...), NOTIFY name and NOTIFY "name".
func ValidateChannel(name string) error {
	ok := name != "" && len(name) <= MaxChannelLen
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c == '_' || i > 0 && c >= '0' && c <= '9'
	}
	if !ok {
		return fmt.Errorf("%w %q: use lower-case letters, digits and underscores, starting with a letter or underscore, at most %d bytes",
			ErrInvalidChannel, name, MaxChannelLen)
	}
	return nil
}

// Listener is one LISTEN connection (lib/pq's pq.Listener) that fans notifications out to any
// number of Waiters; it reconnects with backoff on its own. Create it with NewListener or Shared
// and release it with Close. Its methods are safe for concurrent use.
type Listener struct {
	pq      *pq.Listener
	log     *slog.Logger
	appName string

	// kick wakes the manager goroutine (capacity 1); done is closed by Close.
	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup

	failing atomic.Bool // connection attempts fail; reported once

	closeOnce sync.Once

	// Reference count of a Listener returned by Shared; guarded by sharedMu.
	sharedKey string
	refs      int

	mu       sync.Mutex
	closed   bool
	channels map[string]*channel
}

// channel is the state of one channel name. It stays in Listener.channels while it has Waiters
// or is LISTENed.
type channel struct {
	name    string
	waiters map[*Waiter]struct{}
	// listening says the pq.Listener has the channel (a successful Listen not yet undone).
	listening bool
	// ready is closed once LISTEN is in effect for the current Waiters, or has failed (err).
	// While it is open, every Waiter of the channel is still inside Wait.
	ready chan struct{}
	err   error
}

// NewListener starts a Listener on dsn, which is either a URL ("postgres://...") or a
// keyword/value string ("host=... port=..."); cfg may be nil. It connects in the background and
// never fails: connection errors are logged and retried. The connection's application_name is
// set to cfg.ApplicationName (see Config).
func NewListener(dsn string, cfg *Config) *Listener {
	c := cfg.withDefaults()
	return newListener(withApplicationName(listenDSN(dsn), c.ApplicationName), c)
}

func newListener(dsn string, c Config) *Listener {
	l := &Listener{
		log:      c.Logger.With("application_name", c.ApplicationName),
		appName:  c.ApplicationName,
		kick:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		channels: map[string]*channel{},
	}
	l.pq = pq.NewListener(dsn, c.MinReconnect, c.MaxReconnect, l.event)
	l.wg.Add(3)
	go l.dispatch()
	go l.manage()
	go l.ping(c.PingInterval)
	return l
}

// event is pq's connection event callback; it runs on pq's dispatching goroutine. A failing
// connection is reported once per outage, with its cause and how to fix it; the attempts that
// follow are logged at Debug.
func (l *Listener) event(ev pq.ListenerEventType, err error) {
	switch ev {
	case pq.ListenerEventConnected:
		if l.failing.Swap(false) {
			l.log.Info("notify: listener connected")
		} else {
			l.log.Debug("notify: listener connected")
		}
	case pq.ListenerEventDisconnected:
		l.log.Warn("notify: listener disconnected; reconnecting", "error", err)
	case pq.ListenerEventConnectionAttemptFailed:
		if l.failing.Swap(true) {
			l.log.Debug("notify: listener connection attempt failed", "error", err)
		} else {
			l.log.Warn("notify: listener cannot connect; retrying with backoff (subscriptions poll meanwhile)",
				"error", err, "fix", hint(err))
		}
	case pq.ListenerEventReconnected:
		l.failing.Store(false)
		// pq sends a nil notification right after this event; dispatch wakes everyone then.
		l.log.Info("notify: listener reconnected; waking all waiters")
	}
}

// dispatch forwards pq's notifications to the Waiters until pq closes its Notify channel, which
// it does once it has stopped after Close. It must never block: pq stops reading the connection
// (and so answering LISTEN) while its Notify channel is full.
func (l *Listener) dispatch() {
	defer l.wg.Done()
	for n := range l.pq.Notify {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			continue // keep draining so that pq's goroutine can finish
		}
		if n == nil {
			// A reconnect: notifications may have been missed while disconnected.
			for _, c := range l.channels {
				for w := range c.waiters {
					w.wake()
				}
			}
		} else if c := l.channels[n.Channel]; c != nil {
			for w := range c.waiters {
				w.payload = n.Extra
				w.wake()
			}
		}
		l.mu.Unlock()
	}
}

// manage issues LISTEN and UNLISTEN, one at a time, until the Listener's channels and pq's
// agree: LISTEN for every channel with Waiters, UNLISTEN for every channel without. Doing it from
// one goroutine keeps the order of LISTEN and UNLISTEN of a channel right without holding l.mu
// during network round trips, and Waiter.Close never blocks.
func (l *Listener) manage() {
	defer l.wg.Done()
	for {
		c, listen := l.nextOp()
		if c == nil {
			select {
			case <-l.kick:
				continue
			case <-l.done:
				return
			}
		}
		var err error
		if listen {
			// Blocks until the server acknowledges, or while disconnected until pq has
			// reconnected (or Close).
			if err = l.pq.Listen(c.name); errors.Is(err, pq.ErrChannelAlreadyOpen) {
				err = nil
			}
		} else if err = l.pq.Unlisten(c.name); errors.Is(err, pq.ErrChannelNotOpen) {
			err = nil
		}
		l.finishOp(c, listen, err)
	}
}

// nextOp returns the next channel to LISTEN (listen) or UNLISTEN, or nil when there is nothing
// to do (or the Listener is closed). It releases the Waiters of channels that are listened.
func (l *Listener) nextOp() (c *channel, listen bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, false
	}
	for name, c := range l.channels {
		switch has := len(c.waiters) > 0; {
		case has && c.listening:
			if !isClosed(c.ready) {
				close(c.ready)
			}
		case has:
			return c, true
		case c.listening:
			return c, false
		default:
			delete(l.channels, name)
		}
	}
	return nil, false
}

// finishOp records the outcome of a LISTEN (listen) or UNLISTEN of c.
func (l *Listener) finishOp(c *channel, listen bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	switch {
	case listen && err == nil:
		c.listening = true // nextOp releases the Waiters
	case listen:
		// The server refused the LISTEN. Every Waiter of c is inside Wait (ready is open), and
		// gets the error; a later Wait starts afresh.
		l.log.Warn("notify: LISTEN failed", "channel", c.name, "error", err)
		c.err = err
		close(c.ready)
		if l.channels[c.name] == c {
			delete(l.channels, c.name)
		}
	default:
		if err != nil {
			l.log.Warn("notify: UNLISTEN failed", "channel", c.name, "error", err)
		}
		c.listening = false
	}
}

// ping pings the connection every interval so that a dead connection is noticed even when no
// notification is sent; pq then reconnects (and wakes every Waiter).
func (l *Listener) ping(interval time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
			if err := l.pq.Ping(); err != nil {
				// A broken connection is also reported by pq's event callback.
				l.log.Debug("notify: listener ping failed", "error", err)
			}
		}
	}
}

func (l *Listener) wakeManager() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Wait registers interest in channel (see ValidateChannel) and returns a Waiter whose C receives
// a value after every NOTIFY on channel, and after every reconnect of the Listener. The first
// Waiter of a channel makes the Listener LISTEN; Wait returns once that is in effect, so a
// NOTIFY committed after Wait returned wakes the Waiter. (If the connection breaks meanwhile,
// Wait may return before; the wake-up after the reconnect covers the gap.) While the Listener
// is disconnected, Wait blocks until it has reconnected or is closed; use WaitContext to bound
// that. It returns ErrClosed once the Listener is closed.
func (l *Listener) Wait(channel string) (*Waiter, error) {
	return l.WaitContext(context.Background(), channel)
}

// WaitContext is Wait, giving up when ctx is done.
func (l *Listener) WaitContext(ctx context.Context, name string) (*Waiter, error) {
	if err := ValidateChannel(name); err != nil {
		return nil, err
	}
	ch := make(chan struct{}, 1)
	w := &Waiter{C: ch, c: ch, l: l}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	c := l.channels[name]
	if c == nil {
		c = &channel{name: name, waiters: map[*Waiter]struct{}{}, ready: make(chan struct{})}
		l.channels[name] = c
	}
	w.ch = c
	c.waiters[w] = struct{}{}
	ready := c.ready
	l.mu.Unlock()

	if !isClosed(ready) {
		l.wakeManager()
		select {
		case <-ready:
		case <-l.done:
		case <-ctx.Done():
			w.Close()
			return nil, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closed:
		w.closeLocked()
		return nil, ErrClosed
	case c.err != nil:
		w.closeLocked()
		return nil, fmt.Errorf("notify: LISTEN %s: %w", name, c.err)
	}
	return w, nil
}

// Close stops the Listener and waits for its goroutines, which, while the database is
// unreachable, can take up to Config.MaxReconnect (pq sleeps between connection attempts
// without looking out for Close), or while a network round trip hangs, until it fails.
// Waiters receive nothing more; their channels C are NOT closed, so that receivers selecting on
// them do not spin: receivers must stop on their own signal (their context, say). Waiter.Close
// remains allowed. A Listener from Shared is only closed by the Close matching the last Shared
// call; call Close exactly once per NewListener or Shared. Close always returns nil.
func (l *Listener) Close() error {
	if !releaseShared(l) {
		return nil
	}
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
		// Unblocks a Listen waiting for a connection; pq then stops and closes its Notify
		// channel, which ends dispatch. Its only error is "already closed".
		_ = l.pq.Close()
		l.wg.Wait()
		l.log.Debug("notify: listener closed")
	})
	return nil
}

// Waiter receives wake-ups for one channel of a Listener. Create it with Listener.Wait and
// release it with Close.
type Waiter struct {
	// C receives a value after every NOTIFY on the channel and after every reconnect of the
	// Listener. Wake-ups are coalesced: C has capacity 1 and the Listener never blocks on it,
	// so one value may stand for many notifications. C is never closed.
	C <-chan struct{}

	c  chan struct{}
	l  *Listener
	ch *channel

	// Guarded by l.mu.
	closed  bool
	payload string
}

// wake sends on w.c without blocking. l.mu is held.
func (w *Waiter) wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// LastPayload returns the payload of the last NOTIFY delivered to w, or "" if none was, for
// tests and diagnostics. Payloads are hints only and may be coalesced away.
func (w *Waiter) LastPayload() string {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	return w.payload
}

// Close stops w's wake-ups (a value already in C stays there; C is not closed). The last Close
// of a channel's Waiters makes the Listener UNLISTEN (in the background: Close never blocks).
// Calling Close again does nothing.
func (w *Waiter) Close() {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.closeLocked()
}

// closeLocked is Close; l.mu is held.
func (w *Waiter) closeLocked() {
	if w.closed {
		return
	}
	w.closed = true
	l, c := w.l, w.ch
	delete(c.waiters, w)
	if len(c.waiters) > 0 || l.closed || l.channels[c.name] != c {
		return
	}
	if isClosed(c.ready) {
		// An UNLISTEN is due: a Wait for this channel must now wait until the manager has
		// settled the channel (UNLISTEN and LISTEN again, or nothing if it comes soon enough).
		c.ready = make(chan struct{})
	}
	l.wakeManager()
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// sharedMu guards sharedListeners and the reference counts of shared Listeners.
var (
	sharedMu        sync.Mutex
	sharedListeners = map[string]*Listener{}
)

// Shared returns a process-wide Listener for dsn and cfg.ApplicationName, reference counted:
// every Store of a process with the same DSN shares one connection. The other fields of cfg are
// only used by the call that creates the Listener. Release each Shared call's result with one
// (*Listener).Close; the last Close really closes.
func Shared(dsn string, cfg *Config) *Listener {
	c := cfg.withDefaults()
	key := withApplicationName(listenDSN(dsn), c.ApplicationName)
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if l := sharedListeners[key]; l != nil {
		l.refs++
		return l
	}
	l := newListener(key, c)
	l.sharedKey, l.refs = key, 1
	sharedListeners[key] = l
	return l
}

// releaseShared drops a reference to a shared Listener and says whether l should really be
// closed: always for a Listener not from Shared, else when the last reference is dropped.
func releaseShared(l *Listener) bool {
	if l.sharedKey == "" {
		return true
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if l.refs == 0 {
		return false // already released
	}
	l.refs--
	if l.refs > 0 {
		return false
	}
	if sharedListeners[l.sharedKey] == l {
		delete(sharedListeners, l.sharedKey)
	}
	return true
}
