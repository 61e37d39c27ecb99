package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-eventstore/eventstore/internal/pgdsn"
)

const pgbouncerHint = "install it with `apt-get install pgbouncer` (Debian/Ubuntu), or set " +
	"ES_PGBOUNCER (or PgBouncerConfig.Binary) to the pgbouncer binary"

// PgBouncerConfig configures StartPgBouncer. The zero value is fine.
type PgBouncerConfig struct {
	// Binary is the pgbouncer executable. Defaults to $ES_PGBOUNCER, then pgbouncer in $PATH,
	// then /usr/sbin/pgbouncer (where Debian's package puts it).
	Binary string
	// PoolMode is PgBouncer's pool_mode: session, transaction or statement. Defaults to
	// "transaction", the mode that breaks what a session would keep (prepared statements,
	// session advisory locks, LISTEN).
	PoolMode string
	// PoolSize is the number of server connections per database and user (default_pool_size).
	// Defaults to 4: fewer server connections than clients, so that clients' transactions take
	// turns on them, as in production.
	PoolSize int
	// Users are the roles, besides the target's user, that may connect through PgBouncer
	// (without a password: PgBouncer trusts them, the server must too). Defaults to none.
	Users []string
	// Logger receives the launcher's progress. Defaults to discarding.
	Logger *slog.Logger
}

// PgBouncer is a PgBouncer started by StartPgBouncer in front of a PostgreSQL server, listening
// on 127.0.0.1. Stop stops it and removes its files.
type PgBouncer struct {
	dir      string
	port     int
	user     string
	log      *slog.Logger
	mu       sync.Mutex
	proc     *child
	stopped  bool
	poolMode string
}

// StartPgBouncer starts PgBouncer on a free port of 127.0.0.1 in front of the server that target
// (a connection string) points to, for every database there, and returns once it passes
// connections through. The wait is bounded by ctx, or by 60s if ctx has no deadline. When the
// process runs as root, PgBouncer runs as the OS user "postgres" (it refuses root), like the
// server StartPostgres starts. Callers must call Stop.
func StartPgBouncer(ctx context.Context, target string, cfg *PgBouncerConfig) (*PgBouncer, error) {
	var c PgBouncerConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PoolMode == "" {
		c.PoolMode = "transaction"
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 4
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	if errUnsupported != nil {
		return nil, errUnsupported
	}
	bin, err := findPgBouncer(c.Binary)
	if err != nil {
		return nil, err
	}
	tcfg, err := pgdsn.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("estest: pgbouncer target: %w", err)
	}
	cred, err := runAsCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempBase(), dirPrefix+"bouncer-")
	if err != nil {
		return nil, fmt.Errorf("estest: create temporary directory: %w", err)
	}
	b := &PgBouncer{dir: dir, user: tcfg.User, log: c.Logger, poolMode: c.PoolMode}
	if err := b.start(ctx, bin, tcfg.Host, tcfg.Port, slices.Concat([]string{tcfg.User}, c.Users), &c, cred); err != nil {
		b.kill()
		_ = removeAll(dir)
		return nil, err
	}
	c.Logger.Info("estest: pgbouncer ready", "port", b.port, "pool_mode", c.PoolMode, "dir", dir)
	return b, nil
}

func findPgBouncer(bin string) (string, error) {
	source := "PgBouncerConfig.Binary"
	if bin == "" {
		bin, source = os.Getenv("ES_PGBOUNCER"), "ES_PGBOUNCER"
	}
	if bin == "" {
		if path, err := exec.LookPath("pgbouncer"); err == nil {
			return path, nil
		}
		bin, source = "/usr/sbin/pgbouncer", "the default place"
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("estest: pgbouncer not found at %s (from %s): %s", bin, source, pgbouncerHint)
	}
	return bin, nil
}

func (b *PgBouncer) start(ctx context.Context, bin, host string, port uint16, users []string, c *PgBouncerConfig, cred *credential) error {
	if err := os.WriteFile(filepath.Join(b.dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fmt.Errorf("estest: write owner file: %w", err)
	}
	var userlist strings.Builder
	for _, u := range users {
		fmt.Fprintf(&userlist, "%q \"\"\n", u)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "userlist.txt"), []byte(userlist.String()), 0o644); err != nil {
		return fmt.Errorf("estest: write pgbouncer userlist: %w", err)
	}
	if cred != nil {
		if err := os.Chown(b.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("estest: chown %s to uid %d: %w", b.dir, cred.Uid, err)
		}
	}
	var prev error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		p, err := freePort()
		if err != nil {
			return err
		}
		b.port = p
		ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = 1000
max_db_connections = 0
ignore_startup_parameters = extra_float_digits,datestyle,search_path,options
server_reset_query =
logfile = %s
pidfile = %s
log_connections = 0
log_disconnections = 0
`, host, port, b.port, filepath.Join(b.dir, "userlist.txt"), c.PoolMode, c.PoolSize,
			filepath.Join(b.dir, "pgbouncer.log"), filepath.Join(b.dir, "pgbouncer.pid"))
		iniPath := filepath.Join(b.dir, "pgbouncer.ini")
		if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
			return fmt.Errorf("estest: write pgbouncer.ini: %w", err)
		}
		cmd := exec.Command(bin, iniPath)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		prepareCmd(cmd, b.dir, cred)
		proc, err := startChild(cmd)
		if err != nil {
			return fmt.Errorf("estest: start pgbouncer: %w", err)
		}
		b.proc = proc
		err = b.waitReady(ctx, proc)
		if err == nil {
			return nil
		}
		b.kill()
		logText, _ := os.ReadFile(filepath.Join(b.dir, "pgbouncer.log"))
		err = fmt.Errorf("estest: pgbouncer on port %d did not start: %w\n%s%s", b.port, err, out.String(), lastLines(logText))
		if !strings.Contains(err.Error(), "Address already in use") || ctx.Err() != nil {
			return err
		}
		prev = err
	}
	return prev
}

// waitReady polls with real connections, through PgBouncer to the server, until one works.
func (b *PgBouncer) waitReady(ctx context.Context, proc *child) error {
	dsn, err := pgdsn.ForLibPQ(b.DSN("postgres"))
	if err != nil {
		return err
	}
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := db.PingContext(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-proc.exited:
			return fmt.Errorf("pgbouncer exited: %v", proc.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last connection error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// DSN returns a URL connecting through PgBouncer to database as the target's user, for example
// "postgres://postgres@127.0.0.1:6432/db?sslmode=disable". An empty database means "postgres".
func (b *PgBouncer) DSN(database string) string {
	if database == "" {
		database = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(b.user),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(b.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port returns the TCP port PgBouncer listens on, on 127.0.0.1.
func (b *PgBouncer) Port() int { return b.port }

// PoolMode returns PgBouncer's pool_mode.
func (b *PgBouncer) PoolMode() string { return b.poolMode }

// Stop shuts PgBouncer down (open client connections are broken), waits for it to exit and
// removes its files. Calling it again does nothing.
func (b *PgBouncer) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return nil
	}
	b.stopped = true
	b.kill()
	if err := removeAll(b.dir); err != nil {
		return fmt.Errorf("estest: remove %s: %w", b.dir, err)
	}
	return nil
}

// kill stops PgBouncer: SIGTERM (immediate shutdown), then SIGKILL after killTimeout.
func (b *PgBouncer) kill() { b.proc.stop(syscall.SIGTERM) }
