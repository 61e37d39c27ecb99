package migratecli

import (
	"fmt"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/estest"
)

// init --data-type jsonb creates a schema whose data is native JSON; the choice cannot change.
func TestInitDataType(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	db := estest.DB(t)

	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init", "--data-type", "jsonb"), ExitOK,
		fmt.Sprintf("initialised schema %q", schema))
	var kind string
	is.NoErr(db.QueryRowContext(t.Context(), `SELECT data_type FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = 'events' AND column_name = 'data'`, schema).Scan(&kind))
	is.Equal(kind, "jsonb")
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init", "--data-type", "jsonb"), ExitOK, "already initialised")
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init", "--data-type", "bytea"), ExitUsage, "stores event data as jsonb")
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init", "--data-type", "xml"), ExitUsage, `invalid --data-type "xml"`)
}
