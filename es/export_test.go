package es

import "context"

// ReadFilteredAfter exposes readFilteredAfter to the external tests.
func ReadFilteredAfter(ctx context.Context, s *Store, categories, prefixes, eventTypes []string, pos int64, n int) ([]RecordedEvent, int64, error) {
	return s.readFilteredAfter(ctx, filter{categories: categories, prefixes: prefixes, eventTypes: eventTypes}, pos, n)
}

// FilteredScanWindow exposes filteredScanWindow.
const FilteredScanWindow = filteredScanWindow
