package es

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"golang.org/x/sync/singleflight"

	"github.com/go-eventstore/eventstore/db"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
	"github.com/go-eventstore/eventstore/notify"
)

// Config configures a Store. A nil *Config means all defaults.
type Config struct {
	// Schema is the Postgres schema holding the store's tables: a plain lower-case identifier.
	// Defaults to "public". One Store per schema gives each tenant its own isolated event store.
	Schema string
	// ListenDSN is the connection string (a postgres:// URL or key=value pairs, as psql takes
	// them) of the LISTEN connection whose notifications wake subscriptions at once; it must reach
	// the same database, directly (not through PgBouncer in transaction mode). As with psql, TLS
	// is used when the server offers it unless sslmode says otherwise. Subscriptions never wait
	// for it: they poll every SubscriptionPollInterval, and a LISTEN connection that fails is
	// reported (once per outage) and retried. New fails on a string that cannot be parsed.
	// Defaults to "" (subscriptions then poll only).
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
	// SubscriptionPollInterval is how often the store looks for new events for its subscriptions
	// without having been woken (one query for all of them), the fallback for lost notifications
	// and the only source without ListenDSN; at least MinSubscriptionInterval. Defaults to
	// DefaultSubscriptionPollInterval (1s).
	SubscriptionPollInterval time.Duration
	// LeaseDuration is how long a persistent subscription's lease lasts without renewal: a holder
	// that cannot renew stops delivering when it runs out, and a process that died is replaced
	// within it plus SubscriptionOptions.RetryInterval. Defaults to DefaultLeaseDuration (6s).
	LeaseDuration time.Duration
	// LeaseRenewInterval is how often the store renews the leases it holds, all in one statement;
	// between MinSubscriptionInterval and half of LeaseDuration. Defaults to a third of
	// LeaseDuration (2s by default).
	LeaseRenewInterval time.Duration
	// DisablePreparedStatements runs every query in one round trip that leaves nothing prepared
	// on the server, for connection poolers that hand each transaction to any server connection
	// (PgBouncer in transaction mode): with pgx, on the unnamed statement; with lib/pq, with the
	// parameters written into the query. It is the one setting such a pooler needs, for either
	// driver. Defaults to false: queries run as prepared statements, which saves lib/pq a round
	// trip per query and the server the planning.
	DisablePreparedStatements bool
	// Replica is a pool on a streaming standby of the database (hot_standby on, as PostgreSQL
	// ships it), or on a pooler in front of several, holding the same schema. Reads of streams
	// and $all (Read*, Stream*, stream info aside) and the catch-up reads of subscriptions then go
	// to it; appends, deletes, snapshots, the $all sequencer, the subscriptions' leases and
	// checkpoints and the poller's head query stay on the primary. A replica shows the primary as
	// of some moments ago (its replay lag), never out of order: a read returns a prefix of what
	// the primary would, and subscriptions never skip an event. To read one's own writes there,
	// take PrimaryLSN after writing and read WithMinLSN or WithMinLSNOrPrimary; WithPrimary reads
	// the primary. A replica that does not answer is read around: the primary serves until it
	// does. The Store does not close it. Defaults to nil: everything runs on the primary.
	Replica *sql.DB
	// ReplicaPollInterval is how often, while subscriptions run, the store looks at the replica's
	// $all head to wake the subscriptions that read it before it caught up, and the longest pause
	// between two looks of a read waiting for WithMinLSN. Defaults to DefaultReplicaPollInterval
	// (50ms).
	ReplicaPollInterval time.Duration
	// MeterProvider receives the store's OpenTelemetry metrics (see the Metric* names): append
	// latency and events, the $all head, the sequencer's backlog, and per persistent subscription
	// its lag in events and seconds and whether a lease is held. The gauges are read with two
	// queries at each collection, schema-wide, so every process reports the same values. Defaults
	// to nil: no metrics, and nothing is measured.
	MeterProvider metric.MeterProvider
	// TracerProvider receives the store's OpenTelemetry spans: eventstore.append,
	// eventstore.read, eventstore.sequencer.pass (passes that numbered appends) and
	// eventstore.subscription.batch (batches handed to subscribers). Defaults to nil: no spans,
	// and nothing is paid.
	TracerProvider trace.TracerProvider
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
	tel        *telemetry    // nil without a MeterProvider or TracerProvider

	seq            *sequencer
	poller         *poller
	allReads       singleflight.Group // concurrent identical subscription reads of $all
	aheads         readAheads         // subscription pages being read ahead (es/readahead.go)
	readAheadsUsed atomic.Int64       // pages read ahead that a subscription delivered (tests)
	leases         *leaseKeeper
	checkpoints    *checkpointWriter
	pollInterval   time.Duration
	subsMu         sync.Mutex
	subs           map[subKey]*subscription
	groups         map[subKey]*segmentGroup // segmented projections (segment is 0 in the key)
	transients     map[*TransientSubscription]struct{}
	listenOnce     sync.Once
	listenConn     *notify.Listener
	replica        *replicaState // nil without Config.Replica

	cancel     context.CancelFunc // stops the background loops
	hardCtx    context.Context    // bounds the last writes of a stop; cancelled when Shutdown's ctx ends
	hardCancel context.CancelFunc
	wg         sync.WaitGroup
	closed     chan struct{}
	once       sync.Once
	closeErr   error
}

// DefaultSubscriptionPollInterval is Config.SubscriptionPollInterval's default.
const DefaultSubscriptionPollInterval = time.Second

// DefaultCloseTimeout bounds Close: see Shutdown.
const DefaultCloseTimeout = 10 * time.Second

