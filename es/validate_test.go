package es_test

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
)

// txUsable fails the test unless tx can still run a statement: a refused call must not have
// aborted it.
func txUsable(ctx context.Context, t *testing.T, tx *sql.Tx, what string) {
	t.Helper()
	var one int
	if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("%s: the caller's transaction is no longer usable: %v", what, err)
	}
}

// Every text, id and count argument is checked before it reaches Postgres: a bad one is
// ErrInvalidArgument, changes nothing, and leaves the caller's transaction usable.
func TestInvalidArgumentsKeepTheTransaction(t *testing.T) {
	t.Parallel()
	store, db, ctx, is := estest.NewStore(t, nil), estest.DB(t), t.Context(), is.New(t)
	is.NoErr(store.AppendToStream(ctx, "ok-1", es.NoStream, events(1)))

	long := strings.Repeat("x", es.MaxStreamNameLen+1)
	huge := strings.Repeat("é", 2002) // 4,004 bytes: once a raw btree error
	nul := "bad\x00name"
	badUTF8 := "bad\xffname"
	longType := strings.Repeat("t", es.MaxEventTypeLen+1)
	ev := func(typ string) []es.EventData { return []es.EventData{{EventType: typ, Data: 1}} }

	calls := map[string]func(tx *sql.Tx) error{}
	for name, bad := range map[string]string{"long": long, "huge": huge, "nul": nul, "utf8": badUTF8} {
		calls["append stream "+name] = func(tx *sql.Tx) error {
			return store.AppendToStream(ctx, bad, es.AnyVersion, events(1), es.WithTx(tx))
		}
		calls["append type "+name] = func(tx *sql.Tx) error {
			return store.AppendToStream(ctx, "ok-2", es.AnyVersion, append(events(2), ev(bad)...), es.WithTx(tx))
		}
		calls["link "+name] = func(tx *sql.Tx) error {
			return store.LinkToStream(ctx, bad, es.AnyVersion, []uuid.UUID{uuid.New()}, es.WithTx(tx))
		}
		calls["read forward "+name] = func(tx *sql.Tx) error {
			_, err := store.ReadStreamForward(ctx, bad, 0, 10, es.WithTx(tx))
			return err
		}
		calls["read backward "+name] = func(tx *sql.Tx) error {
			_, err := store.ReadStreamBackward(ctx, bad, -1, 10, es.WithTx(tx))
			return err
		}
		calls["read $all by type "+name] = func(tx *sql.Tx) error {
			_, err := store.ReadAllForward(ctx, 0, 10, es.WithTx(tx), es.WithEventTypes("ok", bad))
			return err
		}
		calls["iterate "+name] = func(tx *sql.Tx) error {
			for _, err := range store.StreamForward(ctx, bad, 0, es.WithTx(tx)) {
				return err
			}
			return nil
		}
		calls["delete "+name] = func(tx *sql.Tx) error {
			return store.DeleteStream(ctx, bad, es.AnyVersion, es.SoftDelete, es.WithTx(tx))
		}
		calls["info "+name] = func(tx *sql.Tx) error {
			_, err := store.StreamInfo(ctx, bad, es.WithTx(tx))
			return err
		}
		calls["paginate "+name] = func(tx *sql.Tx) error {
			if name == "long" {
				bad = strings.Repeat("x", es.MaxSearchLen+1)
			}
			_, err := store.PaginateStreams(ctx, es.PageOptions{Search: bad}, es.WithTx(tx))
			return err
		}
		calls["read snapshot "+name] = func(tx *sql.Tx) error {
			_, err := store.ReadSnapshot(ctx, bad, es.WithTx(tx))
			return err
		}
		calls["record snapshot "+name] = func(tx *sql.Tx) error {
			return store.RecordSnapshot(ctx, es.SnapshotData{SourceID: bad, SourceType: "t", Data: 1}, es.WithTx(tx))
		}
		calls["record snapshot type "+name] = func(tx *sql.Tx) error {
			return store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "ok", SourceType: bad, Data: 1}, es.WithTx(tx))
		}
		calls["delete snapshot "+name] = func(tx *sql.Tx) error {
			return store.DeleteSnapshot(ctx, bad, es.WithTx(tx))
		}
	}
	calls["append long type"] = func(tx *sql.Tx) error {
		return store.AppendToStream(ctx, "ok-2", es.AnyVersion, ev(longType), es.WithTx(tx))
	}
	calls["read count 0"] = func(tx *sql.Tx) error {
		_, err := store.ReadStreamForward(ctx, "ok-1", 0, 0, es.WithTx(tx))
		return err
	}
	calls["read negative start"] = func(tx *sql.Tx) error {
		_, err := store.ReadStreamForward(ctx, "ok-1", -5, 10, es.WithTx(tx))
		return err
	}
	calls["read $all count -1"] = func(tx *sql.Tx) error {
		_, err := store.ReadAllForward(ctx, 0, -1, es.WithTx(tx))
		return err
	}
	calls["backward start -2"] = func(tx *sql.Tx) error {
		_, err := store.ReadAllBackward(ctx, -2, 1, es.WithTx(tx))
		return err
	}
	calls["paginate beyond int64"] = func(tx *sql.Tx) error {
		_, err := store.PaginateStreams(ctx, es.PageOptions{PageSize: math.MaxInt, PageNumber: math.MaxInt}, es.WithTx(tx))
		return err
	}
	calls["link nil id"] = func(tx *sql.Tx) error {
		return store.LinkToStream(ctx, "ok-3", es.AnyVersion, []uuid.UUID{uuid.Nil}, es.WithTx(tx))
	}
	calls["too many types"] = func(tx *sql.Tx) error {
		types := make([]string, es.MaxFilterValues+1)
		for i := range types {
			types[i] = "t"
		}
		_, err := store.ReadAllForward(ctx, 0, 1, es.WithTx(tx), es.WithEventTypes(types...))
		return err
	}

	tx, err := db.BeginTx(ctx, nil)
	is.NoErr(err)
	defer tx.Rollback()
	for name, call := range calls {
		err := call(tx)
		if !errors.Is(err, es.ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
		if err != nil && len(err.Error()) > 400 {
			t.Errorf("%s: error message of %d bytes", name, len(err.Error()))
		}
		txUsable(ctx, t, tx, name)
	}
	is.NoErr(tx.Commit())
	page, err := store.PaginateStreams(ctx, es.PageOptions{})
	is.NoErr(err)
	is.Equal(page.TotalEntries, 1) // only ok-1: nothing was written
}

