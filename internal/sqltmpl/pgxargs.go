package sqltmpl

import (
	"database/sql"
	"reflect"

	"github.com/lib/pq"
)

// isPgx reports whether db runs on pgx's database/sql driver, detected rather than assumed.
func isPgx(db *sql.DB) bool {
	t := reflect.TypeOf(db.Driver())
	return t != nil && t.String() == "*stdlib.Driver"
}

// nativeArrays unwraps the pq.Array values sqlc's database/sql code passes for array
// parameters. pgx encodes Go slices natively; given pq's text array literal it parses it back
// first, which cost about half the CPU of large appends in a profile.
func nativeArrays(args []any) []any {
	var out []any
	for i, a := range args {
		var v any
		switch x := a.(type) {
		case *pq.StringArray:
			v = []string(*x)
		case *pq.ByteaArray:
			v = [][]byte(*x)
		case *pq.Int64Array:
			v = []int64(*x)
		case *pq.BoolArray:
			v = []bool(*x)
		case pq.GenericArray:
			v = x.A
		default:
			continue
		}
		if out == nil {
			out = append([]any(nil), args...)
		}
		out[i] = v
	}
	if out == nil {
		return args
	}
	return out
}
