package sqltmpl

import (
	"reflect"
	"testing"

	"github.com/google/uuid"
	"github.com/lib/pq"
	"github.com/matryer/is"
)

func TestApplyAndValidate(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	is.Equal(Apply("SELECT 1 FROM "+Marker+"events", "tenant_a"), `SELECT 1 FROM "tenant_a".events`)
	_, err := NewTemplater("Upper")
	is.True(err != nil) // validated by pgident.ValidateSchema
}

func TestNativeArrays(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ids := []uuid.UUID{uuid.New()}
	in := []any{"s", int64(1), pq.Array([]string{"a"}), pq.Array([][]byte{{1}}), pq.Array([]int64{2}), pq.Array(ids),
		ids[0], uuid.NullUUID{UUID: ids[0], Valid: true}, uuid.NullUUID{}}
	out := nativeArrays(in)
	is.Equal(out[0], "s")
	is.Equal(out[1], int64(1))
	is.Equal(out[2], []string{"a"})
	is.Equal(out[3], [][]byte{{1}})
	is.Equal(out[4], []int64{2})
	is.Equal(out[5], [][16]byte{ids[0]})
	is.Equal(out[6], [16]byte(ids[0]))
	is.Equal(out[7], [16]byte(ids[0]))
	is.Equal(out[8], nil)
	is.Equal(reflect.TypeOf(in[2]).String(), "*pq.StringArray") // the input is left as it was
	plain := []any{"x"}
	is.Equal(&nativeArrays(plain)[0], &plain[0]) // nothing to convert: no copy
}

func TestInline(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	id := uuid.MustParse("7f9c24e5-0f6b-4e8e-9a63-9b2a1e0c6d11")
	var nilArr *pq.StringArray
	q, err := Inline(`SELECT $1, $2::bigint, $3, '$1 stays', "col$1", $10 -- $2 stays
		/* $3 /* nested */ stays */ $$ $1 $$, $tag$ $2 $tag$, E'\' $1', x$1, $4, $5, $6, $7, $8, $9`,
		[]any{"it's", int64(42), []byte{0x7b, 0x7d}, nil, id, pq.Array([]string{"a", `b"c`}), true, nilArr, 1.5, `back\slash`})
	is.NoErr(err)
	is.Equal(q, `SELECT 'it''s', '42'::bigint, '\x7b7d'::bytea, '$1 stays', "col$1",  E'back\\slash' -- $2 stays
		/* $3 /* nested */ stays */ $$ $1 $$, $tag$ $2 $tag$, E'\' $1', x$1, NULL, '7f9c24e5-0f6b-4e8e-9a63-9b2a1e0c6d11',  E'{"a","b\\"c"}', 'true', NULL, '1.5'`)

	_, err = Inline("SELECT $2", []any{1})
	is.True(err != nil) // a parameter the arguments do not have
	_, err = Inline("SELECT $1", []any{struct{}{}})
	is.True(err != nil) // a value it cannot write
	q, err = Inline("SELECT 1", nil)
	is.NoErr(err)
	is.Equal(q, "SELECT 1")
}
