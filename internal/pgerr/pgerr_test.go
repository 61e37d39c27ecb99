package pgerr

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lib/pq"
	"github.com/matryer/is"
)

func TestCode(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	pqErr := fmt.Errorf("append: %w", &pq.Error{Code: UniqueViolation})
	pgxErr := fmt.Errorf("append: %w", &pgconn.PgError{Code: InsufficientPrivilege})
	is.Equal(Code(pqErr), UniqueViolation)
	is.Equal(Code(pgxErr), InsufficientPrivilege)
	is.True(Is(pqErr, ForeignKeyViolation, UniqueViolation))
	is.True(!Is(pgxErr, UniqueViolation))
	is.Equal(Code(errors.New("plain")), "")
	is.True(!Is(nil, UniqueViolation))
}
