// Package pgtest starts throwaway PostgreSQL servers (and PgBouncer, and streaming standbys) from
// the installed binaries, for the module's own tests, es-demo and es-bench. estest builds on it;
// it is internal so that the launcher stays out of estest's public surface.
package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/lib/pq" // registers driver "postgres", used to probe the server

	"github.com/go-eventstore/eventstore/internal/pgdsn"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

const (
	dirPrefix      = "estest-pg-"
	ownerFile      = "estest.owner" // PID of the process that started the server
	logFile        = "postgres.log"
	dataSubdir     = "data"
	defaultTimeout = 60 * time.Second
	stopTimeout    = 30 * time.Second
	killTimeout    = 5 * time.Second
	startAttempts  = 5                // ports to try
	staleNoOwner   = 10 * time.Minute // a dir without owner file older than this is abandoned
	maxSocketPath  = 107              // sizeof(sockaddr_un.sun_path) - 1 on Linux
	installHint    = "install them with `apt-get install postgresql` (Debian/Ubuntu), " +
		"or set ES_PG_BIN (or PostgresConfig.BinDir) to the directory holding initdb and postgres"
)

// PostgresConfig configures StartPostgres. The zero value is fine.
type PostgresConfig struct {
	// BinDir is the directory holding the initdb and postgres binaries. Defaults to $ES_PG_BIN,
	// then the newest /usr/lib/postgresql/*/bin, then the directory of initdb in $PATH.
	BinDir string
	// Durable keeps fsync, synchronous_commit and full_page_writes on, as PostgreSQL ships them.
	// Defaults to false: they are turned off, which is only fit for throwaway test data.
	Durable bool
	// Settings are extra postgresql.conf settings, passed as -c name=value after (and so
	// overriding) the launcher's own. Defaults to none.
	Settings map[string]string
	// HBA are pg_hba.conf lines put before the launcher's own (which trust every local and
	// loopback connection), for example "host all app 127.0.0.1/32 scram-sha-256" to make a
	// role use a password. Defaults to none.
	HBA []string
	// Logger receives the launcher's progress and diagnostics. Defaults to discarding.
	Logger *slog.Logger
}

// Postgres is a throwaway PostgreSQL server started by StartPostgres: a fresh cluster in a
// temporary directory, listening on 127.0.0.1 and on a unix socket in that directory, with the
// trusted superuser "postgres". The server is killed if the process that started it dies, and
// Stop removes it with all its data. Its methods are safe for concurrent use.
type Postgres struct {
	bin     string
	dir     string // temporary directory: owner file, server log, unix socket, data dir
	dataDir string
	logPath string
	port    int // fixed once StartPostgres returns
	args    []string
	cred    *credential // nil: run as the current user
	log     *slog.Logger

	mu      sync.Mutex
	srv     *child // the running (or exited) postmaster; nil before start
	stopped bool
}

// child is a process started on a locked OS thread (see startChild).
type child struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has exited and been reaped
	err    error         // the result of cmd.Wait, valid after exited is closed
}

