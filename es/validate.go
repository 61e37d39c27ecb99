package es

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Limits on the text arguments of the API. Every name, type and id is checked in Go before it
// reaches Postgres, so a bad one is refused with ErrInvalidArgument, changes nothing and leaves a
// caller's transaction usable, instead of failing inside Postgres (which aborts the transaction).
//
// Text must be valid UTF-8 without NUL bytes (Postgres text cannot hold either), and at most the
// limit below, in bytes. The limits keep every index entry well inside a btree page's maximum
// (about 2,700 bytes), even where two names share one index entry.
const (
	// MaxStreamNameLen is the longest stream name, in bytes. A category name, a stream-name
	// prefix and a subscription name have the same limit.
	MaxStreamNameLen = 1024
	// MaxEventTypeLen is the longest event type name, in bytes.
	MaxEventTypeLen = 1024
	// MaxSourceIDLen is the longest snapshot source id, in bytes; a snapshot's SourceType has the
	// same limit.
	MaxSourceIDLen = 1024
	// MaxSubscriptionNameLen is the longest persistent subscription name, in bytes.
	MaxSubscriptionNameLen = 1024
	// MaxSearchLen is the longest PageOptions.Search, in bytes.
	MaxSearchLen = 1024
	// MaxFilterValues is the most values one filter option (WithEventTypes, WithCategories,
	// WithStreamPrefixes) takes in one call.
	MaxFilterValues = 1000
)

// checkText checks one text argument: kind names it in the error ("stream name", ...). Empty
// text is refused too: no name of the API may be empty.
func checkText(kind, s string, max int) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidArgument, kind)
	case len(s) > max:
		return fmt.Errorf("%w: %s is %d bytes long, at most %d are allowed", ErrInvalidArgument, kind, len(s), max)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("%w: %s %.40q holds a NUL byte", ErrInvalidArgument, kind, s)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: %s %.40q is not valid UTF-8", ErrInvalidArgument, kind, s)
	}
	return nil
}

// checkStreamName checks a stream name (AllStream passes: callers decide whether $all is
// allowed). The error names the operation and the stream.
func checkStreamName(op, stream string) error {
	if err := checkText("stream name", stream, MaxStreamNameLen); err != nil {
		return opError(op, stream, err)
	}
	return nil
}

// checkSubscriptionName checks a persistent subscription's name.
func checkSubscriptionName(op, stream, name string) error {
	if err := checkText("subscription name", name, MaxSubscriptionNameLen); err != nil {
		return opError(op, stream, err)
	}
	return nil
}

// checkEventType checks an event type name; i is the event's index in its append (-1: none).
func checkEventType(typ string, i int) error {
	if err := checkText("event type", typ, MaxEventTypeLen); err != nil {
		if i >= 0 {
			return fmt.Errorf("event %d: %w", i, err)
		}
		return err
	}
	return nil
}

// checkCategory checks a category name: a stream name without '-'.
func checkCategory(op, category string) error {
	if err := checkText("category", category, MaxStreamNameLen); err != nil {
		return opError(op, category, err)
	}
	if strings.IndexByte(category, '-') >= 0 {
		return invalid(op, category, "a category is a stream name up to its first '-', so it holds none")
	}
	return nil
}

// checkCount checks the count of a read. Any positive count is fine, math.MaxInt included.
func checkCount(op, stream string, count int) error {
	if count <= 0 {
		return invalid(op, stream, "count %d, must be positive", count)
	}
	return nil
}

// plusOne adds one without overflowing, for the row limits of reads given math.MaxInt.
func plusOne(n int64) int64 {
	if n == math.MaxInt64 {
		return n
	}
	return n + 1
}

// shownName keeps error messages readable when a name is huge: opError shows at most its
// first 200 bytes (quoted, so NUL bytes and invalid UTF-8 show as escapes).
func shownName(s string) string {
	if len(s) <= 200 {
		return s
	}
	return strings.ToValidUTF8(s[:200], "") + fmt.Sprintf("…(%d bytes)", len(s))
}

// checkFilterValues checks the values given to a filter option; total is how many the call now
// has for that option.
func checkFilterValues(option, kind string, values []string, max, total int) error {
	if len(values) == 0 {
		return fmt.Errorf("%w: %s needs at least one %s", ErrInvalidArgument, option, kind)
	}
	if total > MaxFilterValues {
		return fmt.Errorf("%w: %s: %d values, at most %d are allowed", ErrInvalidArgument, option, total, MaxFilterValues)
	}
	for _, v := range values {
		if err := checkText(kind, v, max); err != nil {
			return fmt.Errorf("%s: %w", option, err)
		}
	}
	return nil
}
