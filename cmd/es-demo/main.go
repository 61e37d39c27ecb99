// Command es-demo walks through the event store with a small bank-account domain: it opens
// accounts, deposits and withdraws with optimistic concurrency (retrying on a wrong expected
// version), keeps a balances read model in the same transaction as each append, takes a
// snapshot, and reads $all.
//
// With no DATABASE_URL it starts a throwaway PostgreSQL from the installed binaries and removes it
// afterwards. With DATABASE_URL it works in the schema es_demo of that database, which it drops
// and re-creates first.
//
//	go run ./cmd/es-demo
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"

	"github.com/go-eventstore/eventstore/cmd/es-demo/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := demo.Main(ctx, os.Stdout, os.Getenv("DATABASE_URL")); err != nil {
		fmt.Fprintln(os.Stderr, "es-demo:", err)
		os.Exit(1)
	}
}
