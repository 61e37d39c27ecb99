package goose

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	pgoose "github.com/pressly/goose/v3"

	"github.com/go-eventstore/eventstore/internal/pgident"
)

// DataType is the column type of stored event and snapshot data and metadata. It is chosen when
// a schema is initialised and kept for the schema's life.
type DataType string

const (
	// Bytea stores data as the Serializer's bytes, whatever their format. The default.
	Bytea DataType = "bytea"
	// JSONB stores data and metadata as native JSON, so SQL can query and index event fields
	// (data->>'amount', GIN indexes). The Serializer must produce JSON (the default one does);
	// the store refuses anything else, and JSON that jsonb cannot hold (a \u0000 escape), with
	// ErrInvalidArgument.
	JSONB DataType = "jsonb"
)

// dataTypeMarker precedes the default data type in the migration that records it.
const dataTypeMarker = "/* TEMPLATE: data_type */'bytea'"

// dataTypeVersion is the migration that introduced the choice of data type.
const dataTypeVersion = 4

// Options choose how UpWithOptions initialises a schema.
type Options struct {
	// DataType is the column type of data and metadata. Defaults to Bytea. It applies when the
	// schema is initialised; on a schema initialised otherwise, asking for another type is an
	// error.
	DataType DataType
}

func (o Options) dataType() (DataType, error) {
	switch o.DataType {
	case "", Bytea:
		return Bytea, nil
	case JSONB:
		return JSONB, nil
	}
	return "", fmt.Errorf("goose: unknown data type %q: use %q or %q", o.DataType, Bytea, JSONB)
}

// applyDataType places the chosen data type into a migration's SQL.
func applyDataType(query string, t DataType) string {
	return strings.ReplaceAll(query, dataTypeMarker, "'"+string(t)+"'")
}

// NewProviderWithOptions is NewProvider for a schema initialised with the given options.
func NewProviderWithOptions(db *sql.DB, schemaName string, o Options, opts ...pgoose.ProviderOption) (*pgoose.Provider, error) {
	t, err := o.dataType()
	if err != nil {
		return nil, err
	}
	return newProvider(db, schemaName, t, opts...)
}

// UpWithOptions is Up with the choices made when a schema is initialised. On a schema that is
// already initialised it checks that the choices match: a schema's data type cannot change.
func UpWithOptions(ctx context.Context, db *sql.DB, schemaName string, o Options) ([]*pgoose.MigrationResult, error) {
	t, err := o.dataType()
	if err != nil {
		return nil, err
	}
	if err := EnsureSchema(ctx, db, schemaName); err != nil {
		return nil, err
	}
	p, err := newProvider(db, schemaName, t)
	if err != nil {
		return nil, err
	}
	if current, err := SchemaDataType(ctx, db, schemaName); err != nil {
		return nil, err
	} else if current != "" && current != t {
		return nil, fmt.Errorf("goose: schema %s stores event data as %s, not %s: the data type is chosen when a schema is initialised", schemaName, current, t)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("goose: migrate schema %s: %w", schemaName, err)
	}
	return res, nil
}

// SchemaDataType returns the data type of an initialised schema, or "" for a schema with no
// migration applied yet. A schema initialised before the choice existed is Bytea.
func SchemaDataType(ctx context.Context, db *sql.DB, schemaName string) (DataType, error) {
	if err := pgident.ValidateSchema(schemaName); err != nil {
		return "", fmt.Errorf("goose: %w", err)
	}
	var version, settings sql.NullString
	err := db.QueryRowContext(ctx, `SELECT to_regclass($1)::text, to_regclass($2)::text`,
		schemaName+"."+VersionTable, schemaName+".settings").Scan(&version, &settings)
	if err != nil {
		return "", fmt.Errorf("goose: data type of schema %s: %w", schemaName, err)
	}
	if !version.Valid {
		return "", nil
	}
	if !settings.Valid {
		var applied bool
		err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgident.Quote(schemaName)+`.`+VersionTable+` WHERE version_id > 0)`).Scan(&applied)
		if err != nil {
			return "", fmt.Errorf("goose: data type of schema %s: %w", schemaName, err)
		}
		if !applied {
			return "", nil
		}
		return Bytea, nil
	}
	var t string
	err = db.QueryRowContext(ctx, `SELECT value FROM `+pgident.Quote(schemaName)+`.settings WHERE name = 'data_type'`).Scan(&t)
	if errors.Is(err, sql.ErrNoRows) {
		return Bytea, nil
	}
	if err != nil {
		return "", fmt.Errorf("goose: data type of schema %s: %w", schemaName, err)
	}
	return DataType(t), nil
}
