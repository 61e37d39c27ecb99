package es_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
)

// schemaOf creates a schema with the given data type, dropped after the test.
func schemaOf(t *testing.T, dataType goose.DataType) string {
	t.Helper()
	db, ctx := estest.DB(t), t.Context()
	name := fmt.Sprintf("t_%s_%d", dataType, rand.Uint64())
	t.Cleanup(func() { _, _ = db.ExecContext(ctx, `DROP SCHEMA `+name+` CASCADE`) })
	if _, err := goose.UpWithOptions(ctx, db, name, goose.Options{DataType: dataType}); err != nil {
		t.Fatal(err)
	}
	return name
}

// binarySerializer stores data as raw bytes: fine for bytea, not JSON.
type binarySerializer struct{ es.Serializer }

func (binarySerializer) Marshal(v any) ([]byte, error) { return []byte{0xff, 0x00, 0x01}, nil }

// A jsonb store keeps data and metadata as native JSON that SQL can query, reads and writes them
// as a bytea store does, and refuses data jsonb cannot hold before it reaches Postgres.
func TestJSONBStore(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	schema := schemaOf(t, goose.JSONB)
	dt, err := goose.SchemaDataType(ctx, db, schema)
	is.NoErr(err)
	is.Equal(dt, goose.JSONB)
	store, err := es.New(db, &es.Config{Schema: schema})
	is.NoErr(err)
	defer store.Close()

	is.NoErr(store.AppendToStream(ctx, "account-1", es.NoStream, []es.EventData{
		{EventType: "deposited", Data: deposited{Account: "a", Amount: 120}, Metadata: map[string]any{"user": "ada"}},
		{EventType: "deposited", Data: deposited{Account: "a", Amount: 30}},
	}))
	var total int
	var user string
	is.NoErr(db.QueryRowContext(ctx, `SELECT sum((data->>'amount')::int), max(metadata->>'user') FROM `+schema+`.events
		WHERE data @> '{"account": "a"}'`).Scan(&total, &user))
	is.Equal(total, 150)
	is.Equal(user, "ada")
	got, err := store.ReadStreamForward(ctx, "account-1", 0, 10)
	is.NoErr(err)
	is.Equal(got[0].Data, map[string]any{"account": "a", "amount": float64(120)})
	is.Equal(got[0].Metadata, map[string]any{"user": "ada"})
	is.Equal(got[1].Metadata, map[string]any(nil))
	all, err := store.ReadCategoryForward(ctx, "account", 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 2)

	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "account-1", SourceType: "acc", Data: map[string]int{"balance": 150}}))
	snap, err := store.ReadSnapshot(ctx, "account-1")
	is.NoErr(err)
	is.Equal(snap.Data, map[string]any{"balance": float64(150)})

	// What jsonb cannot hold is refused in Go, the caller's transaction intact.
	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	for name, ev := range map[string]es.EventData{
		"NUL in data":         {EventType: "t", Data: map[string]string{"s": "a\x00b"}},
		"NUL in metadata":     {EventType: "t", Data: 1, Metadata: map[string]any{"k\x00": 1}},
		"raw NUL escape":      {EventType: "t", Data: json.RawMessage(`{"s":"\u0000"}`)},
		"raw lone surrogate":  {EventType: "t", Data: json.RawMessage(`["\ud800x"]`)},
		"raw low surrogate":   {EventType: "t", Data: json.RawMessage(`"\uDC00"`)},
		"raw invalid surrog.": {EventType: "t", Data: json.RawMessage(`"\ud800\u0041"`)},
	} {
		err := store.AppendToStream(ctx, "bad", es.AnyVersion, []es.EventData{ev}, es.WithTx(tx))
		if !errors.Is(err, es.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
		txUsable(ctx, t, tx, name)
	}
	// A valid surrogate pair is fine.
	is.NoErr(store.AppendToStream(ctx, "ok", es.AnyVersion, []es.EventData{{EventType: "t", Data: json.RawMessage(`"\ud83d\ude00"`)}}, es.WithTx(tx)))
	is.NoErr(tx.Commit())

	// A serializer that does not write JSON is refused clearly by a jsonb store.
	bin, err := es.New(db, &es.Config{Schema: schema, Serializer: binarySerializer{es.NewJSONSerializer()}})
	is.NoErr(err)
	defer bin.Close()
	err = bin.AppendToStream(ctx, "bin", es.AnyVersion, events(1))
	is.True(errors.Is(err, es.ErrInvalidArgument))
	is.True(err != nil && strings.Contains(err.Error(), "jsonb"))
	err = bin.RecordSnapshot(ctx, es.SnapshotData{SourceID: "x", SourceType: "t", Data: 1})
	is.True(errors.Is(err, es.ErrInvalidArgument))
}

