// Package schema embeds the event store's goose migration files, the one definition of its
// tables. sqlc reads the same files to type-check the queries in queries/.
package schema

import "embed"

// FS holds the migration files, named NNNNN_name.sql.
//
//go:embed *.sql
var FS embed.FS
