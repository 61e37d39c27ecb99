// Package pgident is the one place that validates and quotes the PostgreSQL identifiers the event
// store and its tools put into SQL: schema, database and role names. Every such name is both
// validated (so a mistake gets a clear error before reaching the server) and quoted (so what is
// validated is exactly what the server sees).
package pgident

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen is the longest identifier PostgreSQL keeps, in bytes (NAMEDATALEN - 1).
const MaxLen = 63

// ErrInvalidSchema is returned, wrapped with the name and how to fix it, for a schema name that
// is not a plain lower-case identifier.
var ErrInvalidSchema = errors.New("invalid schema name")

// ErrInvalidName is returned, wrapped with the name and how to fix it, for a database or role
// name that ValidateName refuses.
var ErrInvalidName = errors.New("invalid name")

// ValidateSchema accepts plain lower-case identifiers: ASCII lower-case letters, digits and
// underscores, starting with a letter or underscore, at most MaxLen bytes. Such a name means the
// same quoted or not, and can also name a NOTIFY channel or an advisory lock.
func ValidateSchema(name string) error {
	if !isPlain(name, false) {
		return fmt.Errorf("%w %q: use lower-case letters, digits and underscores, starting with a "+
			"letter or underscore, at most %d bytes", ErrInvalidSchema, name, MaxLen)
	}
	return nil
}

// ValidateName accepts the database and role names es-migrate and estest work with: ASCII
// letters, digits, underscores and hyphens, starting with a letter or underscore, at most MaxLen
// bytes. They are always quoted, so case is kept. kind names the thing in the error ("database",
// "role").
func ValidateName(kind, name string) error {
	if !isPlain(name, true) {
		return nameError(fmt.Sprintf("invalid %s name %q: use letters, digits, underscores and "+
			"hyphens, starting with a letter or underscore, at most %d bytes", kind, name, MaxLen))
	}
	return nil
}

// nameError is ValidateName's error: it matches ErrInvalidName.
type nameError string

func (e nameError) Error() string        { return string(e) }
func (e nameError) Is(target error) bool { return target == ErrInvalidName }

func isPlain(name string, mixed bool) bool {
	if name == "" || len(name) > MaxLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case c >= 'A' && c <= 'Z' && mixed:
		case (c >= '0' && c <= '9' || c == '-' && mixed) && i > 0:
		default:
			return false
		}
	}
	return true
}

// Quote quotes an identifier for SQL: "name", with embedded double quotes doubled.
func Quote(name string) string {
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// QuoteQualified quotes schema.name.
func QuoteQualified(schema, name string) string {
	return Quote(schema) + "." + Quote(name)
}
