package es_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/goose"
)

// exampleStore returns a store on a fresh schema of the test database, and its cleanup. Real
// code opens its own *sql.DB and migrates once, with goose.Up or cmd/es-migrate.
func exampleStore(cfg *es.Config) (*es.Store, *sql.DB, func()) {
	dsn, err := estest.SharedDSN()
	if err != nil {
		panic(err)
	}
	db, err := sql.Open(estest.Driver(), dsn)
	if err != nil {
		panic(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "example_" + hex.EncodeToString(b[:])
	if _, err := goose.Up(context.Background(), db, schema); err != nil {
		panic(err)
	}
	if cfg == nil {
		cfg = &es.Config{}
	}
	cfg.Schema = schema
	store, err := es.New(db, cfg)
	if err != nil {
		panic(err)
	}
	return store, db, func() {
		store.Close()
		_, _ = db.Exec(`DROP SCHEMA "` + schema + `" CASCADE`)
		db.Close()
	}
}

type AccountOpened struct {
	Owner string `json:"owner"`
}

type MoneyDeposited struct {
	Amount int `json:"amount"`
}

func Example() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()

	// Expected version 0: the stream must not exist yet.
	err := store.AppendToStream(ctx, "account-1", 0, []es.EventData{
		{EventType: "AccountOpened", Data: AccountOpened{Owner: "Ada"}, Metadata: map[string]any{"user": "ada@example.com"}},
		{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 100}},
	})
	if err != nil {
		panic(err)
	}
	events, err := store.ReadStreamForward(ctx, "account-1", 0, 100)
	if err != nil {
		panic(err)
	}
	for _, ev := range events {
		fmt.Println(ev.EventNumber, ev.EventType, ev.Data)
	}
	// Output:
	// 1 AccountOpened map[owner:Ada]
	// 2 MoneyDeposited map[amount:100]
}

func ExampleStore_AppendToStream_expectedVersion() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	deposit := []es.EventData{{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 5}}}

	fmt.Println(store.AppendToStream(ctx, "account-2", es.NoStream, deposit))
	err := store.AppendToStream(ctx, "account-2", es.NoStream, deposit)
	fmt.Println(errors.Is(err, es.ErrStreamExists))
	err = store.AppendToStream(ctx, "account-2", 0, deposit)
	fmt.Println(errors.Is(err, es.ErrWrongExpectedVersion))
	fmt.Println(store.AppendToStream(ctx, "account-2", 1, deposit))
	fmt.Println(store.AppendToStream(ctx, "account-2", es.StreamExists, deposit))
	fmt.Println(store.AppendToStream(ctx, "account-2", es.AnyVersion, deposit))
	info, _ := store.StreamInfo(ctx, "account-2")
	fmt.Println("version", info.StreamVersion)
	// Output:
	// <nil>
	// true
	// true
	// <nil>
	// <nil>
	// <nil>
	// version 4
}

func ExampleWithTx() {
	store, db, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	if _, err := db.Exec("CREATE TABLE " + store.Schema() + ".balances (account text PRIMARY KEY, balance int)"); err != nil {
		panic(err)
	}

	// The events and the read model commit together, or not at all.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		panic(err)
	}
	defer tx.Rollback()
	if err := store.AppendToStream(ctx, "account-3", es.NoStream,
		[]es.EventData{{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 42}}}, es.WithTx(tx)); err != nil {
		panic(err)
	}
	if _, err := tx.Exec("INSERT INTO "+store.Schema()+".balances VALUES ($1, $2)", "account-3", 42); err != nil {
		panic(err)
	}
	if err := tx.Commit(); err != nil {
		panic(err)
	}

	var balance int
	_ = db.QueryRow("SELECT balance FROM " + store.Schema() + ".balances").Scan(&balance)
	all, _ := store.ReadAllForward(ctx, 0, 10)
	fmt.Println(balance, len(all), all[0].StreamID)
	// Output: 42 1 account-3
}

