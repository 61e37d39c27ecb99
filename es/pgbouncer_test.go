package es_test

import (
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
)

// TestPgBouncerTransactionMode runs the store's operations concurrently through a real PgBouncer
// in transaction mode, where consecutive messages of one client may reach different server
// connections, with DisablePreparedStatements as the only setting. Before that setting covered
// both drivers, pgx failed ("prepared statement stmtcache_... does not exist / already
// exists") and lib/pq failed ("bind message supplies 2 parameters, but prepared statement \"\"
// requires 3").
func TestPgBouncerTransactionMode(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	schema := estest.NewSchema(t) // migrated straight on the server, as in CI
	dsn := estest.PgBouncerDSN(t)
	if estest.Driver() == "postgres" {
		var err error
		dsn, err = pgdsn.ForLibPQ(dsn)
		is.NoErr(err)
	}
	db, err := sql.Open(estest.Driver(), dsn)
	is.NoErr(err)
	t.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(16) // more clients than PgBouncer's 4 server connections
	store, err := es.New(db, &es.Config{Schema: schema, DisablePreparedStatements: true, EnableHardDeletes: true})
	is.NoErr(err)
	t.Cleanup(func() { _ = store.Close() })

	const writers, rounds = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds*8)
	check := func(what string, err error) {
		if err != nil {
			errs <- fmt.Errorf("%s: %w", what, err)
		}
	}
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("acc-%d", w)
			for r := range rounds {
				check("append", store.AppendToStream(ctx, stream, es.ExpectedVersion(2*r), bouncerEvents(2)))
				evs, err := store.ReadStreamForward(ctx, stream, 0, 100)
				check("read", err)
				if err == nil && len(evs) != 2*(r+1) {
					check("read", fmt.Errorf("%d events, want %d", len(evs), 2*(r+1)))
				}
				_, err = store.ReadStreamBackward(ctx, stream, -1, 3)
				check("read backward", err)
				_, err = store.ReadAllForward(ctx, 0, 50)
				check("read $all", err)
				check("snapshot", store.RecordSnapshot(ctx, es.SnapshotData{SourceID: stream, SourceVersion: int64(2 * (r + 1)), SourceType: "account", Data: map[string]int{"n": r}}))
				_, err = store.ReadSnapshot(ctx, stream)
				check("read snapshot", err)
				_, err = store.StreamInfo(ctx, stream)
				check("stream info", err)
				if len(evs) > 0 {
					check("link", store.LinkToStream(ctx, "links-"+stream, es.AnyVersion, []uuid.UUID{evs[len(evs)-1].EventID}))
				}
				// In the caller's transaction.
				tx, err := db.BeginTx(ctx, nil)
				check("begin", err)
				if err == nil {
					check("append in tx", store.AppendToStream(ctx, "tx-"+stream, es.AnyVersion, bouncerEvents(1), es.WithTx(tx)))
					check("commit", tx.Commit())
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... and %d more errors", n-5)
	}

	page, err := store.PaginateStreams(ctx, es.PageOptions{PageSize: 100})
	is.NoErr(err)
	is.Equal(page.TotalEntries, 3*writers) // acc-, links-acc-, tx-acc-
	all, err := store.ReadAllForward(ctx, 0, 10000)
	is.NoErr(err)
	is.Equal(len(all), writers*rounds*3) // gap-free, every committed event once
	for i, ev := range all {
		is.Equal(ev.EventNumber, int64(i+1))
	}
	is.NoErr(store.DeleteStream(ctx, "acc-0", es.AnyVersion, es.SoftDelete))
	is.NoErr(store.DeleteStream(ctx, "acc-1", es.AnyVersion, es.HardDelete))
	_, err = store.ReadStreamForward(ctx, "acc-0", 0, 10)
	is.True(errors.Is(err, es.ErrStreamDeleted))
	_, err = store.ReadStreamForward(ctx, "acc-1", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	is.NoErr(store.DeleteSnapshot(ctx, "acc-2"))
}

func bouncerEvents(n int) []es.EventData {
	out := make([]es.EventData, n)
	for i := range out {
		out[i] = es.EventData{EventType: "deposited", Data: map[string]int{"amount": i + 1},
			Metadata: map[string]any{"by": "it's \\ me"}}
	}
	return out
}
