package es

import (
	"context"
	"database/sql"
	"errors"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
	"github.com/go-eventstore/eventstore/notify"
)

// Config configures a Store. A nil *Config means all defaults.
type Config struct {
	// Schema is the Postgres schema holding the store's tables: a plain lower-case identifier.
	// Defaults to "public". One Store per schema gives each tenant its own isolated event store.
	Schema string
	// ListenDSN is the connection string of the LISTEN connection that wakes subscriptions; it
	// must reach the same database. Defaults to "" (subscriptions then poll).
	ListenDSN string
	// ListenApplicationName is the application_name of the LISTEN connection, by which operators
	// (and fault tests) find it in pg_stat_activity. Stores of a process with the same ListenDSN
	// and ListenApplicationName share one connection. Defaults to notify.DefaultApplicationName
	// ("eventstore-listener").
	ListenApplicationName string
	// Serializer encodes event and snapshot data. Defaults to NewJSONSerializer().
	Serializer Serializer
	// EnableHardDeletes allows DeleteStream with HardDelete. Defaults to false.
	EnableHardDeletes bool
	// Logger receives background errors. Defaults to a Warn-level text handler on stderr.
	Logger *slog.Logger
	// SequencerInterval is how often the $all sequencer looks for appends committed by other
	// processes or in callers' transactions; this process's own appends wake it at once.
	// Defaults to 20ms.
	SequencerInterval time.Duration
	// SequencerBatch is the most appends one sequencer pass gives $all positions to.
	// Defaults to 1000.
	SequencerBatch int
	// SequencerDelay is the least time between the starts of two sequencer passes woken by this
	// process's appends: an append after a quiet spell is numbered at once, a steady stream of
	// them in batches. Every pass is a commit (a WAL flush), so fewer passes leave more flushes
	// to the writers. Defaults to 10ms; negative means none.
	SequencerDelay time.Duration
	// SubscriptionPollInterval is how often subscriptions read for new events without having been
	// woken, the fallback for lost notifications. Defaults to 1s.
	SubscriptionPollInterval time.Duration
	// DisablePreparedStatements runs every query unprepared, for connection poolers that cannot
	// keep prepared statements (PgBouncer in transaction mode). Defaults to false: queries run as
	// prepared statements, which saves lib/pq a round trip per query.
	DisablePreparedStatements bool
}

// Store is an event store in one Postgres schema. It is safe for concurrent use; many Stores (one
// per schema) can share one *sql.DB. Create it with New and stop it with Close.
type Store struct {
	db         *sql.DB
	q          *db.Queries
	tmpl       *sqltmpl.Templater
	serializer Serializer
	logger     *slog.Logger
	hardDelete bool
	listenDSN  string
	listenApp  string
	channel    string
	dataType   dataTypeState // bytea or jsonb, read from the schema on first write

	seq          *sequencer
	pollInterval time.Duration
	subsMu       sync.Mutex
	subs         map[subKey]*subscription
	transients   map[*TransientSubscription]struct{}
	listenOnce   sync.Once
	listener     *notify.Listener

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

// New returns a Store on the given schema, which must already be migrated (see package goose or
// cmd/es-migrate), and starts its background $all sequencer.
func New(database *sql.DB, cfg *Config) (*Store, error) {
	if database == nil {
		return nil, opError("new store", "", errors.Join(ErrInvalidArgument, errors.New("nil *sql.DB")))
	}
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Schema == "" {
		c.Schema = "public"
	}
	tmpl, err := sqltmpl.NewTemplater(c.Schema)
	if err != nil {
		return nil, opError("new store", "", errors.Join(ErrInvalidArgument, err))
	}
	if !c.DisablePreparedStatements {
		tmpl.Prepare(database)
	}
	if c.Serializer == nil {
		c.Serializer = NewJSONSerializer()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if c.SequencerInterval <= 0 {
		c.SequencerInterval = 20 * time.Millisecond
	}
	if c.SequencerBatch <= 0 {
		c.SequencerBatch = 1000
	}
	switch {
	case c.SequencerDelay == 0:
		c.SequencerDelay = 10 * time.Millisecond
	case c.SequencerDelay < 0:
		c.SequencerDelay = 0
	}
	if c.SubscriptionPollInterval <= 0 {
		c.SubscriptionPollInterval = time.Second
	}
	s := &Store{
		db:         database,
		q:          db.New(),
		tmpl:       tmpl,
		serializer: c.Serializer,
		logger:     c.Logger.With("component", "eventstore", "schema", c.Schema),
		hardDelete: c.EnableHardDeletes,
		listenDSN:  c.ListenDSN,
		listenApp:  c.ListenApplicationName,
		channel:    ChannelName(c.Schema),
		closed:     make(chan struct{}),

		pollInterval: c.SubscriptionPollInterval,
		subs:         map[subKey]*subscription{},
		transients:   map[*TransientSubscription]struct{}{},
	}
	s.seq = newSequencer(s, c.SequencerInterval, c.SequencerDelay, c.SequencerBatch)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.seq.run(ctx) })
	return s, nil
}

// Close stops the subscriptions (writing their checkpoints) and the background work, and gives
// $all positions to this process's last appends. It does not close the *sql.DB. It is safe to
// call more than once.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.subsMu.Lock()
		close(s.closed)
		s.subsMu.Unlock()
		s.stopSubscriptions()
		s.cancel()
		s.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.seq.pass(ctx, s.seq.batch); err != nil {
			s.logger.Warn("final sequencer pass failed", "error", err)
		}
		if s.listener != nil {
			_ = s.listener.Close()
		}
		_ = s.tmpl.Close()
	})
	return nil
}

// waiter returns a wake-up source for this store's notifications, or nil without ListenDSN.
// It gives up when ctx ends (LISTEN waits while the database is unreachable).
func (s *Store) waiter(ctx context.Context) *notify.Waiter {
	if s.listenDSN == "" {
		return nil
	}
	s.listenOnce.Do(func() {
		s.listener = notify.Shared(s.listenDSN, &notify.Config{Logger: s.logger, ApplicationName: s.listenApp})
	})
	w, err := s.listener.WaitContext(ctx, s.channel)
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("cannot listen for notifications; polling only", "error", err)
		}
		return nil
	}
	return w
}

// Schema returns the Postgres schema the store works in.
func (s *Store) Schema() string { return s.tmpl.Schema() }

// ChannelName is the NOTIFY channel of a schema's store: within Postgres' 63-byte limit, and
// distinct per schema.
func ChannelName(schema string) string {
	name := "eventstore_" + schema
	if len(name) <= 63 {
		return name
	}
	h := fnv.New32a()
	h.Write([]byte(schema))
	return name[:50] + "_" + strconv.FormatUint(uint64(h.Sum32()), 16)
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// conn is where a call runs: the caller's transaction when given, else the pool.
func (s *Store) conn(o *callOptions) sqltmpl.DBTX {
	if o.tx != nil {
		return s.tmpl.Wrap(o.tx)
	}
	return s.tmpl.Wrap(s.db)
}

// inTx runs fn in the caller's transaction, or in a transaction of the store's own that it commits
// when fn succeeds.
func (s *Store) inTx(ctx context.Context, o *callOptions, fn func(conn sqltmpl.DBTX) error) error {
	if o.tx != nil {
		return fn(s.tmpl.Wrap(o.tx))
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(s.tmpl.Wrap(tx)); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}