func ExampleStore_StreamForward() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	var deposits []es.EventData
	for i := 1; i <= 5; i++ {
		deposits = append(deposits, es.EventData{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: i}})
	}
	if err := store.AppendToStream(ctx, "account-4", es.NoStream, deposits); err != nil {
		panic(err)
	}

	// Two events per query; memory stays flat however long the stream.
	total := 0.0
	for ev, err := range store.StreamForward(ctx, "account-4", 0, es.WithBatchSize(2)) {
		if err != nil {
			panic(err)
		}
		total += ev.Data.(map[string]any)["amount"].(float64)
	}
	fmt.Println(total)
	// Output: 15
}

func ExampleStore_LinkToStream() {
	store, _, cleanup := exampleStore(nil)
	defer cleanup()
	ctx := context.Background()
	for _, s := range []string{"account-5", "account-6"} {
		if err := store.AppendToStream(ctx, s, es.NoStream, []es.EventData{{EventType: "AccountOpened", Data: AccountOpened{Owner: s}}}); err != nil {
			panic(err)
		}
	}
	opened, _ := store.ReadAllForward(ctx, 0, 10, es.WithEventTypes("AccountOpened"))

	// A link stream references the events; they keep their original stream and version.
	if err := store.LinkToStream(ctx, "all-openings", es.NoStream, es.EventIDs(opened)); err != nil {
		panic(err)
	}
	linked, _ := store.ReadStreamForward(ctx, "all-openings", 0, 10)
	for _, ev := range linked {
		fmt.Println(ev.EventNumber, ev.StreamID, ev.StreamVersion)
	}
	// Output:
	// 1 account-5 1
	// 2 account-6 1
}

func ExampleStore_DeleteStream() {
	store, _, cleanup := exampleStore(&es.Config{EnableHardDeletes: true})
	defer cleanup()
	ctx := context.Background()
	ev := []es.EventData{{EventType: "MoneyDeposited", Data: MoneyDeposited{Amount: 1}}}
	_ = store.AppendToStream(ctx, "soft", es.NoStream, ev)
	_ = store.AppendToStream(ctx, "hard", es.NoStream, ev)

	// Soft: the stream is closed, its events stay in $all.
	fmt.Println(store.DeleteStream(ctx, "soft", es.AnyVersion, es.SoftDelete))
	_, err := store.ReadStreamForward(ctx, "soft", 0, 10)
	fmt.Println(errors.Is(err, es.ErrStreamDeleted))

	// Hard: the events are gone, from $all too, and the stream can start over.
	fmt.Println(store.DeleteStream(ctx, "hard", 1, es.HardDelete))
	all, _ := store.ReadAllForward(ctx, 0, 10)
	fmt.Println(len(all), all[0].StreamID)
	fmt.Println(store.AppendToStream(ctx, "hard", es.NoStream, ev))
	// Output:
	// <nil>
	// true
	// <nil>
	// 1 soft
	// <nil>
}

func ExampleStore_RecordSnapshot() {
	ser := es.NewJSONSerializer()
	type Account struct {
		Balance int `json:"balance"`
	}
	ser.MustRegister("Account", Account{})
	store, _, cleanup := exampleStore(&es.Config{Serializer: ser})
	defer cleanup()
	ctx := context.Background()

	if err := store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "account-7", SourceVersion: 12, Data: Account{Balance: 90}}); err != nil {
		panic(err)
	}
	snap, err := store.ReadSnapshot(ctx, "account-7")
	if err != nil {
		panic(err)
	}
	fmt.Println(snap.SourceVersion, snap.SourceType, snap.Data.(Account).Balance)
	// Output: 12 Account 90
}

func ExampleJSONSerializer_Register() {
	ser := es.NewJSONSerializer()
	ser.MustRegister("MoneyDeposited", MoneyDeposited{})
	store, _, cleanup := exampleStore(&es.Config{Serializer: ser})
	defer cleanup()
	ctx := context.Background()

	// No EventType needed: the serializer names registered types, and decodes them back.
	_ = store.AppendToStream(ctx, "account-8", es.NoStream, []es.EventData{{Data: MoneyDeposited{Amount: 3}}})
	events, _ := store.ReadStreamForward(ctx, "account-8", 0, 1)
	fmt.Printf("%s %#v\n", events[0].EventType, events[0].Data)
	// Output: MoneyDeposited es_test.MoneyDeposited{Amount:3}
}
