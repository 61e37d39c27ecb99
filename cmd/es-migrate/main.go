// Command es-migrate creates, migrates, inspects, resets and drops the PostgreSQL database and
// schema of an event store, for CI and deployments:
//
//	es-migrate [flags] create|init|migrate|status|reset|drop [flags]
//
// Run es-migrate --help for the commands and flags. It is a thin wrapper over package migratecli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-eventstore/eventstore/cmd/es-migrate/migratecli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := migratecli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
