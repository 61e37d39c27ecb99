package sqltmpl

import (
	"database/sql"
	"reflect"

	"github.com/google/uuid"
	"github.com/lib/pq"
)

// isPgx reports whether db runs on pgx's database/sql driver, detected rather than assumed.
func isPgx(db *sql.DB) bool {
	t := reflect.TypeOf(db.Driver())
	return t != nil && t.String() == "*stdlib.Driver"
}

// nativeArrays unwraps the pq.Array values sqlc's database/sql code passes for array
// parameters. pgx encodes Go slices natively; given pq's text array literal it parses it back
// first, which cost about half the CPU of large appends in a profile. UUIDs go as [16]byte: as
// uuid.UUID they pass through its driver.Valuer, a string pgx parses back, after a failed
// encode plan whose error alone cost a quarter of the CPU of 100-event appends.
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
			if ids, ok := x.A.([]uuid.UUID); ok {
				raw := make([][16]byte, len(ids))
				for j, id := range ids {
					raw[j] = id
				}
				v = raw
			}
		case uuid.UUID:
			v = [16]byte(x)
		case uuid.NullUUID:
			if !x.Valid {
				v = nil
				break
			}
			v = [16]byte(x.UUID)
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
