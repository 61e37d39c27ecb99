// Command es-admin operates an event store: list and search streams, read a stream or $all
// (a table, or JSON lines), tail $all or a category live, list subscriptions with their lag and
// holders, set or reset a checkpoint, and serve a web console:
//
//	es-admin [flags] streams|read|tail|subscriptions|set-checkpoint|reset-checkpoint|serve [flags]
//
// Run es-admin --help for the commands and flags. It is a thin wrapper over package admincli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-eventstore/eventstore/cmd/es-admin/admincli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := admincli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
