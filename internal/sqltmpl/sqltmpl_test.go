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
	is.NoErr(ValidateSchema("public"))
	for _, bad := range []string{"", "Upper", "a-b", `a"b`, "1a", string(make([]byte, 64))} {
		is.True(ValidateSchema(bad) != nil)
	}
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
