package es

// CatchUpReads says how many subscription catch-up reads the store's replica and its primary
// served (0, 0 without a replica).
func CatchUpReads(s *Store) (replica, primary int64) {
	if s.replica == nil {
		return 0, 0
	}
	return s.replica.catchUpOnReplica.Load(), s.replica.catchUpOnPrimary.Load()
}
