package sqltmpl

import (
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// Inline returns query with its parameters ($1, $2, ...) replaced by args written as SQL
// literals, for the simple query protocol: one message, one round trip, nothing prepared on the
// server. That is what PgBouncer in transaction mode needs from lib/pq, whose extended protocol
// sends a query and its parameters in two steps that PgBouncer may route to two different server
// connections.
//
// Each value is written as lib/pq sends a parameter: as text of no declared type, which the
// server types from the context just as it types a parameter ('42', 'a”b', NULL). []byte values
// are typed bytea ('\x...'::bytea) since their text form differs. Valuers (pq.Array, uuid.UUID,
// sql.Null*) are asked for their value first. $n inside string literals, quoted identifiers,
// comments and dollar-quoted strings are left alone.
func Inline(query string, args []any) (string, error) {
	if len(args) == 0 {
		return query, nil
	}
	lits := make([]string, len(args))
	for i, a := range args {
		l, err := literal(a)
		if err != nil {
			return "", fmt.Errorf("parameter $%d: %w", i+1, err)
		}
		lits[i] = l
	}
	var b strings.Builder
	b.Grow(len(query) + 16*len(args))
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := skipQuoted(query, i, c)
			b.WriteString(query[i:j])
			i = j
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			j := skipBlockComment(query, i)
			b.WriteString(query[i:j])
			i = j
		case c == '$' && i+1 < len(query) && query[i+1] >= '0' && query[i+1] <= '9' && !identChar(query, i-1):
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			n, _ := strconv.Atoi(query[i+1 : j])
			if n < 1 || n > len(lits) {
				return "", fmt.Errorf("query uses $%d but has %d parameters", n, len(lits))
			}
			b.WriteString(lits[n-1])
			i = j
		case c == '$' && !identChar(query, i-1):
			if tag, ok := dollarTag(query, i); ok {
				end := strings.Index(query[i+len(tag):], tag)
				j := len(query)
				if end >= 0 {
					j = i + len(tag) + end + len(tag)
				}
				b.WriteString(query[i:j])
				i = j
				continue
			}
			b.WriteByte(c)
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// identChar reports whether query[i] continues an identifier (so a $ there is part of it).
func identChar(query string, i int) bool {
	if i < 0 {
		return false
	}
	c := query[i]
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// skipQuoted returns the index after the quoted string or identifier starting at i. A doubled
// quote is part of it; in an E'...' string a backslash escapes the next byte.
func skipQuoted(query string, i int, q byte) int {
	escapes := q == '\'' && i > 0 && (query[i-1] == 'E' || query[i-1] == 'e') && !identChar(query, i-2)
	for j := i + 1; j < len(query); j++ {
		switch {
		case escapes && query[j] == '\\':
			j++
		case query[j] == q && j+1 < len(query) && query[j+1] == q:
			j++
		case query[j] == q:
			return j + 1
		}
	}
	return len(query)
}

// skipBlockComment returns the index after the (possibly nested) /* */ comment starting at i.
func skipBlockComment(query string, i int) int {
	depth := 0
	for j := i; j+1 < len(query); j++ {
		switch {
		case query[j] == '/' && query[j+1] == '*':
			depth++
			j++
		case query[j] == '*' && query[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(query)
}

// dollarTag returns the $tag$ opening a dollar-quoted string at i, if there is one.
func dollarTag(query string, i int) (string, bool) {
	for j := i + 1; j < len(query); j++ {
		c := query[j]
		if c == '$' {
			return query[i : j+1], true
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || j > i+1 && c >= '0' && c <= '9') {
			return "", false
		}
	}
	return "", false
}

// literal writes one parameter value as SQL.
func literal(a any) (string, error) {
	if v, ok := a.(driver.Valuer); ok {
		if rv := reflect.ValueOf(a); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return "NULL", nil
		}
		var err error
		if a, err = v.Value(); err != nil {
			return "", err
		}
	}
	switch x := a.(type) {
	case nil:
		return "NULL", nil
	case string:
		return pq.QuoteLiteral(x), nil
	case []byte:
		if x == nil {
			return "NULL", nil
		}
		return `'\x` + hex.EncodeToString(x) + `'::bytea`, nil
	case bool:
		return "'" + strconv.FormatBool(x) + "'", nil
	case time.Time:
		return pq.QuoteLiteral(string(pq.FormatTimestamp(x))), nil
	case int64:
		return "'" + strconv.FormatInt(x, 10) + "'", nil
	case float64:
		return "'" + strconv.FormatFloat(x, 'f', -1, 64) + "'", nil
	}
	rv := reflect.ValueOf(a)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "'" + strconv.FormatInt(rv.Int(), 10) + "'", nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "'" + strconv.FormatUint(rv.Uint(), 10) + "'", nil
	case reflect.Float32:
		return "'" + strconv.FormatFloat(rv.Float(), 'f', -1, 32) + "'", nil
	case reflect.String:
		return pq.QuoteLiteral(rv.String()), nil
	case reflect.Bool:
		return "'" + strconv.FormatBool(rv.Bool()) + "'", nil
	case reflect.Pointer:
		if rv.IsNil() {
			return "NULL", nil
		}
		return literal(rv.Elem().Interface())
	case reflect.Slice:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return literal(rv.Bytes())
		}
		v, err := pq.Array(a).Value()
		if err != nil {
			return "", err
		}
		return literal(v)
	}
	return "", fmt.Errorf("cannot write a %T as SQL", a)
}
