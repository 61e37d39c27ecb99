package migratecli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	pgoose "github.com/pressly/goose/v3"

	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/pgident"
)

// cmdDrop removes the event store's own objects from the schema, by rolling back its
// migrations, and then the schema if nothing else is left in it.
func cmdDrop(ctx context.Context, c *command) error {
	schema := c.opts.schema
	db, dbName, err := c.openConfirmed(ctx, fmt.Sprintf("this drops the event store in schema %q with all its events", schema))
	if err != nil {
		return err
	}
	defer db.Close()
	return withLock(ctx, db, "schema "+schema, func() error {
		var exists, hasStore bool
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), to_regclass($2) IS NOT NULL`,
			schema, versionTable(schema)).Scan(&exists, &hasStore)
		if err != nil {
			return fmt.Errorf("look up schema %q in database %q: %w", schema, dbName, err)
		}
		if !exists {
			fmt.Fprintf(c.out, "schema %q does not exist in database %q: nothing to drop\n", schema, dbName)
			return nil
		}
		if hasStore {
			res, err := goose.Down(ctx, db, schema)
			printRolledBack(c.out, res)
			if err != nil {
				return dropError(ctx, db, schema, dbName, err)
			}
			if err := goose.DropVersionTable(ctx, db, schema); err != nil {
				return fmt.Errorf("database %q: %w", dbName, err)
			}
			fmt.Fprintf(c.out, "dropped the event store in schema %q of database %q\n", schema, dbName)
		} else {
			fmt.Fprintf(c.out, "schema %q in database %q holds no event store\n", schema, dbName)
		}
		if schema == "public" {
			return nil // every database has it; never dropped
		}
		// Without CASCADE: the schema goes only if nothing is left in it.
		_, err = db.ExecContext(ctx, "DROP SCHEMA IF EXISTS "+pgident.Quote(schema))
		switch {
		case pgerr.Is(err, pgerr.DependentObjectsStillExist):
			fmt.Fprintf(c.out, "kept schema %q: it holds other objects\n", schema)
		case err != nil:
			return fmt.Errorf("drop schema %q in database %q: %w", schema, dbName, err)
		default:
			fmt.Fprintf(c.out, "dropped schema %q, left empty\n", schema)
		}
		return nil
	})
}

// dropError explains a failed roll back: most likely an object of the application depends on
// one of the store's.
func dropError(ctx context.Context, db *sql.DB, schema, dbName string, err error) error {
	v, _, verr := goose.Version(ctx, db, schema)
	state := ""
	if verr == nil {
		state = fmt.Sprintf("; the store is left at version %d, es-migrate migrate brings it back", v)
	}
	if pgerr.Is(err, pgerr.DependentObjectsStillExist) {
		return fmt.Errorf("database %q: objects outside the event store depend on its tables or functions "+
			"(%s): drop or change them first, nothing of yours was dropped%s: %w", dbName, detail(err), state, err)
	}
	return fmt.Errorf("database %q: %w%s", dbName, err, state)
}

// detail returns the DETAIL line of a server error, from either driver.
func detail(err error) string {
	var pqe *pq.Error
	if errors.As(err, &pqe) {
		return pqe.Detail
	}
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		return pge.Detail
	}
	return ""
}

// printRolledBack prints the migrations that were rolled back.
func printRolledBack(w interface{ Write([]byte) (int, error) }, res []*pgoose.MigrationResult) {
	names, _ := migrationNames()
	for _, r := range res {
		if r.Error != nil {
			continue
		}
		fmt.Fprintf(w, "rolled back %s\n", names[r.Source.Version])
	}
}

func cmdDropDatabase(ctx context.Context, c *command) error {
	name, err := c.databaseName()
	if err != nil {
		return err
	}
	if slices.Contains(maintenanceDatabases, name) || name == "template0" {
		return usagef("refusing to drop the maintenance database %q", name)
	}
	if !c.opts.force {
		return usagef("this drops database %q with all its data: add --force to confirm", name)
	}
	maint, err := c.openMaintenance(ctx)
	if err != nil {
		return err
	}
	defer maint.Close()
	// Under the lock, so that concurrent runs do not look into a database being dropped.
	return withLock(ctx, maint, "database "+name, func() error {
		var exists bool
		err := maint.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
		if err != nil {
			return fmt.Errorf("look up database %q: %w", name, err)
		}
		if !exists {
			fmt.Fprintf(c.out, "database %q does not exist\n", name)
			return nil
		}
		target, err := c.open(ctx, name)
		if err != nil {
			return fmt.Errorf("connect to database %q: %w", name, explain(err, name))
		}
		foreign, err := foreignObjects(ctx, target)
		_ = target.Close()
		if err != nil {
			return fmt.Errorf("look into database %q: %w", name, err)
		}
		if len(foreign) > 0 {
			return fmt.Errorf("database %q holds more than event stores (%s): not dropping it; "+
				"remove the stores alone with es-migrate drop --schema NAME", name, summarize(foreign, 5))
		}
		if _, err := maint.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgident.Quote(name)); err != nil {
			if pgerr.Is(err, pgerr.ObjectInUse) {
				err = fmt.Errorf("%w (stop the applications connected to it first)", err)
			}
			return fmt.Errorf("drop database %q: %w", name, err)
		}
		fmt.Fprintf(c.out, "dropped database %q, which held only event stores\n", name)
		return nil
	})
}

// foreignObjects lists what a database holds besides event stores: tables, views, sequences,
// composite and other types, and functions in any schema, except the event store's own objects
// in the schemas holding one (and the sequences and row types that belong to tables).
func foreignObjects(ctx context.Context, db *sql.DB) ([]string, error) {
	objs, err := goose.StoreObjects()
	if err != nil {
		return nil, err
	}
	tables := strings.Join(append(objs.Tables, goose.VersionTable), ",")
	functions := strings.Join(objs.Functions, ",")
	rows, err := db.QueryContext(ctx, `
		WITH s AS (
			SELECT n.oid, n.nspname,
			       to_regclass(quote_ident(n.nspname) || '.' || quote_ident($3)) IS NOT NULL AS store
			FROM pg_namespace n
			WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
			  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
		)
		SELECT o.kind || ' ' || quote_ident(s.nspname) || '.' || quote_ident(o.name)
		FROM s CROSS JOIN LATERAL (
			SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
			       WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table'
			       WHEN 'S' THEN 'sequence' ELSE 'type' END AS kind, c.relname::text AS name
			FROM pg_class c
			WHERE c.relnamespace = s.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
			  AND NOT (s.store AND c.relname = ANY (string_to_array($1, ',')))
			  AND NOT (c.relkind = 'S' AND EXISTS (
			      SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
			        AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
			UNION ALL
			SELECT 'function', p.proname::text FROM pg_proc p
			WHERE p.pronamespace = s.oid AND NOT (s.store AND p.proname = ANY (string_to_array($2, ',')))
			UNION ALL
			SELECT 'type', t.typname::text FROM pg_type t
			WHERE t.typnamespace = s.oid AND t.typrelid = 0 AND t.typcategory <> 'A'
		) o
		ORDER BY 1`, tables, functions, goose.VersionTable)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// summarize joins the first n items, and says how many more there are.
func summarize(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}