// Names at their limits work everywhere, and a read may ask for math.MaxInt events.
func TestArgumentLimits(t *testing.T) {
	store, ctx, is := setupAppend(t)
	stream := strings.Repeat("s", es.MaxStreamNameLen)
	typ := strings.Repeat("t", es.MaxEventTypeLen)
	is.NoErr(store.AppendToStream(ctx, stream, es.NoStream, []es.EventData{{EventType: typ, Data: 1}, {EventType: "ünïcode ✓", Data: 2}}))
	got, err := store.ReadStreamForward(ctx, stream, 0, math.MaxInt)
	is.NoErr(err)
	is.Equal(len(got), 2)
	is.Equal(got[0].EventType, typ)
	got, err = store.ReadStreamBackward(ctx, stream, -1, math.MaxInt)
	is.NoErr(err)
	is.Equal(len(got), 2)
	got, err = store.ReadAllForward(ctx, 0, math.MaxInt, es.WithEventTypes(typ))
	is.NoErr(err)
	is.Equal(len(got), 1)
	got, err = store.ReadStreamForward(ctx, stream, math.MaxInt64, 1)
	is.NoErr(err)
	is.Equal(len(got), 0)
	info, err := store.StreamInfo(ctx, stream)
	is.NoErr(err)
	is.Equal(info.StreamVersion, int64(2))

	source := strings.Repeat("x", es.MaxSourceIDLen)
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: source, SourceType: strings.Repeat("y", es.MaxSourceIDLen), Data: 1}))
	_, err = store.ReadSnapshot(ctx, source)
	is.NoErr(err)
	page, err := store.PaginateStreams(ctx, es.PageOptions{Search: strings.Repeat("s", es.MaxSearchLen)})
	is.NoErr(err)
	is.Equal(page.TotalEntries, 1)
	is.NoErr(store.DeleteStream(ctx, stream, 2, es.SoftDelete))
}

