package es

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-eventstore/eventstore/goose"
	"github.com/go-eventstore/eventstore/internal/pgerr"
	"github.com/go-eventstore/eventstore/internal/sqltmpl"
)

// ErrSchemaVersion is returned by New when the schema's migrations do not match this version of
// the library: the schema holds no event store, is behind (run the migrations), or is ahead (a
// newer version of the library migrated it). The message names the command to run.
var ErrSchemaVersion = errors.New("schema version mismatch")

// schemaCheckTimeout bounds New's look at the schema version.
const schemaCheckTimeout = 30 * time.Second

// checkSchemaVersion compares the schema's migration version with the library's.
func checkSchemaVersion(db sqltmpl.DBTX, schema string) error {
	ctx, cancel := context.WithTimeout(context.Background(), schemaCheckTimeout)
	defer cancel()
	current, latest, err := goose.Version(ctx, db, schema)
	switch {
	case pgerr.Is(err, pgerr.InsufficientPrivilege):
		return fmt.Errorf("%w (grant the application's role what it needs: es-migrate --schema %s grant --role ROLE)", err, schema)
	case err != nil:
		return err
	case current == 0:
		return fmt.Errorf("%w: schema %q holds no event store: create it first with "+
			"`es-migrate --schema %s init` (or goose.Up)", ErrSchemaVersion, schema, schema)
	case current < latest:
		return fmt.Errorf("%w: schema %q is at migration version %d, this library needs %d: "+
			"run `es-migrate --schema %s migrate` (or goose.Up)", ErrSchemaVersion, schema, current, latest, schema)
	case current > latest:
		return fmt.Errorf("%w: schema %q is at migration version %d, newer than this library "+
			"knows (%d): upgrade github.com/go-eventstore/eventstore in this application",
			ErrSchemaVersion, schema, current, latest)
	}
	return nil
}
