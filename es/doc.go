// Package es is an event store on PostgreSQL for CQRS and event sourcing.
//
// Streams are identified by strings and appended to atomically with optimistic concurrency
// (ExpectedVersion). Every committed event also appears once in the global AllStream ("$all"),
// gap-free and in commit order, and no reader or subscriber can skip one of its positions: appends
// lock only their own stream, and a background sequencer gives committed events their $all
// positions in batches, under a lock that only sequencer passes take.
//
// Everything runs on the caller's transaction when given WithTx, so an application appends
// events and updates its own read-model tables atomically:
//
//	tx, _ := db.BeginTx(ctx, nil)
//	defer tx.Rollback()
//	err := store.AppendToStream(ctx, "account-1", es.ExpectedVersion(version), events, es.WithTx(tx))
//	// ... UPDATE balances ... in tx
//	err = tx.Commit()
//
// A Store works in one Postgres schema (Config.Schema); many stores, one per tenant, can share
// one *sql.DB. Create the tables with the goose package or cmd/es-migrate before calling New.
// The store works with any database/sql driver for Postgres; lib/pq and pgx's stdlib are tested.
//
// Errors wrap sentinels (ErrWrongExpectedVersion, ErrStreamNotFound, ...) with the operation and
// the stream; match them with errors.Is. Bad arguments return ErrInvalidArgument and change
// nothing.
package es
