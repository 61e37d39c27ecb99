// Package bench measures the event store against a raw-SQL baseline on the same PostgreSQL cluster,
// with the same driver and the same concurrency, and reports both figures and their ratio
// (docs/design.md, "Performance"). cmd/es-bench is its command line.
//
// Every workload runs in a fresh schema (migrated with package goose, named bench_<random>) that
// also holds the baseline's table, raw_events; the schema is dropped when the workload ends. The
// store and the baseline write and read the same rows: ~160 bytes of JSON data and a small JSON
// metadata object per event.
//
// Workloads (names for Config.Workloads):
//
//	append1    append 1 event per call, 1, 10 and 100 writers on distinct streams (exact expected version)
//	append100  append 100 events per call, 1, 10 and 100 writers on distinct streams
//	onestream  10 writers appending 1 event per call to one stream with es.AnyVersion
//	read       read a 100-event stream with 1, 10 and 100 concurrent readers
//	latency    append-commit to subscriber-delivery latency, 10 writers, p50/p99/max
//	catchup    preload Config.LoadEvents events, then a persistent $all subscription catches up
//	big        the append and read workloads again with Config.LoadEvents events already stored
//	filters    category reads and filtered $all catch-ups in a store of Config.LoadEvents events
package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "github.com/lib/pq"              // registers driver "postgres"

	"github.com/go-eventstore/eventstore/internal/pgtest"
)

// Workload names, in the order they run and are reported.
const (
	// Append1 appends 1 event per call with 1, 10 and 100 writers, each on its own stream.
	Append1 = "append1"
	// Append100 appends 100 events per call with 1, 10 and 100 writers, each on its own stream.
	Append100 = "append100"
	// OneStream has 10 writers append 1 event per call to one stream with es.AnyVersion.
	OneStream = "onestream"
	// Read reads one 100-event stream with 1, 10 and 100 concurrent readers.
	Read = "read"
	// LatencyWorkload measures append-commit to subscriber-delivery latency (no baseline).
	LatencyWorkload = "latency"
	// CatchUp preloads Config.LoadEvents events and measures a persistent $all subscription
	// catching up with them, against a keyset-paged scan of the same rows.
	CatchUp = "catchup"
	// Big repeats the append (1 and 100 events, 1 and 10 writers) and read workloads with
	// Config.LoadEvents events already in the store and rows in the baseline's table.
	Big = "big"
)

// AllWorkloads lists every workload name, in run order.
var AllWorkloads = []string{Append1, Append100, OneStream, Read, LatencyWorkload, CatchUp, Big, Filters, ManySubs, Soak, AppendParts}

// DefaultWorkloads are the workloads run when Config.Workloads is empty: all but Big, Filters,
// ManySubs, Soak and AppendParts.
var DefaultWorkloads = []string{Append1, Append100, OneStream, Read, LatencyWorkload, CatchUp}

