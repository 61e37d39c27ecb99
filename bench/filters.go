package bench

import (
	"github.com/go-eventstore/eventstore/internal/pgident"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// Filters preloads Config.LoadEvents events spread over 100 categories and 100 event types (1%
// each) plus a 0.1% category, then measures category reads and filtered $all catch-ups against
// keyset-paged SELECTs of the same rows from a plain table with the same indexes.
const Filters = "filters"

// rawSerializer hands every event's data back as the stored JSON, whatever its type, as the
// other workloads' registered json.RawMessage type does, so reads copy instead of decoding.
type rawSerializer struct{ *es.JSONSerializer }

// Unmarshal returns data as it is.
func (rawSerializer) Unmarshal(_ string, data []byte) (any, error) { return json.RawMessage(data), nil }

// filters runs the Filters workload under one driver.
func (r *runner) filters(ctx context.Context, e *env) error {
	n := r.cfg.LoadEvents
	r.progress("filters [%s]: migrating a fresh schema", e.driver)
	f, err := e.newFixture(ctx)
	if err != nil {
		return fmt.Errorf("filters [%s]: %w", e.driver, err)
	}
	defer f.close()
	store, err := es.New(e.db, &es.Config{Schema: f.schema, Serializer: rawSerializer{es.NewJSONSerializer()}, Logger: r.cfg.Logger})
	if err != nil {
		return err
	}
	defer store.Close()
	fail := func(what string, err error) error {
		res := Result{Workload: "filters: " + what, Driver: e.driver, Err: err}
		r.add(res)
		return fmt.Errorf("filters [%s]: %s: %w", e.driver, what, err)
	}

	// Preload: appends of 1000 events, one stream each, categories c00..c99 in turn, types
	// t00..t99 within each append; one stream of the category "rare" gets 0.1% of the events.
	batch := min(1000, n)
	appends := max(1, n/batch)
	n = appends * batch
	rare := max(1, n/1000)
	events := make([]es.EventData, batch)
	for j := range events {
		events[j] = es.EventData{EventType: fmt.Sprintf("t%02d", j%100), Data: payload, Metadata: metadata}
	}
	if err := e.pool(ctx, 4); err != nil {
		return fail("pool", err)
	}
	r.progress("filters [%s]: preloading %s events", e.driver, thousands(int64(n)))
	var next atomic.Int64
	var wg sync.WaitGroup
	var errMu sync.Mutex
	var loadErr error
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= appends {
					return
				}
				var err error
				if i == appends/2 { // in appends of at most batch events
					for done := 0; done < rare && err == nil; done += batch {
						err = store.AppendToStream(ctx, "rare-1", es.ExpectedVersion(done), events[:min(batch, rare-done)])
					}
				}
				if err == nil {
					err = store.AppendToStream(ctx, fmt.Sprintf("c%02d-%d", i%100, i), es.NoStream, events)
				}
				if err != nil {
					errMu.Lock()
					loadErr = errors.Join(loadErr, err)
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if loadErr != nil {
		return fail("preload", loadErr)
	}
	if _, err := store.ReadAllBackward(ctx, -1, 1); err != nil { // settles $all
		return fail("preload", err)
	}
	// The baseline: the same rows in one plain table with the position, category and type
	// columns and the same two indexes, built from the store's rows.
	s := pgident.Quote(f.schema) + "."
	if _, err := e.db.ExecContext(ctx, `CREATE TABLE `+s+`raw_filter AS
SELECT a.position, st.stream_name, a.category, ev.event_type, ev.event_id, ev.stream_version, ev.data, ev.metadata, ev.created_at
FROM `+s+`all_events a JOIN `+s+`events ev USING (stream_pk, stream_version) JOIN `+s+`streams st ON st.id = a.stream_pk;
ALTER TABLE `+s+`raw_filter ADD PRIMARY KEY (position);
CREATE INDEX ON `+s+`raw_filter (category, position);
CREATE INDEX ON `+s+`raw_filter (event_type, position)`); err != nil {
		return fail("baseline table", err)
	}
	r.progress("filters [%s]: VACUUM (ANALYZE) and CHECKPOINT", e.driver)
	if err := f.vacuum(ctx); err != nil {
		return fail("vacuum", err)
	}
	e.checkpoint(ctx)

	rawPage := func(where string, arg any) func(ctx context.Context) (int, error) {
		q := `SELECT position, stream_name, event_id, stream_version, event_type, data, metadata, created_at FROM ` + s +
			`raw_filter WHERE ` + where + ` AND position > $2 ORDER BY position LIMIT 1000`
		return func(ctx context.Context) (int, error) {
			stmt, err := e.db.PrepareContext(ctx, q)
			if err != nil {
				return 0, err
			}
			defer stmt.Close()
			total, last := 0, int64(0)
			for {
				rows, err := stmt.QueryContext(ctx, arg, last)
				if err != nil {
					return total, err
				}
				got := 0
				for rows.Next() {
					var ev rawEvent
					if err := rows.Scan(&last, &ev.stream, &ev.id, &ev.version, &ev.typ, &ev.data, &ev.metadata, &ev.createdAt); err != nil {
						rows.Close()
						return total, err
					}
					got++
				}
				rows.Close()
				if err := rows.Err(); err != nil {
					return total, err
				}
				total += got
				if got < 1000 {
					return total, nil
				}
			}
		}
	}
	storeIter := func(read func(ctx context.Context) func(func(es.RecordedEvent, error) bool)) func(ctx context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			total := 0
			for _, err := range read(ctx) {
				if err != nil {
					return total, err
				}
				total++
			}
			return total, nil
		}
	}
	page := es.WithBatchSize(1000)
	// The category (and prefix) read: c07, or the last category loaded in a small run.
	k := 7 % min(appends, 100)
	cat := fmt.Sprintf("c%02d", k)
	catCount := 0
	for i := range appends {
		if i%100 == k {
			catCount += batch
		}
	}
	typeCount := 0 // t07 events: 1% of every append, and those of the rare stream
	for j := range batch {
		if j%100 == 7 {
			typeCount += appends
		}
	}
	for j := range rare {
		if j%batch%100 == 7 {
			typeCount++
		}
	}
	total := n + rare
	pct := func(c int) string { return fmt.Sprintf("%.2g%%", 100*float64(c)/float64(total)) }
	cases := []struct {
		what       string
		want       int
		store, raw func(ctx context.Context) (int, error)
	}{
		{fmt.Sprintf("read a %s category (%s events) of %s, pages of 1,000", pct(catCount), thousands(int64(catCount)), thousands(int64(total))), catCount,
			storeIter(func(ctx context.Context) func(func(es.RecordedEvent, error) bool) {
				return store.StreamCategoryForward(ctx, cat, 0, page)
			}), rawPage("category = $1", cat)},
		{fmt.Sprintf("read a %s category (%s events) of %s, pages of 1,000", pct(rare), thousands(int64(rare)), thousands(int64(total))), rare,
			storeIter(func(ctx context.Context) func(func(es.RecordedEvent, error) bool) {
				return store.StreamCategoryForward(ctx, "rare", 0, page)
			}), rawPage("category = $1", "rare")},
		{fmt.Sprintf("filtered $all catch-up, %s event type (index), pages of 1,000", pct(typeCount)), typeCount,
			storeIter(func(ctx context.Context) func(func(es.RecordedEvent, error) bool) {
				return store.StreamAllForward(ctx, 0, page, es.WithEventTypes("t07"))
			}), rawPage("event_type = $1", "t07")},
		{fmt.Sprintf("filtered $all catch-up, %s stream-name prefix without '-' (scans $all), pages of 1,000", pct(catCount)), catCount,
			storeIter(func(ctx context.Context) func(func(es.RecordedEvent, error) bool) {
				return store.StreamAllForward(ctx, 0, page, es.WithStreamPrefixes(cat))
			}), rawPage("starts_with(stream_name, $1)", cat)},
	}
	var errs []error
	for _, c := range cases {
		res := Result{Workload: c.what, Driver: e.driver}
		var storeDur, rawDur time.Duration
		for range r.cfg.Rounds {
			for i, side := range []func(context.Context) (int, error){c.store, c.raw} {
				began := time.Now()
				got, err := side(ctx)
				d := time.Since(began)
				if err == nil && got != c.want {
					err = fmt.Errorf("read %d events, want %d", got, c.want)
				}
				if err != nil {
					res.Err = errors.Join(res.Err, err)
					continue
				}
				if i == 0 {
					storeDur += d
				} else {
					rawDur += d
				}
			}
		}
		rounds := time.Duration(r.cfg.Rounds)
		if storeDur > 0 {
			res.Store = float64(c.want) * float64(r.cfg.Rounds) / storeDur.Seconds()
		}
		if rawDur > 0 {
			res.Raw = float64(c.want) * float64(r.cfg.Rounds) / rawDur.Seconds()
		}
		res.Notes = append(res.Notes, fmt.Sprintf("one full read: store %s, raw %s", ms(storeDur/rounds), ms(rawDur/rounds)))
		r.add(res)
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("%s [%s]: %w", c.what, e.driver, res.Err))
		}
	}
	return errors.Join(errs...)
}
