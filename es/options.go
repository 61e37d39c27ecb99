package es

import (
	"database/sql"
	"fmt"
)

// Option applies to one call.
type Option func(*callOptions)

type callOptions struct {
	tx         *sql.Tx
	batchSize  int
	eventTypes []string
	categories []string
	prefixes   []string
	err        error
	result     *AppendResult // WithAppendResult

	// Replica reads (es/replica.go).
	primary     bool // WithPrimary
	minLSN      LSN  // WithMinLSN, WithMinLSNOrPrimary
	lsnFallback bool // WithMinLSNOrPrimary: the primary rather than wait
}

// DefaultBatchSize is how many events the Stream* iterators read per query unless WithBatchSize
// says otherwise.
const DefaultBatchSize = 1000

// WithTx runs the call on the caller's transaction: the store never commits or rolls it back, and
// nothing the call writes becomes visible to readers or subscribers before the caller commits. A
// database error (not an expected-version refusal) aborts the transaction, as any failed
// statement does in Postgres.
func WithTx(tx *sql.Tx) Option {
	return func(o *callOptions) {
		if tx == nil {
			o.err = fmt.Errorf("%w: WithTx(nil)", ErrInvalidArgument)
		}
		o.tx = tx
	}
}

// WithBatchSize sets how many events the Stream* iterators read per query. Defaults to
// DefaultBatchSize.
func WithBatchSize(n int) Option {
	return func(o *callOptions) {
		if n <= 0 {
			o.err = fmt.Errorf("%w: batch size %d, must be positive", ErrInvalidArgument, n)
		}
		o.batchSize = n
	}
}

// WithEventTypes restricts reads of $all, of categories and of streams (Read*, Stream*) to events
// of the given types; the filter runs in SQL, through an index on the type. Defaults to all
// types.
func WithEventTypes(types ...string) Option {
	return func(o *callOptions) {
		o.eventTypes = append(o.eventTypes, types...)
		if o.err == nil {
			o.err = checkFilterValues("WithEventTypes", "event type", types, MaxEventTypeLen, len(o.eventTypes))
		}
	}
}

func (s *Store) options(op, stream string, opts []Option) (*callOptions, error) {
	o := &callOptions{batchSize: DefaultBatchSize}
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	if o.err != nil {
		return nil, opError(op, stream, o.err)
	}
	if s == nil {
		return nil, opError(op, stream, fmt.Errorf("%w: nil *Store", ErrInvalidArgument))
	}
	if s.isClosed() {
		return nil, opError(op, stream, ErrClosed)
	}
	return o, nil
}