// Config configures Run. The zero value runs the default workloads under both drivers, 5s each,
// on a throwaway durable PostgreSQL.
type Config struct {
	// DatabaseURL is the database to benchmark in. Defaults to "": Run starts a throwaway server
	// (pgtest.StartPostgres with Durable: fsync and synchronous_commit on, as shipped) and stops
	// it at the end.
	DatabaseURL string
	// Drivers are the database/sql drivers to run every workload under, "postgres" (lib/pq) and
	// "pgx" (pgx's stdlib). Defaults to both.
	Drivers []string
	// Duration is how long each side of a measurement runs in total, after its warm-up.
	// Defaults to 5s.
	Duration time.Duration
	// Rounds is how many alternating slices (store, raw, store, raw, ...) a measurement is split
	// into, so that a change in the machine's load weighs on both sides alike. Defaults to 3.
	Rounds int
	// Warmup is the shortest warm-up before each slice of a measurement, not counted; it lasts
	// until the workers have completed one call per worker. Defaults to Duration/10, between
	// 20ms and 500ms.
	Warmup time.Duration
	// Levels are the numbers of concurrent writers (readers) of the append1, append100 and read
	// workloads. Defaults to 1, 10 and 100.
	Levels []int
	// BigLevels are the numbers of concurrent writers (readers) of the big workload's appends;
	// its reads use Levels. Defaults to 1 and 10.
	BigLevels []int
	// Subscriptions is how many persistent subscriptions the ManySubs workload runs. Defaults to
	// 1000.
	Subscriptions int
	// Workloads are the workload names to run (see AllWorkloads). Defaults to DefaultWorkloads.
	Workloads []string
	// LoadEvents is how many events the catch-up and big workloads preload. Defaults to 1,000,000.
	LoadEvents int
	// LoadBatch is how many events each preload append writes. Defaults to 1000.
	LoadBatch int
	// LoadWriters is how many goroutines preload concurrently. Defaults to 4.
	LoadWriters int
	// LatencyMinEvents is the fewest deliveries the latency workload measures; it runs longer
	// than Duration (up to 4x) to reach them. Defaults to 3000.
	LatencyMinEvents int
	// DataType is the stores' data column type, "bytea" or "jsonb" (see goose.Options); the
	// baseline's table stays bytea. Defaults to bytea.
	DataType string
	// SoakDuration is how long the Soak workload runs. Defaults to 30 minutes.
	SoakDuration time.Duration
	// SoakRate is the Soak workload's total append rate in events per second, shared by its
	// SoakWriters writers. Defaults to 1000.
	SoakRate int
	// SoakInterval is how often the Soak workload reports. Defaults to a minute.
	SoakInterval time.Duration
	// SequencerDelay is the stores' es.Config.SequencerDelay. Defaults to 0: the store's default.
	SequencerDelay time.Duration
	// Progress receives progress lines. Defaults to discarding them.
	Progress io.Writer
	// Logger is the stores' logger. Defaults to a Warn-level text handler on stderr.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Drivers) == 0 {
		c.Drivers = []string{"postgres", "pgx"}
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Subscriptions <= 0 {
		c.Subscriptions = 1000
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.Warmup <= 0 {
		c.Warmup = min(max(c.Duration/10, 20*time.Millisecond), 500*time.Millisecond)
	}
	if len(c.Levels) == 0 {
		c.Levels = []int{1, 10, 100}
	}
	if len(c.BigLevels) == 0 {
		c.BigLevels = []int{1, 10}
	}
	if len(c.Workloads) == 0 {
		c.Workloads = DefaultWorkloads
	}
	if c.LoadEvents <= 0 {
		c.LoadEvents = 1_000_000
	}
	if c.LoadBatch <= 0 {
		c.LoadBatch = 1000
	}
	if c.LoadWriters <= 0 {
		c.LoadWriters = 4
	}
	if c.SoakDuration <= 0 {
		c.SoakDuration = 30 * time.Minute
	}
	if c.SoakRate <= 0 {
		c.SoakRate = 1000
	}
	if c.SoakInterval <= 0 {
		c.SoakInterval = time.Minute
	}
	if c.LatencyMinEvents <= 0 {
		c.LatencyMinEvents = 3000
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return c
}

func (c Config) validate() error {
	for _, d := range c.Drivers {
		if d != "postgres" && d != "pgx" {
			return fmt.Errorf("bench: unknown driver %q (want postgres or pgx)", d)
		}
	}
	for _, n := range slices.Concat(c.Levels, c.BigLevels) {
		if n <= 0 || n > 250 {
			return fmt.Errorf("bench: concurrency %d: want 1 to 250", n)
		}
	}
	for _, w := range c.Workloads {
		if !slices.Contains(AllWorkloads, w) {
			return fmt.Errorf("bench: unknown workload %q (want one of %s)", w, strings.Join(AllWorkloads, ", "))
		}
	}
	return nil
}

// Result is one line of the report: one workload, at one concurrency, under one driver.
type Result struct {
	// Workload says what ran, e.g. "append 1 event/call, 10 writers, distinct streams".
	Workload string
	// Driver is the database/sql driver: "postgres" (lib/pq) or "pgx".
	Driver string
	// Store is the store's figure in events per second; for the latency workload, the p50 in
	// milliseconds (Latency holds the details).
	Store float64
	// Raw is the raw-SQL baseline's figure in events per second; 0 when the workload has none.
	Raw float64
	// Latency holds the latency workload's percentiles; nil for the other workloads.
	Latency *Latency
	// Notes explain the figures: sequencer backlog, phases, anything unusual.
	Notes []string
	// Err is why the workload failed; its figures are then incomplete.
	Err error
}

// Ratio is Store/Raw, and false when there is no baseline figure.
func (r Result) Ratio() (float64, bool) {
	if r.Raw <= 0 || r.Latency != nil {
		return 0, false
	}
	return r.Store / r.Raw, true
}

// RatioString is the ratio as printed, e.g. "0.82x", or "-" without a baseline.
func (r Result) RatioString() string {
	ratio, ok := r.Ratio()
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fx", ratio)
}

// StoreString is the store's figure as printed.
func (r Result) StoreString() string {
	switch {
	case r.Err != nil && r.Store <= 0:
		return "error"
	case r.Latency != nil:
		return r.Latency.String()
	}
	return FormatRate(r.Store)
}

// RawString is the baseline's figure as printed, or "-".
func (r Result) RawString() string {
	if r.Raw <= 0 {
		if r.Err != nil && r.Latency == nil {
			return "error"
		}
		return "-"
	}
	return FormatRate(r.Raw)
}

// Latency summarises delivery latencies.
type Latency struct {
	// N is how many deliveries were measured.
	N int
	// P50, P99 and Max are the median, 99th percentile and largest latency.
	P50, P99, Max time.Duration
	// Rate is the writers' append rate during the measurement, in events per second.
	Rate float64
}

// String formats the latency as printed in the report.
func (l *Latency) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%s)", ms(l.P50), ms(l.P99), ms(l.Max), thousands(int64(l.N)))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// FormatRate formats events per second with thousands separators, e.g. "12,345 ev/s".
func FormatRate(rate float64) string {
	if math.IsNaN(rate) || math.IsInf(rate, 0) {
		return "?"
	}
	return thousands(int64(math.Round(rate))) + " ev/s"
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Report is the outcome of Run: the settings the figures were measured under, and the figures.
type Report struct {
	// Settings are name/value lines: machine, Go, PostgreSQL and its durability settings, and
	// how the benchmark ran.
	Settings [][2]string
	// Results are the figures, grouped by workload, drivers in Config.Drivers order.
	Results []Result
	// Method explains each workload's store and baseline sides.
	Method []string
	// Elapsed is how long Run took.
	Elapsed time.Duration
}

// Run runs the configured workloads and returns their figures. A failed workload is reported in
// its Result and in the returned error, and the others still run; the report is never nil.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	c := cfg.withDefaults()
	began := time.Now()
	rep := &Report{}
	if err := c.validate(); err != nil {
		return rep, err
	}
	r := &runner{cfg: c, began: began, rep: rep}

	dsn := c.DatabaseURL
	server := "given (Config.DatabaseURL)"
	if dsn == "" {
		r.progress("starting a throwaway durable PostgreSQL (pgtest.StartPostgres, Durable: true)")
		pg, err := pgtest.StartPostgres(ctx, &pgtest.PostgresConfig{Durable: true})
		if err != nil {
			return rep, fmt.Errorf("bench: start postgres: %w", err)
		}
		defer func() {
			r.progress("stopping the throwaway PostgreSQL")
			if err := pg.Stop(); err != nil {
				r.progress("stop postgres: %v", err)
			}
		}()
		dsn = pg.DSN("postgres")
		server = fmt.Sprintf("throwaway (pgtest.StartPostgres, Durable: true), TCP 127.0.0.1:%d", pg.Port())
	}
	r.dsn = dsn

	for _, d := range c.Drivers {
		db, err := sql.Open(d, dsn)
		if err != nil {
			return rep, fmt.Errorf("bench: open %s: %w", d, err)
		}
		defer db.Close()
		if err := db.PingContext(ctx); err != nil {
			return rep, fmt.Errorf("bench: connect with %s: %w", d, err)
		}
		r.envs = append(r.envs, &env{r: r, driver: d, db: db})
	}
	defer r.dropSchemas()
	rep.Settings = r.settings(ctx, server)

	var errs []error
	selected := func(name string) bool { return slices.Contains(c.Workloads, name) }
	for _, name := range []string{Append1, Append100, OneStream, Read, LatencyWorkload} {
		if !selected(name) {
			continue
		}
		for _, e := range r.envs {
			if ctx.Err() != nil {
				break
			}
			if err := r.runWorkload(ctx, e, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if selected(CatchUp) || selected(Big) {
		for _, e := range r.envs {
			if ctx.Err() != nil {
				break
			}
			if err := r.runLoaded(ctx, e, selected(CatchUp), selected(Big)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if selected(ManySubs) {
		for _, e := range r.envs {
			if ctx.Err() != nil {
				break
			}
			if err := r.manySubs(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if selected(Soak) {
		for _, e := range r.envs {
			if ctx.Err() != nil {
				break
			}
			if err := r.soak(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if selected(AppendParts) {
		for _, e := range r.envs {
			if ctx.Err() != nil {
				break
			}
			if err := r.appendParts(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if selected(Filters) {
		for _, e := range r.envs {
			if ctx.Err() != nil {
				break
			}
			if err := r.filters(ctx, e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	rep.Method = r.method()
	rep.Results = r.sorted()
	rep.Elapsed = time.Since(began)
	return rep, errors.Join(errs...)
}
