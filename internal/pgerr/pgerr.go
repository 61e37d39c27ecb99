// Package pgerr is the one place that names PostgreSQL error codes (SQLSTATE) and reads them from
// driver errors. lib/pq's and pgx's errors both implement SQLState() string, so no driver is
// imported for this.
package pgerr

import "errors"

// SQLSTATE codes the event store and its tools act on. See the PostgreSQL manual, appendix
// "PostgreSQL Error Codes".
const (
	UniqueViolation              = "23505" // unique_violation
	ForeignKeyViolation          = "23503" // foreign_key_violation
	RestrictViolation            = "23001" // restrict_violation: raised by the event tables' guard trigger
	InsufficientPrivilege        = "42501" // insufficient_privilege
	UndefinedTable               = "42P01" // undefined_table
	UndefinedFunction            = "42883" // undefined_function
	UndefinedObject              = "42704" // undefined_object (for example an unknown role)
	DuplicateDatabase            = "42P04" // duplicate_database
	DuplicateSchema              = "42P06" // duplicate_schema
	DuplicateObject              = "42710" // duplicate_object (for example a role that exists)
	InvalidCatalogName           = "3D000" // invalid_catalog_name: the database does not exist
	InvalidSchemaName            = "3F000" // invalid_schema_name: the schema does not exist
	DependentObjectsStillExist   = "2BP01" // dependent_objects_still_exist
	ObjectInUse                  = "55006" // object_in_use (for example a database with sessions)
	InvalidPassword              = "28P01" // invalid_password: password authentication failed
	InvalidAuthorization         = "28000" // invalid_authorization_specification: no pg_hba.conf entry, unknown role
	InvalidSQLStatementName      = "26000" // invalid_sql_statement_name: a prepared statement that does not exist
	DuplicatePreparedStatement   = "42P05" // duplicate_prepared_statement
	ProtocolViolation            = "08P01" // protocol_violation
	CannotConnectNow             = "57P03" // cannot_connect_now: the server is starting up or shutting down
	TooManyConnections           = "53300" // too_many_connections
	ReadOnlySQLTransaction       = "25006" // read_only_sql_transaction
	InFailedSQLTransaction       = "25P02" // in_failed_sql_transaction
	QueryCanceled                = "57014" // query_canceled
	AdminShutdown                = "57P01" // admin_shutdown
	UndefinedColumn              = "42703" // undefined_column
	InvalidParameterValue        = "22023" // invalid_parameter_value
	ObjectNotInPrerequisiteState = "55000" // object_not_in_prerequisite_state
)

// Code returns the SQLSTATE of err, or "" when err carries none (not a server error).
func Code(err error) string {
	var s interface{ SQLState() string }
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}

// Is reports whether err carries one of the SQLSTATE codes.
func Is(err error, codes ...string) bool {
	c := Code(err)
	if c == "" {
		return false
	}
	for _, code := range codes {
		if c == code {
			return true
		}
	}
	return false
}
