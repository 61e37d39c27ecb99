package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// runner holds one Run's state.
type runner struct {
	cfg   Config
	began time.Time
	rep   *Report
	dsn   string
	envs  []*env

	mu           sync.Mutex
	results      []Result
	schemas      []string // created and not yet dropped
	noCheckpoint bool     // CHECKPOINT was refused once; do not try again
}

func (r *runner) progress(format string, args ...any) {
	fmt.Fprintf(r.cfg.Progress, "[%7s] %s\n", time.Since(r.began).Round(100*time.Millisecond), fmt.Sprintf(format, args...))
}

func (r *runner) add(res Result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results = append(r.results, res)
	line := fmt.Sprintf("%s [%s]: store %s, raw %s, ratio %s", res.Workload, res.Driver, res.StoreString(), res.RawString(), res.RatioString())
	if res.Err != nil {
		line += fmt.Sprintf(" (error: %v)", res.Err)
	}
	r.progress("%s", line)
}

// sorted groups the results by workload (first-seen order), drivers in configured order.
func (r *runner) sorted() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := map[string]int{}
	for i, res := range r.results {
		if _, ok := first[res.Workload]; !ok {
			first[res.Workload] = i
		}
	}
	out := slices.Clone(r.results)
	slices.SortStableFunc(out, func(a, b Result) int {
		if d := first[a.Workload] - first[b.Workload]; d != 0 {
			return d
		}
		return slices.Index(r.cfg.Drivers, a.Driver) - slices.Index(r.cfg.Drivers, b.Driver)
	})
	return out
}

// env is one driver's connection pool.
type env struct {
	r      *runner
	driver string
	db     *sql.DB
}

