// Command es-bench measures the event store against a raw-SQL baseline on the same PostgreSQL
// cluster, same driver and same concurrency, and prints a markdown table of both figures and
// their ratio, with the machine and server settings. Progress goes to stderr.
//
//	go run ./cmd/es-bench [--database-url URL] [--driver postgres|pgx|both] [--duration 5s]
//	                      [--short] [--big] [--workloads append1,append100,...]
//	go run ./cmd/es-bench --soak [--soak-duration 30m] [--soak-rate 1000] [--soak-interval 1m]
//
// Without --database-url it starts a throwaway PostgreSQL with fsync and synchronous_commit on
// (as shipped) and stops it at the end. Every workload runs in a fresh schema, dropped afterwards.
// --short is a quick run (1.2s per side and measurement in one slice, 100,000-event catch-up, no
// big workloads). --soak runs only the sustained-load soak (see bench.Soak), 30 minutes by default.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/go-eventstore/eventstore/bench"
)

func main() {
	var (
		url       = flag.String("database-url", "", "PostgreSQL URL to benchmark in (default: start a throwaway durable server)")
		driver    = flag.String("driver", "both", "database/sql driver: postgres (lib/pq), pgx, or both")
		duration  = flag.Duration("duration", 5*time.Second, "time each side of a measurement runs (over all its slices), warm-ups not counted")
		short     = flag.Bool("short", false, "quick run: 1.2s measurements, one slice per side, 100,000-event catch-up, no big workloads")
		big       = flag.Bool("big", false, "also run the append and read workloads with the catch-up's events already stored")
		workloads = flag.String("workloads", "", "comma-separated workloads to run: "+strings.Join(bench.AllWorkloads, ","))
		rounds    = flag.Int("rounds", 3, "alternating store/raw slices per measurement (1 with --short)")
		load      = flag.Int("load", 0, "events preloaded for catch-up and big (default 1,000,000; 100,000 with --short)")
		dataType  = flag.String("data-type", "bytea", "the stores' data column type: bytea or jsonb")
		soak      = flag.Bool("soak", false, "run only the soak: 10 writers at a fixed rate with subscriptions, a report every --soak-interval (driver pgx unless --driver)")
		soakFor   = flag.Duration("soak-duration", 30*time.Minute, "how long the soak runs")
		soakRate  = flag.Int("soak-rate", 1000, "the soak's total append rate, events per second")
		soakEvery = flag.Duration("soak-interval", time.Minute, "how often the soak reports")
		cpuProf   = flag.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file (go tool pprof)")
		seqDelay  = flag.Duration("sequencer-delay", 0, "the stores' es.Config.SequencerDelay (0: the store's default; negative: none)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: es-bench [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if flag.NArg() > 0 {
		usageError("unexpected argument %q (flags only; see -h)", flag.Arg(0))
	}
	// A flag given must mean what it says: zero or less would otherwise fall back to a default.
	for name, positive := range map[string]bool{
		"duration": *duration > 0, "rounds": *rounds > 0, "load": *load > 0,
		"soak-duration": *soakFor > 0, "soak-rate": *soakRate > 0, "soak-interval": *soakEvery > 0,
	} {
		if set[name] && !positive {
			usageError("--%s %s: must be more than 0", name, flag.Lookup(name).Value)
		}
	}

	cfg := bench.Config{DatabaseURL: *url, Duration: *duration, Rounds: *rounds, LoadEvents: *load, DataType: *dataType, SequencerDelay: *seqDelay, Progress: os.Stderr}
	switch *driver {
	case "both":
		cfg.Drivers = []string{"postgres", "pgx"}
	case "postgres", "pgx":
		cfg.Drivers = []string{*driver}
	default:
		usageError("--driver %q: want postgres, pgx or both", *driver)
	}
	if *short {
		if !set["duration"] {
			cfg.Duration = 1200 * time.Millisecond
		}
		if !set["rounds"] {
			cfg.Rounds = 1
		}
		if cfg.LoadEvents == 0 {
			cfg.LoadEvents = 100_000
		}
	}
	if set["workloads"] {
		for _, w := range strings.Split(*workloads, ",") {
			if w = strings.TrimSpace(w); w != "" {
				cfg.Workloads = append(cfg.Workloads, w)
			}
		}
		if len(cfg.Workloads) == 0 {
			usageError("--workloads %q names no workload (want some of %s)", *workloads, strings.Join(bench.AllWorkloads, ","))
		}
	} else {
		cfg.Workloads = append(cfg.Workloads, bench.DefaultWorkloads...)
	}
	if *soak {
		cfg.Workloads = []string{bench.Soak}
		if !set["driver"] {
			cfg.Drivers = []string{"pgx"}
		}
	}
	cfg.SoakDuration, cfg.SoakRate, cfg.SoakInterval = *soakFor, *soakRate, *soakEvery
	if *big && !slices.Contains(cfg.Workloads, bench.Big) {
		cfg.Workloads = append(cfg.Workloads, bench.Big)
	}

	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "es-bench: --cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	if rep != nil && len(rep.Results) > 0 {
		if werr := rep.WriteMarkdown(os.Stdout); werr != nil {
			fmt.Fprintln(os.Stderr, "es-bench:", werr)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "es-bench:", err)
		stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// usageError reports a bad command line and exits with status 2.
func usageError(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "es-bench: "+format+"\n", args...)
	os.Exit(2)
}
