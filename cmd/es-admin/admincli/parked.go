package admincli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// ParkedJSON is a parked event as es-admin parked --json prints it.
type ParkedJSON struct {
	ID           int64     `json:"id"` // for retry-parked and discard-parked
	Position     int64     `json:"position"`
	EventID      string    `json:"event_id"`
	Stream       string    `json:"stream"`
	PartitionKey string    `json:"partition_key"`
	Status       string    `json:"status"` // parked, waiting or retry
	Attempts     int       `json:"attempts"`
	ParkedAt     time.Time `json:"parked_at"`
	Error        string    `json:"error"`
}

func parkedJSON(p es.ParkedEvent) ParkedJSON {
	return ParkedJSON{ID: p.ID, Position: p.Position, EventID: p.EventID.String(), Stream: p.Stream,
		PartitionKey: p.PartitionKey, Status: string(p.Status), Attempts: p.Attempts, ParkedAt: p.ParkedAt.UTC(), Error: p.Error}
}

// subscriptionExists fails with es.ErrSubscriptionNotFound when the subscription does not exist:
// the store lists no parked events for it and changes none, which would hide a typo.
func (c *command) subscriptionExists(ctx context.Context, stream, name string) error {
	_, err := c.store.SubscriptionCheckpoint(ctx, stream, name)
	if errors.Is(err, es.ErrSubscriptionNotFound) {
		return fmt.Errorf("no subscription %s on %s: %w", name, stream, es.ErrSubscriptionNotFound)
	}
	return err
}

func cmdParked(ctx context.Context, c *command) error {
	stream, name := c.args[0], c.args[1]
	if err := c.subscriptionExists(ctx, stream, name); err != nil {
		return err
	}
	ps, err := c.store.ListParked(ctx, stream, name)
	if err != nil {
		return err
	}
	if c.opts.json {
		enc := json.NewEncoder(c.out)
		for _, p := range ps {
			if err := enc.Encode(parkedJSON(p)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(c.out, "ID\tPOSITION\tSTREAM\tKEY\tSTATUS\tATTEMPTS\tPARKED (UTC)\tERROR")
	for _, p := range ps {
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\n", p.ID, p.Position, p.Stream, p.PartitionKey, p.Status,
			p.Attempts, p.ParkedAt.UTC().Format(timeLayout), orDash(clip(flat(p.Error), 60)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%d parked events\n", len(ps))
	return nil
}

// parkedIDs reads the ids after STREAM NAME, or --all: one of the two, so that a forgotten id
// never acts on every parked event.
func (c *command) parkedIDs() ([]int64, error) {
	rest := c.args[2:]
	switch {
	case c.opts.all && len(rest) > 0:
		return nil, usagef("give parked event ids or --all, not both")
	case !c.opts.all && len(rest) == 0:
		return nil, usagef("give parked event ids (see es-admin parked %s %s), or --all", c.args[0], c.args[1])
	}
	ids := make([]int64, len(rest))
	for i, a := range rest {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, usagef("parked event id %q: a number, 1 or more", a)
		}
		ids[i] = id
	}
	return ids, nil
}

func cmdRetryParked(ctx context.Context, c *command) error {
	return parkedAction(ctx, c, c.store.RetryParked, "marked for a retry (the projection holding the lease runs them)")
}

func cmdDiscardParked(ctx context.Context, c *command) error {
	return parkedAction(ctx, c, c.store.DiscardParked, "discarded")
}

func parkedAction(ctx context.Context, c *command, act func(context.Context, string, string, ...int64) (int, error), done string) error {
	ids, err := c.parkedIDs()
	if err != nil {
		return err
	}
	stream, name := c.args[0], c.args[1]
	if err := c.subscriptionExists(ctx, stream, name); err != nil {
		return err
	}
	n, err := act(ctx, stream, name, ids...)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%d parked events of %s on %s %s\n", n, name, stream, done)
	if len(ids) > n {
		fmt.Fprintf(c.errOut, "es-admin: %d of the ids given were not acted on: not this projection's, gone, or in another status (see es-admin parked)\n", len(ids)-n)
	}
	return nil
}

// flat puts a text on one line, for a table cell.
func flat(s string) string { return strings.Join(strings.Fields(s), " ") }
