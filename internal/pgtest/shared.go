package pgtest

import "sync"

var (
	sharedMu sync.Mutex
	shared   *Postgres
)

// SetShared records the throwaway server estest started for a test binary, so that the module's
// fault tests can restart or kill it (Shared).
func SetShared(p *Postgres) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	shared = p
}

// Shared returns the server recorded by SetShared, or nil (ES_TEST_DATABASE_URL in use, or no
// server started yet: call estest.DSN first).
func Shared() *Postgres {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	return shared
}
