// Package admincli is the es-admin command, importable so that it can be embedded in another
// command or run in-process by tests: list and search streams, read a stream or $all, tail $all
// or a category live, list subscriptions with their lag and parked events, set or reset a
// checkpoint, list, retry or discard parked events, and serve the web console. See Usage for the commands and flags.
package admincli

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	_ "github.com/lib/pq"              // registers driver "postgres"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
)

// Exit codes returned by Run.
const (
	// ExitOK means the command succeeded.
	ExitOK = 0
	// ExitFailure means the command failed: connection or SQL errors, a stream or subscription
	// not found, a checkpoint change refused while a process holds the subscription.
	ExitFailure = 1
	// ExitUsage means the command line was wrong.
	ExitUsage = 2
)

// Usage is the text printed by es-admin --help.
const Usage = `es-admin operates an event store (github.com/go-eventstore/eventstore): look at its streams,
events and subscriptions, follow $all live, move a subscription's checkpoint, retry or discard
the events a projection parked, and serve a web console. It needs the application's runtime
role, not the owner's; run es-migrate for the schema.

Usage:
  es-admin [flags] <command> [arguments] [flags]

Commands:
  streams                  List streams (soft-deleted ones too), a page at a time.
                           --search TEXT keeps names containing it; --page N, --page-size N.
  read STREAM|$all         Print a stream's events, or $all's, in order. --from N (default: the
                           first), --count N (default 100), --backward, --category C ($all only).
  tail [CATEGORY]          Print the events appended to $all (or to one category) from now on,
                           until interrupted or --count N events were printed.
  subscriptions            List persistent subscriptions: checkpoint, head, lag in events and
                           seconds, lease holder and expiry, epoch, parked events. --stream S
                           keeps one stream's.
  set-checkpoint STREAM NAME POSITION
                           Move a subscription's checkpoint: it next delivers the events after
                           POSITION. Refused while a process holds its lease.
  reset-checkpoint STREAM NAME
                           Move a subscription's checkpoint back to 0: it delivers everything
                           again. Refused while a process holds its lease.
  parked STREAM NAME       List the events the projection NAME of STREAM parked, in position
                           order: id, status (parked, waiting, retry), attempts, last error.
  retry-parked STREAM NAME (ID... | --all)
                           Have the projection run its handler again for these parked events (or
                           all of them): the process holding its lease runs the retries, then the
                           events waiting behind them. An event that fails again is parked again.
  discard-parked STREAM NAME (ID... | --all)
                           Drop these parked events (or all of them): the handler will not see
                           them; the events waiting behind them are handed to the projection.
  serve                    Serve the web console (see below) until interrupted.
  help                     Show this text.

Flags (before or after the command):
  --database-url DSN  The connection string, as es-migrate takes it. Default: $DATABASE_URL,
                      else the PG* variables alone (PGHOST, PGUSER, PGDATABASE, ...) as for psql.
  --schema NAME       The Postgres schema of the event store. Default: public.
  --driver NAME       postgres (lib/pq) or pgx. Default: postgres.
  --json              Print JSON lines (one object per event, stream or subscription) instead
                      of a table: for scripts.
  --from, --count, --backward, --category, --search, --page, --page-size, --stream, --all:
                      see above.
  -h, --help          Show this text.

serve flags:
  --listen ADDR       Where to listen. Default: 127.0.0.1:8080 (loopback only).
  --token TOKEN       Require this token (default: $ES_ADMIN_TOKEN): as "Authorization: Bearer
                      TOKEN", or once as ?token=TOKEN, which sets a cookie. Required when ADDR is
                      not a loopback address: event data is often personal data.
  --allow-actions     Allow checkpoint changes and parked-event retries and discards from the
                      console (POSTs with CSRF protection). Default: read only.

Exit status: 0 on success, 1 on failure, 2 on a usage error. Long reads report their progress
on stderr when it is a terminal.

Examples:
  es-admin streams --search account
  es-admin read account-42
  es-admin read '$all' --from 1000 --count 50 --json | jq .type
  es-admin tail account
  es-admin subscriptions
  es-admin reset-checkpoint '$all' projector
  es-admin parked '$all' balances
  es-admin retry-parked '$all' balances 17 18
  es-admin discard-parked '$all' balances --all
  ES_ADMIN_TOKEN=s3cret es-admin serve --listen :8080 --allow-actions
`

// options are the parsed flags.
type options struct {
	databaseURL  string
	schema       string
	driver       string
	json         bool
	from         int64
	count        int
	backward     bool
	category     string
	search       string
	page         int
	pageSize     int
	stream       string
	all          bool
	listen       string
	token        string
	allowActions bool
}

// usageError is a command-line mistake: exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// command is one run of a subcommand.
type command struct {
	opts   options
	args   []string
	store  *es.Store
	db     *sql.DB
	out    io.Writer
	errOut io.Writer
}

// commands maps each command to its function and its number of arguments (min, max; max -1:
// no limit).
var commands = map[string]struct {
	run      func(context.Context, *command) error
	min, max int
}{
	"streams":          {cmdStreams, 0, 0},
	"read":             {cmdRead, 1, 1},
	"tail":             {cmdTail, 0, 1},
	"subscriptions":    {cmdSubscriptions, 0, 0},
	"set-checkpoint":   {cmdSetCheckpoint, 3, 3},
	"reset-checkpoint": {cmdResetCheckpoint, 2, 2},
	"parked":           {cmdParked, 2, 2},
	"retry-parked":     {cmdRetryParked, 2, -1},
	"discard-parked":   {cmdDiscardParked, 2, -1},
	"serve":            {cmdServe, 0, 0},
}