// StartPostgres initializes a new cluster in a fresh temporary directory and starts a server on
// a free port, returning once it accepts connections. The wait is bounded by ctx, or by 60s if ctx
// has no deadline. It first removes the directories left behind by launchers whose process died.
//
// Both initdb and postgres refuse to run as root: when the process runs as root, they run as the
// OS user "postgres" (or "nobody" if there is none). Callers must call Stop.
func StartPostgres(ctx context.Context, cfg *PostgresConfig) (*Postgres, error) {
	var c PostgresConfig
	if cfg != nil {
		c = *cfg
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	began := time.Now()
	if errUnsupported != nil {
		return nil, errUnsupported
	}

	bin, err := findBinDir(c.BinDir)
	if err != nil {
		return nil, err
	}
	cred, err := runAsCredential()
	if err != nil {
		return nil, err
	}
	base := tempBase()
	removeStale(base, cred, log)

	dir, err := os.MkdirTemp(base, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("estest: create temporary directory: %w", err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	p := &Postgres{
		bin:     bin,
		dir:     dir,
		dataDir: filepath.Join(dir, dataSubdir),
		logPath: filepath.Join(dir, logFile),
		cred:    cred,
		log:     log,
	}
	p.args = serverArgs(p.dataDir, dir, &c)
	if err := p.setup(ctx, c.Durable, c.HBA); err != nil {
		p.kill()
		if rerr := removeAll(dir); rerr != nil {
			log.Warn("estest: remove temporary directory", "dir", dir, "err", rerr)
		}
		return nil, err
	}
	log.Info("estest: postgres ready", "port", p.port, "dir", dir, "bin", bin,
		"durable", c.Durable, "took", time.Since(began).Round(time.Millisecond))
	return p, nil
}

// setup writes the owner file, runs initdb and starts the server.
func (p *Postgres) setup(ctx context.Context, durable bool, hba []string) error {
	owner := strconv.Itoa(os.Getpid()) + "\n"
	if err := os.WriteFile(filepath.Join(p.dir, ownerFile), []byte(owner), 0o644); err != nil {
		return fmt.Errorf("estest: write owner file: %w", err)
	}
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("estest: chown %s to uid %d: %w", p.dir, p.cred.Uid, err)
		}
	}
	if err := p.initdb(ctx, durable); err != nil {
		return err
	}
	if len(hba) > 0 {
		path := filepath.Join(p.dataDir, "pg_hba.conf")
		old, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(path, []byte(strings.Join(hba, "\n")+"\n"+string(old)), 0o600)
		}
		if err != nil {
			return fmt.Errorf("estest: write pg_hba.conf: %w", err)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.start(ctx, true)
}

func (p *Postgres) initdb(ctx context.Context, durable bool) error {
	args := []string{"-D", p.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--no-locale", "--no-instructions"}
	if !durable {
		args = append(args, "--no-sync")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, "initdb"), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	p.prepare(cmd)
	began := time.Now()
	ch, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("estest: start initdb: %w", err)
	}
	<-ch.exited
	if ch.err != nil {
		return fmt.Errorf("estest: initdb: %w\n%s", ch.err, lastLines(out.Bytes()))
	}
	p.log.Debug("estest: initdb done", "took", time.Since(began).Round(time.Millisecond),
		"output", out.String())
	return nil
}

// prepare sets what initdb and postgres share: the OS user, the working directory, the
// environment, and the parent-death signal.
func (p *Postgres) prepare(cmd *exec.Cmd) { prepareCmd(cmd, p.dir, p.cred) }

// prepareCmd runs cmd in dir as cred, with English messages, and killed if our process dies.
func prepareCmd(cmd *exec.Cmd, dir string, cred *credential) {
	cmd.Dir = dir
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LC_ALL=") {
			env = append(env, kv)
		}
	}
	// English messages, so that the log can be matched ("Address already in use").
	cmd.Env = append(env, "LC_ALL=C")
	cmd.SysProcAttr = sysProcAttr(cred)
}

