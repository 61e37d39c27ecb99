package migratecli

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/es"
	"github.com/go-eventstore/eventstore/estest"
	"github.com/go-eventstore/eventstore/internal/pgdsn"
	"github.com/go-eventstore/eventstore/internal/pgerr"
)

// newRole creates a login role, dropped after the test (after the schemas that refer to it).
func newRole(t *testing.T) string {
	t.Helper()
	role := randomName("mc_role_")
	db := estest.DB(t)
	if _, err := db.ExecContext(t.Context(), "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := db.ExecContext(ctx, "DROP OWNED BY "+role+"; DROP ROLE "+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	return role
}

// TestGrantLeastPrivilege runs the store's operations as a role given only what es-migrate grant
// gives, and shows that PostgreSQL itself refuses to change a stored event, whatever the trigger.
func TestGrantLeastPrivilege(t *testing.T) {
	t.Parallel()
	is := is.New(t)
	ctx := t.Context()
	role := newRole(t)
	schema, dsn := newSchemaName(t), estest.DSN(t)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "grant", "--role", role), ExitFailure, "holds no event store", "init")
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "init"), ExitOK)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "grant", "--role", "nobody_here"), ExitFailure, `role "nobody_here" does not exist`)
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "grant", "--role", "postgres"), ExitFailure, "superuser")
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "grant", "--role", role), ExitOK,
		fmt.Sprintf("granted role %q", role), "no hard deletes")

	appDSN := pgdsn.Set(dsn, map[string]string{"user": role})
	app := openDB(t, appDSN)
	store, err := es.New(app, &es.Config{Schema: schema, ListenDSN: appDSN, EnableHardDeletes: true})
	is.NoErr(err) // reads the migration version
	t.Cleanup(func() { _ = store.Close() })

	sub, err := store.SubscribeToAll(ctx, "projection", &es.SubscriptionOptions{StartFrom: es.StartOrigin, BufferSize: 10})
	is.NoErr(err)
	defer sub.Close()

	evs := []es.EventData{{EventType: "opened", Data: map[string]any{"owner": "ada"}}, {EventType: "deposited", Data: map[string]any{"amount": 5}}}
	is.NoErr(store.AppendToStream(ctx, "account-1", es.NoStream, evs))
	is.NoErr(store.AppendToStream(ctx, "account-2", es.NoStream, evs[:1]))
	got, err := store.ReadStreamForward(ctx, "account-1", 0, 10)
	is.NoErr(err)
	is.Equal(len(got), 2)
	all, err := store.ReadAllForward(ctx, 0, 10)
	is.NoErr(err)
	is.Equal(len(all), 3)
	is.NoErr(store.LinkToStream(ctx, "opened", es.AnyVersion, es.EventIDs(all[:1])))
	is.NoErr(store.RecordSnapshot(ctx, es.SnapshotData{SourceID: "account-1", SourceVersion: 2, SourceType: "account", Data: map[string]any{"balance": 5}}))
	_, err = store.ReadSnapshot(ctx, "account-1")
	is.NoErr(err)
	is.NoErr(store.DeleteSnapshot(ctx, "account-1"))
	is.NoErr(store.DeleteStream(ctx, "account-2", es.AnyVersion, es.SoftDelete))
	delivered := 0
	for delivered < 3 {
		batch := <-sub.Events()
		delivered += len(batch)
		is.NoErr(sub.Ack(batch...))
	}

	// Changing history is refused by PostgreSQL's privileges, not only by the trigger.
	for _, q := range []string{
		"UPDATE %s.events SET event_type = 'forged'",
		"DELETE FROM %s.events",
		"TRUNCATE %s.events",
		"ALTER TABLE %s.events DISABLE TRIGGER refuse_change",
		"UPDATE %s.all_events SET position = position + 1",
		"DELETE FROM %s.streams",
		"DROP TABLE %s.links",
	} {
		_, err := app.ExecContext(ctx, fmt.Sprintf(q, schema))
		if !pgerr.Is(err, pgerr.InsufficientPrivilege) {
			t.Errorf("%s as role %s: %v, want insufficient privilege (%s)", fmt.Sprintf(q, schema), role, err, pgerr.InsufficientPrivilege)
		}
	}
	// Hard deletes need the explicit grant.
	err = store.DeleteStream(ctx, "account-1", es.AnyVersion, es.HardDelete)
	is.True(pgerr.Is(err, pgerr.InsufficientPrivilege))
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "grant", "--role", role, "--hard-deletes"), ExitOK, "hard deletes allowed")
	is.NoErr(store.DeleteStream(ctx, "account-1", es.AnyVersion, es.HardDelete))
	_, err = store.ReadStreamForward(ctx, "account-1", 0, 10)
	is.True(errors.Is(err, es.ErrStreamNotFound))
	// Granting again without it takes hard deletes back.
	expect(t, cli(t, "--database-url", dsn, "--schema", schema, "grant", "--role", role), ExitOK)
	_, err = app.ExecContext(ctx, fmt.Sprintf("DELETE FROM %s.events", schema))
	is.True(pgerr.Is(err, pgerr.InsufficientPrivilege))
}
