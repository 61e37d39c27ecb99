package admincli

import (
	"testing"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// schemaOf returns the fresh schema estest gave a test store, which es-admin must be pointed at.
func schemaOf(t *testing.T, store *es.Store) string {
	t.Helper()
	return store.Schema()
}

// waitABit yields while polling for a condition (never an assertion on time).
func waitABit() { time.Sleep(10 * time.Millisecond) }
