package migratecli

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// Table privileges given by grant. Stored events are never updated: the event tables are only
// read and added to; their rows (and streams') are deleted only by hard deletes, granted apart.
var (
	appendOnlyTables = []string{"events", "links", "all_events"}
	streamTables     = []string{"streams"} // updated (versions, soft deletes), never deleted
)

// grantsFor returns the privileges the application role gets on table.
func grantsFor(table string, hardDeletes bool) string {
	del := ""
	if hardDeletes {
		del = ", DELETE"
	}
	switch {
	case table == goose.VersionTable:
		return "SELECT" // es.New checks the version
	case contains(appendOnlyTables, table):
		return "SELECT, INSERT" + del
	case contains(streamTables, table):
		return "SELECT, INSERT, UPDATE" + del
	default: // bookkeeping: pending appends, the $all counter, snapshots, subscriptions
		return "SELECT, INSERT, UPDATE, DELETE"
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// cmdGrant gives the role what the store's operations need in the schema, and nothing more,
// replacing the role's earlier privileges on the schema's tables.
func cmdGrant(ctx context.Context, c *command) error {
	schema, role := c.opts.schema, c.opts.role
	db, dbName, err := c.openTarget(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return withLock(ctx, db, "schema "+schema, func() error {
		var hasStore, roleExists, superuser, owner bool
		err := db.QueryRowContext(ctx, `
			SELECT to_regclass($1) IS NOT NULL,
			       r.oid IS NOT NULL, coalesce(r.rolsuper, false),
			       coalesce(pg_has_role(r.oid, c.relowner, 'MEMBER'), false)
			FROM (SELECT 1) one
			LEFT JOIN pg_roles r ON r.rolname = $2
			LEFT JOIN pg_class c ON c.oid = to_regclass($1)`,
			versionTable(schema), role).Scan(&hasStore, &roleExists, &superuser, &owner)
		if err != nil {
			return fmt.Errorf("look up schema %q and role %q in database %q: %w", schema, role, dbName, err)
		}
		switch {
		case !hasStore:
			return fmt.Errorf("schema %q in database %q holds no event store: run es-migrate --schema %s init first", schema, dbName, schema)
		case !roleExists:
			return fmt.Errorf("role %q does not exist: create it first, for example with "+
				"CREATE ROLE %s LOGIN PASSWORD '...'", role, pgident.Quote(role))
		case superuser:
			return fmt.Errorf("role %q is a superuser: privileges cannot restrict it; grant to a role without SUPERUSER", role)
		case owner:
			return fmt.Errorf("role %q owns the event store's tables (or is a member of their owner): "+
				"privileges cannot restrict it; run the application as another role", role)
		}
		rows, err := db.QueryContext(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1`, schema)
		if err != nil {
			return fmt.Errorf("list the tables of schema %q: %w", schema, err)
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
		s, r := pgident.Quote(schema), pgident.Quote(role)
		stmts := []string{
			"REVOKE ALL ON ALL TABLES IN SCHEMA " + s + " FROM " + r,
			"REVOKE ALL ON ALL SEQUENCES IN SCHEMA " + s + " FROM " + r,
			"GRANT USAGE ON SCHEMA " + s + " TO " + r,
			"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA " + s + " TO " + r,
		}
		for _, t := range tables {
			stmts = append(stmts, "GRANT "+grantsFor(t, c.opts.hardDeletes)+" ON "+pgident.QuoteQualified(schema, t)+" TO "+r)
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		for _, q := range stmts {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("grant to role %q in database %q: %s: %w", role, dbName, q, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("grant to role %q in database %q: %w", role, dbName, err)
		}
		hard := "no hard deletes (add --hard-deletes to allow them)"
		if c.opts.hardDeletes {
			hard = "hard deletes allowed"
		}
		fmt.Fprintf(c.out, "granted role %q the event store's operations in schema %q of database %q: "+
			"read and append, no UPDATE or TRUNCATE of stored events, %s\n", role, schema, dbName, hard)
		fmt.Fprintf(c.out, "tables: %s\n", strings.Join(tables, ", "))
		return nil
	})
}