// pool sizes the pool for n concurrent workers plus the store's own background work, and opens
// the connections up front so that no measurement pays for connecting.
func (e *env) pool(ctx context.Context, n int) error {
	size := n + 5
	e.db.SetMaxOpenConns(size)
	e.db.SetMaxIdleConns(size)
	e.db.SetConnMaxIdleTime(0)
	e.db.SetConnMaxLifetime(0)
	conns := make([]*sql.Conn, 0, size)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for range size {
		wg.Go(func() {
			c, err := e.db.Conn(ctx)
			if err == nil {
				err = c.PingContext(ctx)
			}
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns = append(conns, c)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("open %d connections: %w", size, firstErr)
	}
	return nil
}

// checkpoint flushes the cluster's dirty pages so that every measurement starts from the same
// state: no checkpoint pending, and the first change to each page after it logs a full page image
// on both sides alike. Without the privilege it is skipped (noted in the settings).
func (e *env) checkpoint(ctx context.Context) {
	e.r.mu.Lock()
	skip := e.r.noCheckpoint
	e.r.mu.Unlock()
	if skip {
		return
	}
	if _, err := e.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		e.r.mu.Lock()
		e.r.noCheckpoint = true
		e.r.mu.Unlock()
		e.r.progress("CHECKPOINT refused (%v); measurements start without one", err)
	}
}

// fixture is one fresh schema: a migrated store and the baseline's tables.
type fixture struct {
	env    *env
	schema string
	store  *es.Store
	raw    *rawTable
}

// benchType is the event type of every event; its data is registered as json.RawMessage, so the
// store hands back the stored JSON as it is instead of decoding it into maps.
const benchType = "BenchEvent"

// newFixture creates bench_<random>, migrates it with goose, adds the baseline's tables and opens
// a store on it.
func (e *env) newFixture(ctx context.Context, configure ...func(*es.Config)) (*fixture, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "bench_" + hex.EncodeToString(b[:])
	e.r.mu.Lock()
	e.r.schemas = append(e.r.schemas, schema)
	e.r.mu.Unlock()
	if _, err := goose.UpWithOptions(ctx, e.db, schema, goose.Options{DataType: goose.DataType(e.r.cfg.DataType)}); err != nil {
		return nil, err
	}
	raw, err := createRaw(ctx, e.db, schema)
	if err != nil {
		return nil, err
	}
	ser := es.NewJSONSerializer()
	if err := ser.Register(benchType, json.RawMessage(nil)); err != nil {
		raw.close()
		return nil, err
	}
	cfg := &es.Config{
		Schema:     schema,
		ListenDSN:  e.r.dsn,
		Serializer: ser,
		Logger:     e.r.cfg.Logger,

		SequencerDelay: e.r.cfg.SequencerDelay,
	}
	for _, fn := range configure {
		fn(cfg)
	}
	store, err := es.New(e.db, cfg)
	if err != nil {
		raw.close()
		return nil, err
	}
	return &fixture{env: e, schema: schema, store: store, raw: raw}, nil
}

// close closes the store and drops the schema.
func (f *fixture) close() {
	_ = f.store.Close()
	f.raw.close()
	f.env.r.dropSchema(f.schema)
}

func (r *runner) dropSchema(schema string) {
	r.mu.Lock()
	i := slices.Index(r.schemas, schema)
	if i >= 0 {
		r.schemas = slices.Delete(r.schemas, i, i+1)
	}
	r.mu.Unlock()
	if i < 0 || len(r.envs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := r.envs[0].db.ExecContext(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE", pgident.Quote(schema))); err != nil {
		r.progress("drop schema %s: %v", schema, err)
	}
}

// dropSchemas drops whatever schema a failed or interrupted workload left behind.
func (r *runner) dropSchemas() {
	r.mu.Lock()
	left := slices.Clone(r.schemas)
	r.mu.Unlock()
	for _, s := range left {
		r.dropSchema(s)
	}
}

// vacuum runs VACUUM (ANALYZE) on every table of the fixture's schema, so that reads after a bulk
// load find hint bits set and statistics current on both sides alike.
func (f *fixture) vacuum(ctx context.Context) error {
	rows, err := f.env.db.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, f.schema)
	if err != nil {
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := f.env.db.ExecContext(ctx, fmt.Sprintf("VACUUM (ANALYZE) %s.%s", pgident.Quote(f.schema), pgident.Quote(t))); err != nil {
			return fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	return nil
}

// settings gathers the machine, Go, PostgreSQL and run settings.
func (r *runner) settings(ctx context.Context, server string) [][2]string {
	c := r.cfg
	s := [][2]string{
		{"date", time.Now().UTC().Format(time.RFC3339)},
		{"Go", fmt.Sprintf("%s %s/%s, GOMAXPROCS %d, %d CPUs", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU())},
	}
	if cpu := cpuModel(); cpu != "" {
		s = append(s, [2]string{"CPU", cpu})
	}
	db := r.envs[0].db
	var version string
	if err := db.QueryRowContext(ctx, "SELECT version()").Scan(&version); err != nil {
		version = "unknown: " + err.Error()
	}
	s = append(s, [2]string{"PostgreSQL", version}, [2]string{"server", server})
	var shows []string
	for _, name := range []string{"fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers", "max_wal_size", "max_connections"} {
		var v string
		if err := db.QueryRowContext(ctx, "SHOW "+name).Scan(&v); err != nil {
			v = "?"
		}
		shows = append(shows, name+"="+v)
	}
	s = append(s, [2]string{"server settings (SHOW)", strings.Join(shows, ", ")})
	slicing := "in one slice per side (store, then raw)"
	if c.Rounds > 1 {
		slicing = fmt.Sprintf("in %d alternating slices (store, raw, store, ...)", c.Rounds)
	}
	var drivers []string
	for _, d := range c.Drivers {
		switch d {
		case "postgres":
			drivers = append(drivers, "postgres (lib/pq "+modVersion("github.com/lib/pq")+")")
		case "pgx":
			drivers = append(drivers, "pgx (pgx/v5/stdlib "+modVersion("github.com/jackc/pgx/v5")+")")
		}
	}
	s = append(s,
		[2]string{"drivers", strings.Join(drivers, ", ")},
		[2]string{"timing", fmt.Sprintf("%s per side and measurement, %s, each after a warm-up of at least %s that lasts until the workers have completed one call per worker; a CHECKPOINT before each measurement; after each store append slice the $all sequencer is let catch up, untimed", c.Duration, slicing, c.Warmup)},
		[2]string{"pool", "SetMaxOpenConns(concurrency+5), connections opened before measuring"},
		[2]string{"events", fmt.Sprintf("%d bytes of JSON data, %d bytes of JSON metadata, type %q; the same bytes on both sides", len(payload), len(metadataJSON), benchType)},
		[2]string{"load", fmt.Sprintf("%s events for catch-up and big, %d per append, %d writers", thousands(int64(c.LoadEvents)), c.LoadBatch, c.LoadWriters)},
	)
	return s
}

func modVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "?"
	}
	for _, d := range info.Deps {
		if d.Path == path {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return "?"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