// A bytea store takes any serializer's bytes, and JSON that jsonb would refuse.
func TestByteaStoreTakesAnyBytes(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	schema := schemaOf(t, goose.Bytea)
	store, err := es.New(db, &es.Config{Schema: schema, Serializer: binarySerializer{es.NewJSONSerializer()}})
	is.NoErr(err)
	defer store.Close()
	is.NoErr(store.AppendToStream(ctx, "bin", es.AnyVersion, []es.EventData{{EventType: "t", Data: 1, Metadata: map[string]any{"k": "a\x00b"}}}))
	var raw []byte
	is.NoErr(db.QueryRowContext(ctx, `SELECT data FROM `+schema+`.events`).Scan(&raw))
	is.Equal(raw, []byte{0xff, 0x00, 0x01})
}

// A schema's data type is chosen once, when it is initialised.
func TestDataTypeIsChosenAtInit(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx, db := t.Context(), estest.DB(t)
	bytea, jsonb := schemaOf(t, goose.Bytea), schemaOf(t, goose.JSONB)
	_, err := goose.UpWithOptions(ctx, db, bytea, goose.Options{DataType: goose.JSONB})
	is.True(err != nil && strings.Contains(err.Error(), "stores event data as bytea"))
	_, err = goose.UpWithOptions(ctx, db, jsonb, goose.Options{DataType: goose.Bytea})
	is.True(err != nil && strings.Contains(err.Error(), "stores event data as jsonb"))
	_, err = goose.UpWithOptions(ctx, db, jsonb, goose.Options{DataType: goose.JSONB}) // nothing to do
	is.NoErr(err)
	_, err = goose.Up(ctx, db, jsonb) // plain Up leaves the choice alone
	is.NoErr(err)
	dt, err := goose.SchemaDataType(ctx, db, jsonb)
	is.NoErr(err)
	is.Equal(dt, goose.JSONB)
	_, err = goose.UpWithOptions(ctx, db, "t_unused", goose.Options{DataType: "xml"})
	is.True(err != nil)

	// Down and up again through the data type migration keeps the events.
	store, err := es.New(db, &es.Config{Schema: jsonb})
	is.NoErr(err)
	is.NoErr(store.AppendToStream(ctx, "s", es.NoStream, events(2)))
	is.NoErr(store.Close())
	p, err := goose.NewProviderWithOptions(db, jsonb, goose.Options{DataType: goose.JSONB})
	is.NoErr(err)
	_, err = p.DownTo(ctx, 3)
	is.NoErr(err)
	_, err = p.Up(ctx)
	is.NoErr(err)
	store, err = es.New(db, &es.Config{Schema: jsonb})
	is.NoErr(err)
	defer store.Close()
	got, err := store.ReadStreamForward(ctx, "s", 0, 10)
	is.NoErr(err)
	is.Equal(got[1].Data, map[string]any{"account": "a", "amount": float64(2)})
	var kind string
	is.NoErr(db.QueryRowContext(ctx, `SELECT data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'events' AND column_name = 'data'`, jsonb).Scan(&kind))
	is.Equal(kind, "jsonb")
}
