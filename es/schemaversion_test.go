package es_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
)

func TestNewChecksSchemaVersion(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	db := estest.DB(t)
	ctx := t.Context()
	_, latest, err := goose.Version(ctx, db, "public")
	is.NoErr(err)

	newStore := func(schema string) error {
		s, err := es.New(db, &es.Config{Schema: schema})
		if err == nil {
			_ = s.Close()
		}
		return err
	}

	// Never migrated: no schema at all, then an empty one.
	schema := estest.NewSchemaName(t)
	err = newStore(schema)
	is.True(errors.Is(err, es.ErrSchemaVersion))
	is.True(strings.Contains(err.Error(), "es-migrate --schema "+schema+" init"))
	_, err = db.ExecContext(ctx, "CREATE SCHEMA "+schema)
	is.NoErr(err)
	is.True(errors.Is(newStore(schema), es.ErrSchemaVersion))

	// Behind: only the first migration.
	p, err := goose.NewProvider(db, schema)
	is.NoErr(err)
	_, err = p.UpTo(ctx, 1)
	is.NoErr(err)
	if latest > 1 {
		err = newStore(schema)
		is.True(errors.Is(err, es.ErrSchemaVersion))
		is.True(strings.Contains(err.Error(), fmt.Sprintf("at migration version 1, this library needs %d", latest)))
		is.True(strings.Contains(err.Error(), "es-migrate --schema "+schema+" migrate"))
	}

	// Up to date.
	_, err = goose.Up(ctx, db, schema)
	is.NoErr(err)
	is.NoErr(newStore(schema))

	// Ahead: migrated by a newer version of the library.
	_, err = db.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf(
		"INSERT INTO %s.%s (version_id, is_applied) VALUES (%d, true)", schema, goose.VersionTable, latest+1))
	is.NoErr(err)
	err = newStore(schema)
	is.True(errors.Is(err, es.ErrSchemaVersion))
	is.True(strings.Contains(err.Error(), "newer than this library"))
}