// New returns a Store on the given schema, which must already be migrated (see package goose or
// cmd/es-migrate), and starts its background $all sequencer. It reads the schema's migration
// version first: a schema that holds no event store, or is behind or ahead of this library, is
// ErrSchemaVersion, with the command to run.
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
	} else {
		tmpl.Unprepared(database)
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
	if c.SubscriptionPollInterval == 0 {
		c.SubscriptionPollInterval = DefaultSubscriptionPollInterval
	}
	if c.SubscriptionPollInterval < MinSubscriptionInterval {
		return nil, opError("new store", "", fmt.Errorf("%w: SubscriptionPollInterval %s must be at least %s (0: the default)",
			ErrInvalidArgument, c.SubscriptionPollInterval, MinSubscriptionInterval))
	}
	if c.LeaseDuration < 0 || c.LeaseRenewInterval < 0 {
		return nil, opError("new store", "", fmt.Errorf("%w: negative LeaseDuration %s or LeaseRenewInterval %s",
			ErrInvalidArgument, c.LeaseDuration, c.LeaseRenewInterval))
	}
	if c.LeaseDuration == 0 {
		c.LeaseDuration = DefaultLeaseDuration
	}
	if c.LeaseRenewInterval == 0 {
		c.LeaseRenewInterval = c.LeaseDuration / 3
	}
	if c.LeaseDuration < 100*time.Millisecond || c.LeaseDuration > MaxSubscriptionInterval ||
		c.LeaseRenewInterval > c.LeaseDuration/2 || c.LeaseRenewInterval < MinSubscriptionInterval {
		return nil, opError("new store", "", fmt.Errorf("%w: LeaseDuration %s must be between 100ms and %s, and LeaseRenewInterval %s between %s and half of it",
			ErrInvalidArgument, c.LeaseDuration, MaxSubscriptionInterval, c.LeaseRenewInterval, MinSubscriptionInterval))
	}
	if c.ListenDSN != "" {
		if err := notify.CheckDSN(c.ListenDSN); err != nil {
			return nil, opError("new store", "", fmt.Errorf("%w: ListenDSN: %w", ErrInvalidArgument, err))
		}
	}
	// After the configuration checks (bad input touches nothing), and through the templater:
	// behind PgBouncer, even this first look must leave nothing prepared.
	if err := checkSchemaVersion(tmpl.Wrap(database), c.Schema); err != nil {
		return nil, opError("new store", "", err)
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
		groups:       map[subKey]*segmentGroup{},
		transients:   map[*TransientSubscription]struct{}{},
	}
	// The data type is fixed for the schema's life: read it now, so that no call made in a
	// caller's transaction needs a second pool connection for it (a pool of one would wait forever).
	typeCtx, cancelType := context.WithTimeout(context.Background(), schemaCheckTimeout)
	_, err = s.isJSONB(typeCtx)
	cancelType()
	if err != nil {
		return nil, opError("new store", "", err)
	}
	if c.Replica != nil {
		if c.ReplicaPollInterval <= 0 {
			c.ReplicaPollInterval = DefaultReplicaPollInterval
		}
		if s.replica, err = newReplicaState(c.Replica, c.Schema, c.DisablePreparedStatements, c.ReplicaPollInterval); err != nil {
			return nil, opError("new store", "", errors.Join(ErrInvalidArgument, err))
		}
	}
	if s.tel, err = newTelemetry(s, c.Schema, c.MeterProvider, c.TracerProvider); err != nil {
		return nil, opError("new store", "", fmt.Errorf("telemetry: %w", err))
	}
	s.seq = newSequencer(s, c.SequencerInterval, c.SequencerDelay, c.SequencerBatch)
	s.poller = newPoller(s, c.SubscriptionPollInterval)
	s.leases = newLeaseKeeper(s, c.LeaseDuration, c.LeaseRenewInterval)
	s.checkpoints = newCheckpointWriter(s)
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(s.hardCtx)
	s.cancel = cancel
	s.wg.Go(func() { s.seq.run(ctx) })
	s.wg.Go(func() { s.poller.run(ctx) })
	s.wg.Go(func() { s.leases.run(ctx) })
	s.wg.Go(func() { s.checkpoints.run(ctx) })
	if s.replica != nil {
		s.wg.Go(func() { s.watchReplica(ctx) })
	}
	return s, nil
}

// Close is Shutdown bounded by DefaultCloseTimeout. It does not close the *sql.DB. It is safe to
// call more than once; later calls return the first one's result.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultCloseTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops the store's subscriptions (writing their last checkpoints and releasing their
// leases, so other processes take over at once) and its background work, and gives $all
// positions to this process's last appends. When ctx ends first (the database unreachable, or
// the pool exhausted by the caller's own transactions), the remaining work is cancelled: leases
// then run out on their own, and appends are numbered by the next sequencer pass of any process.
// Shutdown returns ctx's error then, and nil otherwise. It does not close the *sql.DB. It is safe
// to call more than once; later calls return the first one's result.
func (s *Store) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		stop := context.AfterFunc(ctx, s.hardCancel)
		defer stop()
		s.subsMu.Lock()
		close(s.closed)
		s.subsMu.Unlock()
		s.stopSubscriptions()
		s.aheads.stop() // their subscriptions' contexts, cancelled, end them
		s.tel.close()
		s.cancel()
		s.wg.Wait()
		if _, err := s.seq.pass(s.hardCtx, s.seq.batch); err != nil && s.hardCtx.Err() == nil {
			s.logger.Warn("final sequencer pass failed", "error", err)
		}
		if s.listenConn != nil {
			_ = s.listenConn.Close()
		}
		_ = s.tmpl.Close()
		if s.replica != nil {
			_ = s.replica.tmpl.Close()
		}
		if ctx.Err() != nil {
			s.closeErr = opError("shutdown", "", ctx.Err())
		}
		s.hardCancel()
	})
	return s.closeErr
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
