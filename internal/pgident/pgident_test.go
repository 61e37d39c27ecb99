package pgident

import (
	"errors"
	"strings"
	"testing"

	"github.com/matryer/is"
)

func TestValidateSchema(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for _, ok := range []string{"public", "_x", "tenant_a1", strings.Repeat("s", MaxLen)} {
		is.NoErr(ValidateSchema(ok))
	}
	for _, bad := range []string{"", "Upper", "a-b", `a"b`, "1a", "a b", "é", strings.Repeat("s", MaxLen+1)} {
		err := ValidateSchema(bad)
		is.True(errors.Is(err, ErrInvalidSchema))
		is.True(strings.Contains(err.Error(), "use lower-case letters")) // says how to fix
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	for _, ok := range []string{"app", "App-1", "_x", "Mc_Case-ab"} {
		is.NoErr(ValidateName("database", ok))
	}
	for _, bad := range []string{"", "-a", "1a", `a"b`, "a;b", "a b", strings.Repeat("x", MaxLen+1)} {
		err := ValidateName("role", bad)
		is.True(errors.Is(err, ErrInvalidName))
		is.True(strings.Contains(err.Error(), "role name"))
	}
}

func TestQuote(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	is.Equal(Quote("a"), `"a"`)
	is.Equal(Quote(`a"b`), `"a""b"`)
	is.Equal(QuoteQualified("s", "t"), `"s"."t"`)
}
