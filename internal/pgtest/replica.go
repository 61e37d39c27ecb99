package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/go-eventstore/eventstore/internal/pgident"
)

// StandbyConfig configures StartStandby. The zero value is fine.
type StandbyConfig struct {
	// Name is the standby's application_name on the primary (pg_stat_replication, and
	// synchronous_standby_names). Defaults to "standby".
	Name string
	// Synchronous makes the standby the primary's one synchronous standby
	// (synchronous_standby_names), so a commit on the primary returns only once the standby has
	// flushed it. The primary must run with synchronous_commit on (PostgresConfig.Durable, or
	// Settings{"synchronous_commit": "on"}): StartStandby fails otherwise. Defaults to false:
	// asynchronous streaming, where the primary does not wait.
	Synchronous bool
	// Settings are extra postgresql.conf settings of the standby, as PostgresConfig.Settings.
	Settings map[string]string
	// Logger receives the launcher's progress and diagnostics. Defaults to the primary's.
	Logger *slog.Logger
}

// StartStandby makes a streaming standby of p (a hot standby: it serves read-only queries) and
// returns it once it streams from p: a base backup of p taken with pg_basebackup -R into a fresh
// temporary directory, started on a free port on 127.0.0.1, as StartPostgres starts a server.
// The wait is bounded by ctx, or by 60s if ctx has no deadline. Callers must call Stop on the
// standby too; Promote makes it a primary.
func (p *Postgres) StartStandby(ctx context.Context, cfg *StandbyConfig) (*Postgres, error) {
	var c StandbyConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Name == "" {
		c.Name = "standby"
	}
	if err := pgident.ValidateName("standby", c.Name); err != nil {
		return nil, fmt.Errorf("estest: %w", err)
	}
	log := c.Logger
	if log == nil {
		log = p.log
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	began := time.Now()
	if c.Synchronous {
		var mode string
		if err := p.queryRow(ctx, "SHOW synchronous_commit", &mode); err != nil {
			return nil, err
		}
		if mode == "off" || mode == "local" {
			return nil, fmt.Errorf("estest: a synchronous standby needs synchronous_commit on the primary, "+
				"which has %q: start it with PostgresConfig.Durable or Settings{\"synchronous_commit\": \"on\"}", mode)
		}
	}
	dir, err := os.MkdirTemp(tempBase(), dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("estest: create temporary directory: %w", err)
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	sb := &Postgres{
		bin:     p.bin,
		dir:     dir,
		dataDir: filepath.Join(dir, dataSubdir),
		logPath: filepath.Join(dir, logFile),
		cred:    p.cred,
		log:     log,
	}
	sb.args = serverArgs(sb.dataDir, dir, &PostgresConfig{Settings: c.Settings})
	fail := func(err error) (*Postgres, error) {
		sb.kill()
		if rerr := removeAll(dir); rerr != nil {
			log.Warn("estest: remove temporary directory", "dir", dir, "err", rerr)
		}
		return nil, err
	}
	if err := sb.baseBackup(ctx, p, c.Name); err != nil {
		return fail(err)
	}
	sb.mu.Lock()
	err = sb.start(ctx, true)
	sb.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if err := p.waitStandby(ctx, c.Name, c.Synchronous); err != nil {
		return fail(err)
	}
	log.Info("estest: standby streaming", "port", sb.port, "primary", p.port, "name", c.Name,
		"synchronous", c.Synchronous, "took", time.Since(began).Round(time.Millisecond))
	return sb, nil
}

// baseBackup writes the owner file and copies primary's data with pg_basebackup -R, set to stream
// from primary over TCP as application_name name.
func (p *Postgres) baseBackup(ctx context.Context, primary *Postgres, name string) error {
	owner := strconv.Itoa(os.Getpid()) + "\n"
	if err := os.WriteFile(filepath.Join(p.dir, ownerFile), []byte(owner), 0o644); err != nil {
		return fmt.Errorf("estest: write owner file: %w", err)
	}
	if p.cred != nil {
		if err := os.Chown(p.dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			return fmt.Errorf("estest: chown %s to uid %d: %w", p.dir, p.cred.Uid, err)
		}
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primary.port, name)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, "pg_basebackup"),
		"-D", p.dataDir, "-R", "-X", "stream", "-c", "fast", "--no-sync", "-d", conninfo)
	cmd.Stdout, cmd.Stderr = &out, &out
	p.prepare(cmd)
	ch, err := startChild(cmd)
	if err != nil {
		return fmt.Errorf("estest: start pg_basebackup: %w", err)
	}
	<-ch.exited
	if ch.err != nil {
		return fmt.Errorf("estest: pg_basebackup: %w\n%s", ch.err, lastLines(out.Bytes()))
	}
	// -R wrote primary_conninfo from the backup's connection; say it again, so that the standby
	// is known by name whatever pg_basebackup keeps of it (the last setting in the file wins).
	f, err := os.OpenFile(filepath.Join(p.dataDir, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err == nil {
		_, err = fmt.Fprintf(f, "primary_conninfo = '%s'\n", conninfo)
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("estest: set primary_conninfo: %w", err)
	}
	return nil
}

// waitStandby waits until the standby name streams from p, making it synchronous first if asked.
func (p *Postgres) waitStandby(ctx context.Context, name string, synchronous bool) error {
	db, err := sql.Open("postgres", p.SocketDSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	if synchronous {
		if _, err := db.ExecContext(ctx, `ALTER SYSTEM SET synchronous_standby_names = '"`+name+`"'`); err != nil {
			return fmt.Errorf("estest: set synchronous_standby_names: %w", err)
		}
		if _, err := db.ExecContext(ctx, "SELECT pg_reload_conf()"); err != nil {
			return fmt.Errorf("estest: reload configuration: %w", err)
		}
	}
	want := "async"
	if synchronous {
		want = "sync"
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_replication
			WHERE application_name = $1 AND state = 'streaming' AND sync_state = $2`, name, want).Scan(&n)
		if err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("estest: standby %s not streaming (%s) from port %d: %w (last error: %v)", name, want, p.port, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// queryRow runs a one-value query on the server.
func (p *Postgres) queryRow(ctx context.Context, query string, dst any) error {
	db, err := sql.Open("postgres", p.SocketDSN("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, query).Scan(dst); err != nil {
		return fmt.Errorf("estest: %s on port %d: %w", query, p.port, err)
	}
	return nil
}

// Kill kills the server as a machine's loss would: SIGKILL to the postmaster and every backend
// at once (its process group), without a shutdown checkpoint and without a word to clients or
// standbys, and waits for the postmaster to be gone. Restart brings it back (crash recovery);
// Stop still removes it.
func (p *Postgres) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	srv := p.srv
	if srv == nil {
		return
	}
	select {
	case <-srv.exited:
		return
	default:
	}
	_ = signalPID(-srv.cmd.Process.Pid, syscall.SIGKILL)
	<-srv.exited
	p.log.Info("estest: postgres killed", "port", p.port)
}

// Promote makes a standby a primary (pg_promote) and returns once it accepts writes. The wait is
// bounded by ctx, or by 60s if ctx has no deadline.
func (p *Postgres) Promote(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout)
		defer cancel()
	}
	began := time.Now()
	var ok bool
	if err := p.queryRow(ctx, "SELECT pg_promote(true, 60)", &ok); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("estest: the standby on port %d was not promoted within 60s", p.port)
	}
	p.log.Info("estest: standby promoted", "port", p.port, "took", time.Since(began).Round(time.Millisecond))
	return nil
}
