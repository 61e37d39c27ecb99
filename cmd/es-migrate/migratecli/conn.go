package migratecli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"syscall"

	"github.com/lib/pq"

	"github.com/go-eventstore/eventstore/internal/pgdsn"
	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// command is one run of a subcommand.
type command struct {
	opts options
	dsn  string // as given; see driverDSN
	out  io.Writer
}

// maintenanceDatabases are where create and drop-database connect to; they are never dropped.
var maintenanceDatabases = []string{"postgres", "template1"}

// driverDSN returns the connection string for the driver, connecting to database (the string's
// own when ""): lib/pq is given the psql defaults it lacks (see pgdsn.ForLibPQ).
func (c *command) driverDSN(database string) (string, error) {
	dsn := c.dsn
	if database != "" {
		dsn = pgdsn.WithDatabase(dsn, database)
	}
	if c.opts.driver == "postgres" {
		return pgdsn.ForLibPQ(dsn)
	}
	return dsn, nil
}

// open connects to database (the connection string's when "") and checks that it answers.
func (c *command) open(ctx context.Context, database string) (*sql.DB, error) {
	dsn, err := c.driverDSN(database)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(c.opts.driver, dsn)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// databaseName returns the name of the database create and drop-database work on: the
// connection string's, else $PGDATABASE.
func (c *command) databaseName() (string, error) {
	name, err := pgdsn.Database(c.dsn)
	if err != nil {
		return "", usageError{err.Error()}
	}
	if name == "" {
		return "", usagef("no database name: put it in --database-url (or DATABASE_URL) or set PGDATABASE")
	}
	if err := pgident.ValidateName("database", name); err != nil {
		return "", usageError{err.Error()}
	}
	return name, nil
}

// openMaintenance connects to the server's maintenance database: postgres, else template1.
func (c *command) openMaintenance(ctx context.Context) (*sql.DB, error) {
	var errs []error
	for _, name := range maintenanceDatabases {
		db, err := c.open(ctx, name)
		if err == nil {
			return db, nil
		}
		errs = append(errs, fmt.Errorf("connect to maintenance database %q: %w", name, explain(err, name)))
		if !pgerr.Is(err, pgerr.InvalidCatalogName) {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// openTarget connects to the database of the connection string and returns its name.
func (c *command) openTarget(ctx context.Context) (*sql.DB, string, error) {
	name, _ := pgdsn.Database(c.dsn)
	db, err := c.open(ctx, "")
	if err != nil {
		if name != "" {
			return nil, "", fmt.Errorf("connect to database %q: %w", name, explain(err, name))
		}
		return nil, "", fmt.Errorf("connect to database: %w", explain(err, name))
	}
	if err := db.QueryRowContext(ctx, "SELECT current_database()").Scan(&name); err != nil {
		_ = db.Close()
		return nil, "", fmt.Errorf("connect to database: %w", err)
	}
	return db, name, nil
}

// explain adds to a connection error what to do about it, keeping the server's own message.
func explain(err error, database string) error {
	hint := ""
	switch {
	case pgerr.Is(err, pgerr.InvalidPassword):
		hint = "check the password: in the connection string, PGPASSWORD or ~/.pgpass"
	case pgerr.Is(err, pgerr.InvalidCatalogName):
		hint = fmt.Sprintf("create database %q first: es-migrate create", database)
	case pgerr.Is(err, pgerr.InvalidAuthorization):
		hint = "check the user name, and that the server's pg_hba.conf lets it connect from here"
	case pgerr.Is(err, pgerr.TooManyConnections, pgerr.CannotConnectNow):
		hint = "the server refuses connections for now: try again later"
	case errors.Is(err, pq.ErrSSLNotSupported) || strings.Contains(err.Error(), "server refused TLS connection"):
		hint = "the server does not offer TLS and the connection string requires it " +
			"(sslmode=require or stronger, here or in PGSSLMODE): turn TLS on in the server, " +
			"or use sslmode=prefer"
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused"):
		hint = "is the server running, and listening on that host and port?"
	case errors.Is(err, syscall.ENOENT) || strings.Contains(err.Error(), "no such file or directory"):
		hint = "no server socket there: is the server running? set the host (PGHOST) to its address"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// lockKey is the advisory lock key of an es-migrate operation on one object, apart from goose's
// migration lock.
func lockKey(what string) int64 {
	h := fnv.New64a()
	h.Write([]byte("eventstore es-migrate " + what))
	return int64(h.Sum64() >> 1)
}

// withLock runs fn holding a session advisory lock on a connection of db, waiting for other
// es-migrate runs on the same object to finish. The lock goes with the connection, so it is
// released even if the process dies.
func withLock(ctx context.Context, db *sql.DB, what string, fn func() error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	key := lockKey(what)
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return fmt.Errorf("take the lock of %s: %w", what, err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key)
	}()
	return fn()
}
