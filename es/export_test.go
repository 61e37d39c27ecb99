package es

import "context"

// ReadFilteredAfter exposes readFilteredAfter to the external tests.
func ReadFilteredAfter(ctx context.Context, s *Store, categories, prefixes, eventTypes []string, pos int64, n int) ([]RecordedEvent, int64, error) {
	return s.readFilteredAfter(ctx, filter{categories: categories, prefixes: prefixes, eventTypes: eventTypes}, pos, n)
}

// FilteredScanWindow exposes filteredScanWindow.
const FilteredScanWindow = filteredScanWindow

// SetDeliveryHook makes f see every batch handed to a persistent subscriber, at that moment,
// with the lease epoch it was delivered under (tests only; nil removes it). Set it before the
// store starts subscriptions.
func SetDeliveryHook(f func(stream, name string, epoch int64, batch []RecordedEvent)) {
	if f == nil {
		deliveryHook.Store(nil)
		return
	}
	deliveryHook.Store(&f)
}

// ReadAheadsUsed says how many pages read ahead s's subscriptions used.
func ReadAheadsUsed(s *Store) int64 { return s.readAheadsUsed.Load() }
