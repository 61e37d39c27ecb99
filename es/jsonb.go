package es

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
)

// Data types of a schema's data and metadata columns (see goose.Options).
const (
	dataUnknown int32 = iota
	dataBytea
	dataJSONB
)

// dataTypeState caches the schema's data type, read once from its settings.
type dataTypeState struct{ v atomic.Int32 }

// isJSONB reports whether the store's schema keeps data and metadata as jsonb, so that appends
// and snapshots must be JSON that jsonb can hold. New reads the schema's setting; later calls
// use what it read.
func (s *Store) isJSONB(ctx context.Context) (bool, error) {
	switch s.dataType.v.Load() {
	case dataBytea:
		return false, nil
	case dataJSONB:
		return true, nil
	}
	v, err := s.q.GetSetting(ctx, s.tmpl.Wrap(s.db), "data_type")
	if err != nil {
		return false, fmt.Errorf("read the schema's data type (is schema %s migrated to the latest version?): %w", s.Schema(), err)
	}
	switch v {
	case "bytea":
		s.dataType.v.Store(dataBytea)
		return false, nil
	case "jsonb":
		s.dataType.v.Store(dataJSONB)
		return true, nil
	}
	return false, fmt.Errorf("schema %s has unknown data type %q", s.Schema(), v)
}

// checkJSONB checks that b can be stored in a jsonb column: valid JSON with no \u0000 escape and
// no unpaired surrogate escape, which jsonb refuses (as an error that would abort a caller's
// transaction).
func checkJSONB(what string, b []byte) error {
	if !json.Valid(b) {
		return fmt.Errorf("%w: %s is not JSON, and the schema stores data as jsonb (use a JSON serializer, or a bytea schema)", ErrInvalidArgument, what)
	}
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !inString {
			inString = c == '"'
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if b[i+1] != 'u' {
				i++
				continue
			}
			r := hex4(b[i+2 : i+6])
			i += 5
			switch {
			case r == 0:
				return fmt.Errorf("%w: %s holds \\u0000, which jsonb cannot store", ErrInvalidArgument, what)
			case r >= 0xDC00 && r <= 0xDFFF:
				return fmt.Errorf("%w: %s holds an unpaired surrogate escape, which jsonb cannot store", ErrInvalidArgument, what)
			case r >= 0xD800 && r <= 0xDBFF:
				if i+6 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
					return fmt.Errorf("%w: %s holds an unpaired surrogate escape, which jsonb cannot store", ErrInvalidArgument, what)
				}
				if lo := hex4(b[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
					return fmt.Errorf("%w: %s holds an unpaired surrogate escape, which jsonb cannot store", ErrInvalidArgument, what)
				}
				i += 6
			}
		}
	}
	return nil
}

func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		}
	}
	return r
}

// checkJSONBEvent checks one event's encoded data and metadata for a jsonb schema.
func checkJSONBEvent(data, meta []byte) error {
	if err := checkJSONB("data", data); err != nil {
		return err
	}
	if len(meta) > 0 {
		return checkJSONB("metadata", meta)
	}
	return nil
}