// FuzzAppendRead appends and reads with arbitrary names, types, positions and counts inside a
// caller's transaction: every refusal is one of the store's sentinels, never a raw database
// error, and the transaction stays usable. `go test` runs the seed corpus; `go test -fuzz
// FuzzAppendRead ./es` explores further.
func FuzzAppendRead(f *testing.F) {
	f.Add("account-1", "deposited", int64(0), 10, int64(-1))
	f.Add(strings.Repeat("é", 2002), "t", int64(0), 1, int64(0))
	f.Add("nul\x00", "t", int64(0), 1, int64(0))
	f.Add("s", "nul\x00type", int64(0), 1, int64(0))
	f.Add("s", "\xff\xfe", int64(0), 1, int64(0))
	f.Add("s", "t", int64(0), math.MaxInt, int64(math.MaxInt64))
	f.Add("s", "t", int64(math.MaxInt64), -1, int64(-3))
	f.Add("$all", "t", int64(-1), 0, int64(-2))
	f.Add("", "", int64(math.MinInt64), math.MinInt, int64(math.MinInt64))
	f.Add("a-b-c", strings.Repeat("t", 1025), int64(1), 1, int64(0))
	// One store for every input: a schema per input would be slow. Each input runs in a
	// transaction that is rolled back.
	store, err := es.New(estest.DB(f), &es.Config{Schema: estest.NewSchema(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = store.Close() })
	f.Fuzz(func(t *testing.T, stream, typ string, start int64, count int, expected int64) {
		db, ctx := estest.DB(t), t.Context()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		err = store.AppendToStream(ctx, stream, es.ExpectedVersion(expected), []es.EventData{{EventType: typ, Data: 1}}, es.WithTx(tx))
		checkRefusal(t, "append", err)
		validName := stream != "" && len(stream) <= es.MaxStreamNameLen && utf8.ValidString(stream) && !strings.ContainsRune(stream, 0)
		validType := typ != "" && len(typ) <= es.MaxEventTypeLen && utf8.ValidString(typ) && !strings.ContainsRune(typ, 0)
		if (!validName || !validType) && !errors.Is(err, es.ErrInvalidArgument) {
			t.Fatalf("append(%q, %q) = %v, want ErrInvalidArgument", stream, typ, err)
		}
		txUsable(ctx, t, tx, "append")
		_, err = store.ReadStreamForward(ctx, stream, start, count, es.WithTx(tx))
		checkRefusal(t, "read forward", err)
		txUsable(ctx, t, tx, "read forward")
		_, err = store.ReadStreamBackward(ctx, stream, start, count, es.WithTx(tx))
		checkRefusal(t, "read backward", err)
		txUsable(ctx, t, tx, "read backward")
		_, err = store.ReadAllForward(ctx, start, count, es.WithTx(tx), es.WithEventTypes(typ))
		checkRefusal(t, "read $all", err)
		txUsable(ctx, t, tx, "read $all")
		_, err = store.StreamInfo(ctx, stream, es.WithTx(tx))
		checkRefusal(t, "stream info", err)
		txUsable(ctx, t, tx, "stream info")
	})
}

// checkRefusal fails the test unless err is nil or wraps one of the store's sentinels.
func checkRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, known := range []error{
		es.ErrInvalidArgument, es.ErrWrongExpectedVersion, es.ErrStreamExists, es.ErrStreamNotFound,
		es.ErrStreamDeleted, es.ErrCannotAppendToAll, es.ErrDuplicateEvent,
	} {
		if errors.Is(err, known) {
			return
		}
	}
	t.Fatalf("%s: unexpected error %v", what, err)
}