// Run runs es-admin with args (without the program name), writing results to stdout and errors
// to stderr, and returns the exit code: ExitOK, ExitFailure or ExitUsage. ctx bounds the whole
// run (serve and tail stop when it ends).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, cmd, rest, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) || (err == nil && (cmd == "help" || cmd == "")) {
		fmt.Fprint(stdout, Usage)
		return ExitOK
	}
	spec, ok := commands[cmd]
	if err == nil && !ok {
		err = usagef("unknown command %q", cmd)
	}
	if err == nil && spec.max < 0 && len(rest) < spec.min {
		err = usagef("%s takes at least %d arguments, got %d", cmd, spec.min, len(rest))
	}
	if err == nil && spec.max >= 0 && (len(rest) < spec.min || len(rest) > spec.max) {
		err = usagef("%s takes %d to %d arguments, got %d", cmd, spec.min, spec.max, len(rest))
	}
	if err == nil && o.driver != "postgres" && o.driver != "pgx" {
		err = usagef("--driver %q: postgres or pgx", o.driver)
	}
	if err != nil {
		fmt.Fprintf(stderr, "es-admin: %s (run es-admin --help for usage)\n", oneLine(err))
		return ExitUsage
	}
	c := &command{opts: o, args: rest, out: stdout, errOut: stderr}
	if err := c.open(ctx); err != nil {
		fmt.Fprintf(stderr, "es-admin: %s\n", oneLine(err))
		return ExitFailure
	}
	defer c.close()
	if err := spec.run(ctx, c); err != nil {
		fmt.Fprintf(stderr, "es-admin: %s: %s\n", cmd, oneLine(err))
		if errors.As(err, new(usageError)) {
			return ExitUsage
		}
		return ExitFailure
	}
	return ExitOK
}

// parseArgs parses flags placed before and after the command, and returns the command and its
// arguments.
func parseArgs(args []string) (options, string, []string, error) {
	o := options{schema: "public", driver: "postgres", count: -1, from: -1, listen: "127.0.0.1:8080"}
	fs := flag.NewFlagSet("es-admin", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.databaseURL, "database-url", "", "")
	fs.StringVar(&o.schema, "schema", o.schema, "")
	fs.StringVar(&o.driver, "driver", o.driver, "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.Int64Var(&o.from, "from", o.from, "")
	fs.IntVar(&o.count, "count", o.count, "")
	fs.BoolVar(&o.backward, "backward", false, "")
	fs.StringVar(&o.category, "category", "", "")
	fs.StringVar(&o.search, "search", "", "")
	fs.IntVar(&o.page, "page", 1, "")
	fs.IntVar(&o.pageSize, "page-size", 50, "")
	fs.StringVar(&o.stream, "stream", "", "")
	fs.BoolVar(&o.all, "all", false, "")
	fs.StringVar(&o.listen, "listen", o.listen, "")
	fs.StringVar(&o.token, "token", os.Getenv("ES_ADMIN_TOKEN"), "")
	fs.BoolVar(&o.allowActions, "allow-actions", false, "")
	var positional []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return o, "", nil, err
		}
		left := fs.Args()
		if consumed := len(rest) - len(left); consumed > 0 && rest[consumed-1] == "--" {
			positional = append(positional, left...)
			break
		}
		if len(left) == 0 {
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	if len(positional) == 0 {
		return o, "", nil, nil
	}
	return o, positional[0], positional[1:], nil
}

// open connects and opens the store, as es-migrate does: --database-url, else $DATABASE_URL,
// else the PG* variables; lib/pq is given the psql defaults it lacks.
func (c *command) open(ctx context.Context) error {
	dsn, source := c.opts.databaseURL, "--database-url"
	if dsn == "" {
		dsn, source = os.Getenv("DATABASE_URL"), "DATABASE_URL"
	}
	if dsn == "" {
		source = "the PG* environment variables"
	}
	if _, err := pgdsn.Parse(dsn); err != nil {
		return usagef("%s: %v", source, err)
	}
	driverDSN := dsn
	if c.opts.driver == "postgres" {
		var err error
		if driverDSN, err = pgdsn.ForLibPQ(dsn); err != nil {
			return err
		}
	}
	db, err := sql.Open(c.opts.driver, driverDSN)
	if err != nil {
		return err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return err
	}
	store, err := es.New(db, &es.Config{Schema: c.opts.schema})
	if err != nil {
		_ = db.Close()
		return err
	}
	c.db, c.store = db, store
	return nil
}

func (c *command) close() {
	if c.store != nil {
		_ = c.store.Close()
	}
	if c.db != nil {
		_ = c.db.Close()
	}
}

// oneLine flattens an error message onto one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func cmdSetCheckpoint(ctx context.Context, c *command) error {
	pos, err := strconv.ParseInt(c.args[2], 10, 64)
	if err != nil || pos < 0 {
		return usagef("position %q: a number, 0 or more", c.args[2])
	}
	if err := c.store.SetSubscriptionCheckpoint(ctx, c.args[0], c.args[1], pos); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "checkpoint of %s on %s set to %d\n", c.args[1], c.args[0], pos)
	return nil
}

func cmdResetCheckpoint(ctx context.Context, c *command) error {
	if err := c.store.ResetSubscription(ctx, c.args[0], c.args[1]); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "checkpoint of %s on %s reset to 0\n", c.args[1], c.args[0])
	return nil
}

// isTerminal reports whether w is a character device (a terminal), for progress reports.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress reports n events read on stderr, at most every half second, when stderr is a terminal.
type progress struct {
	w    io.Writer
	on   bool
	last time.Time
}

func (p *progress) report(n int) {
	if !p.on || time.Since(p.last) < 500*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\r%d events read...", n)
}

func (p *progress) done() {
	if p.on && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