// startChild starts cmd from a goroutine locked to its OS thread, which then waits for the
// process. Pdeathsig fires when the thread that forked the child exits, not the process, and the
// Go runtime ends threads as it pleases; a locked thread only ends when its goroutine returns,
// which happens here once the child has been reaped.
func startChild(cmd *exec.Cmd) (*child, error) {
	ch := &child{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		ch.err = cmd.Wait()
		close(ch.exited)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return ch, nil
}

// start starts the postmaster and waits until it accepts connections. With pickPort, it picks a
// free port, and another one if that was taken meanwhile; else it keeps p.port and retries while
// the port is busy. It also retries while the processes of a killed server linger. p.mu is held.
func (p *Postgres) start(ctx context.Context, pickPort bool) error {
	var prev error // cause of the previous attempt's failure
	for attempt := 1; ; attempt++ {
		if pickPort && (attempt == 1 || errors.Is(prev, errPortInUse)) {
			port, err := freePort()
			if err != nil {
				return err
			}
			p.port = port
		}
		err := p.startOnce(ctx)
		if err == nil {
			return nil
		}
		transient := errors.Is(err, errPortInUse) || errors.Is(err, errShmemInUse)
		if !transient && prev != nil {
			// Likely the deadline, cutting short an attempt; say what went wrong before.
			err = fmt.Errorf("%w\n(attempt %d; the previous one failed: %w)", err, attempt, prev)
		}
		if !transient || ctx.Err() != nil || (pickPort && errors.Is(err, errPortInUse) && attempt >= startAttempts) {
			return err
		}
		prev = errors.Unwrap(err)
		p.log.Warn("estest: postgres did not start, retrying", "port", p.port, "attempt", attempt, "err", prev)
		if pickPort && errors.Is(err, errPortInUse) {
			continue // a new port right away
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

var (
	// errPortInUse: another process listens on the port.
	errPortInUse = errors.New("port in use")
	// errShmemInUse: the backends of a server that was killed have not all exited yet.
	errShmemInUse = errors.New("shared memory of a previous server still in use")
)

func (p *Postgres) startOnce(ctx context.Context) error {
	logf, err := os.OpenFile(p.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("estest: open server log: %w", err)
	}
	defer logf.Close()
	var offset int64
	if fi, err := logf.Stat(); err == nil {
		offset = fi.Size()
	}
	args := append([]string{"-D", p.dataDir, "-c", "port=" + strconv.Itoa(p.port)}, p.args...)
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	p.prepare(cmd)
	srv, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("estest: start postgres: %w", err)
	}
	p.srv = srv
	p.log.Debug("estest: postgres started", "pid", cmd.Process.Pid, "port", p.port)
	if err := p.waitReady(ctx, srv); err != nil {
		p.kill()
		logTail := readTail(p.logPath, offset)
		switch {
		case strings.Contains(logTail, "Address already in use"):
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		case strings.Contains(logTail, "pre-existing shared memory block"):
			err = fmt.Errorf("%w: %w", errShmemInUse, err)
		}
		return fmt.Errorf("estest: postgres on port %d did not start: %w\nserver log:\n%s", p.port, err, logTail)
	}
	return nil
}

// waitReady polls with real connections until a query shows that this server answers on the
// port, the server exits, or ctx ends.
func (p *Postgres) waitReady(ctx context.Context, srv *child) error {
	db, err := sql.Open("postgres", p.DSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		// Not just SELECT 1: another server may have grabbed the port meanwhile.
		var dataDir string
		err := db.QueryRowContext(pctx, "SELECT current_setting('data_directory')").Scan(&dataDir)
		cancel()
		if err == nil && filepath.Clean(dataDir) == filepath.Clean(p.dataDir) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("port %d is served by another server, on %s", p.port, dataDir)
		}
		select {
		case <-srv.exited:
			return fmt.Errorf("server exited: %v", srv.err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last connection error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// stop shuts the server down fast (SIGINT) and waits for it, killing it if it takes longer than
// stopTimeout. p.mu is held.
func (p *Postgres) stop() error {
	srv := p.srv
	if srv == nil {
		return nil
	}
	select {
	case <-srv.exited:
		return nil
	default:
	}
	began := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		p.log.Warn("estest: signal postgres", "err", err)
	}
	select {
	case <-srv.exited:
		p.log.Debug("estest: postgres stopped", "port", p.port, "took", time.Since(began).Round(time.Millisecond))
		return nil
	case <-time.After(stopTimeout):
	}
	p.kill()
	return fmt.Errorf("estest: postgres did not shut down within %v; killed it", stopTimeout)
}

// kill stops the server, if running, with an immediate shutdown (SIGQUIT: no checkpoint, but
// the postmaster ends its backends before it exits, so none linger), or kills it (SIGKILL) if
// that takes longer than killTimeout, and waits for it.
func (p *Postgres) kill() { p.srv.stop(syscall.SIGQUIT) }

// stop sends sig to the process, if started, and waits for it to exit, killing it (SIGKILL) if
// that takes longer than killTimeout.
func (ch *child) stop(sig syscall.Signal) {
	if ch == nil {
		return
	}
	_ = ch.cmd.Process.Signal(sig)
	select {
	case <-ch.exited:
		return
	case <-time.After(killTimeout):
	}
	_ = ch.cmd.Process.Kill()
	<-ch.exited
}

// DSN returns a URL connecting over TCP to database as the superuser "postgres", for example
// "postgres://postgres@127.0.0.1:5432/db?sslmode=disable". An empty database means "postgres".
func (p *Postgres) DSN(database string) string {
	if database == "" {
		database = "postgres"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// SocketDSN returns a keyword/value connection string, understood by lib/pq and pgx, connecting
// over the server's unix socket to database as the superuser "postgres", for example
// "host=/tmp/estest-pg-1 port=5432 user=postgres dbname=db sslmode=disable". An empty database
// means "postgres".
func (p *Postgres) SocketDSN(database string) string {
	if database == "" {
		database = "postgres"
	}
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable",
		pgdsn.QuoteValue(p.dir), p.port, pgdsn.QuoteValue(database))
}

// Port returns the TCP port the server listens on, on 127.0.0.1; Restart keeps it.
func (p *Postgres) Port() int { return p.port }

// Stop shuts the server down (fast shutdown: open transactions are rolled back), waits for it to
// exit and removes its directory with all the data. Calling it again does nothing.
func (p *Postgres) Stop() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return nil
	}
	p.stopped = true
	err := p.stop()
	if rerr := removeAll(p.dir); rerr != nil {
		err = errors.Join(err, fmt.Errorf("estest: remove %s: %w", p.dir, rerr))
	}
	p.log.Info("estest: postgres removed", "port", p.port, "dir", p.dir)
	return err
}

// Restart shuts the server down (fast shutdown) and starts it again on the same data and port,
// returning once it accepts connections; open connections are broken. The wait is bounded by ctx,
// or by 60s if ctx has no deadline. It also brings back a server that exited on its own.
func (p *Postgres) Restart(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return errors.New("estest: Restart after Stop")
	}
	began := time.Now()
	if err := p.stop(); err != nil {
		p.log.Warn("estest: restart", "err", err) // it was killed; start it again all the same
	}
	if err := p.start(ctx, false); err != nil {
		return err
	}
	p.log.Info("estest: postgres restarted", "port", p.port, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// CreateDatabase creates the database name: at most 63 ASCII letters, digits, underscores and
// hyphens, starting with a letter or underscore (pgident.ValidateName). It is quoted, so case is
// kept.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) error {
	if err := pgident.ValidateName("database", name); err != nil {
		return fmt.Errorf("estest: %w", err)
	}
	db, err := sql.Open("postgres", p.SocketDSN("postgres"))
	if err != nil {
		return fmt.Errorf("estest: create database %s: %w", name, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+pgident.Quote(name)); err != nil {
		return fmt.Errorf("estest: create database %s: %w", name, err)
	}
	return nil
}

// serverArgs returns the postgres arguments but -D and port.
func serverArgs(dataDir, socketDir string, c *PostgresConfig) []string {
	sockets := socketDir
	if strings.ContainsAny(sockets, ` ,"`) {
		sockets = `"` + strings.ReplaceAll(sockets, `"`, `""`) + `"`
	}
	settings := []string{
		"listen_addresses=127.0.0.1",
		"unix_socket_directories=" + sockets,
		"max_connections=300",
		"shared_buffers=128MB",
	}
	if !c.Durable {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	names := make([]string, 0, len(c.Settings))
	for name := range c.Settings {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		settings = append(settings, name+"="+c.Settings[name])
	}
	args := make([]string, 0, 2*len(settings))
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	return args
}

// findBinDir returns the directory holding initdb and postgres.
func findBinDir(dir string) (string, error) {
	source := "PostgresConfig.BinDir"
	if dir == "" {
		dir, source = os.Getenv("ES_PG_BIN"), "ES_PG_BIN"
	}
	if dir == "" {
		dir, source = newestDebianBinDir(), "/usr/lib/postgresql/*/bin"
	}
	if dir == "" {
		if path, err := exec.LookPath("initdb"); err == nil {
			dir, source = filepath.Dir(path), "$PATH"
		}
	}
	if dir == "" {
		return "", fmt.Errorf("estest: PostgreSQL server binaries (initdb, postgres) not found "+
			"in ES_PG_BIN, /usr/lib/postgresql/*/bin or $PATH: %s", installHint)
	}
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("estest: PostgreSQL server binary %s not found in %s (from %s): %s",
				name, dir, source, installHint)
		}
	}
	return dir, nil
}

// newestDebianBinDir returns the bin directory of the newest PostgreSQL installed the Debian way
// (/usr/lib/postgresql/15/bin), or "".
func newestDebianBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestVersion := "", []int(nil)
	for _, dir := range dirs {
		var version []int
		for _, part := range strings.Split(filepath.Base(filepath.Dir(dir)), ".") {
			n, err := strconv.Atoi(part)
			if err != nil {
				version = nil
				break
			}
			version = append(version, n)
		}
		if version != nil && (best == "" || slices.Compare(version, bestVersion) > 0) {
			best, bestVersion = dir, version
		}
	}
	return best
}

// tempBase returns where to create the temporary directory: os.TempDir(), or /tmp if the unix
// socket path would be too long there.
func tempBase() string {
	base := os.TempDir()
	// base + "/estest-pg-" + up to 10 random digits + "/.s.PGSQL.65535.lock"
	if len(base)+len(dirPrefix)+32 > maxSocketPath {
		return "/tmp"
	}
	return base
}

// removeStale removes the directories left in base by launchers whose process is gone, killing
// their server first if it is still running. Directories are only touched if they belong to the
// user the servers run as.
func removeStale(base string, cred *credential, log *slog.Logger) {
	uid := uint32(os.Geteuid())
	if cred != nil {
		uid = cred.Uid
	}
	dirs, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, dir := range dirs {
		fi, err := os.Lstat(dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		if owner, ok := fileOwner(fi); !ok || owner != uid {
			continue
		}
		owner, err := readPID(filepath.Join(dir, ownerFile))
		switch {
		case err == nil && processAlive(owner):
			continue
		case err != nil && (!errors.Is(err, os.ErrNotExist) || time.Since(fi.ModTime()) < staleNoOwner):
			continue // being set up right now, or not ours to judge
		}
		killLeftover(dir, log)
		if err := removeAll(dir); err != nil {
			log.Warn("estest: remove stale directory", "dir", dir, "err", err)
			continue
		}
		log.Info("estest: removed stale directory", "dir", dir, "owner", owner)
	}
}

// killLeftover stops the postmaster still running on dir's data, if any, like kill: SIGQUIT,
// then SIGKILL if it is still there after killTimeout.
func killLeftover(dir string, log *slog.Logger) {
	dataDir := filepath.Join(dir, dataSubdir)
	pid, err := readPID(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return
	}
	// Guard against PID reuse: the process must be a postgres on this data directory.
	ours := func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && bytes.Contains(cmdline, []byte("\x00"+dataDir+"\x00")) && processAlive(pid)
	}
	for _, sig := range []syscall.Signal{syscall.SIGQUIT, syscall.SIGKILL} {
		if !ours() {
			return
		}
		log.Info("estest: stopping leftover postgres", "pid", pid, "dir", dir, "signal", sig)
		if err := signalPID(pid, sig); err != nil {
			log.Warn("estest: signal leftover postgres", "pid", pid, "err", err)
			return
		}
		for deadline := time.Now().Add(killTimeout); processAlive(pid) && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// removeAll is os.RemoveAll, retried for a moment in case a dying process still writes there.
func removeAll(dir string) error {
	var err error
	for range 20 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// readPID reads the decimal PID on the first line of a file.
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid in %s: %q", path, line)
	}
	return pid, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. It prefers ports outside
// the kernel's ephemeral range: those the kernel hands out on its own, also as the local port of
// every outgoing connection, so that with busy tests a port picked there is soon taken again.
func freePort() (int, error) {
	lo, hi := 32768, 60999 // Linux default
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			l, err1 := strconv.Atoi(f[0])
			h, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && l <= h {
				lo, hi = l, h
			}
		}
	}
	const lowest, highest = 10000, 65535
	var candidates [][2]int // port ranges, inclusive
	if lo-1 >= lowest {
		candidates = append(candidates, [2]int{lowest, lo - 1})
	}
	if hi+1 <= highest {
		candidates = append(candidates, [2]int{max(hi+1, lowest), highest})
	}
	total := 0
	for _, c := range candidates {
		total += c[1] - c[0] + 1
	}
	for range 50 {
		if total == 0 {
			break
		}
		n := rand.IntN(total)
		port := 0
		for _, c := range candidates {
			if size := c[1] - c[0] + 1; n < size {
				port = c[0] + n
				break
			} else {
				n -= size
			}
		}
		l, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			_ = l.Close()
			return port, nil
		}
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("estest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readTail returns the last lines of the file at path from offset on.
func readTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	defer f.Close()
	const max = 4096
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > max {
		offset = fi.Size() - max
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read server log: %v)", err)
	}
	b, _ := io.ReadAll(f)
	return lastLines(b)
}

// lastLines returns at most the last 30 lines of b.
func lastLines(b []byte) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}
