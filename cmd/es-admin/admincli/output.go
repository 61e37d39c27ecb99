package admincli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-eventstore/eventstore/es"
)

// EventJSON is an event as es-admin prints it with --json, one object a line, and as the web
// console's live view receives it.
type EventJSON struct {
	Number        int64           `json:"number"` // the position in the stream read ($all: global)
	ID            string          `json:"id"`
	Stream        string          `json:"stream"`  // the stream it was appended to
	Version       int64           `json:"version"` // its version there
	Type          string          `json:"type"`
	CreatedAt     time.Time       `json:"created_at"`
	CausationID   string          `json:"causation_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
}

// eventJSON converts an event; data the serializer decoded is encoded back as JSON.
func eventJSON(ev es.RecordedEvent) EventJSON {
	j := EventJSON{
		Number: ev.EventNumber, ID: ev.EventID.String(), Stream: ev.StreamID, Version: ev.StreamVersion,
		Type: ev.EventType, CreatedAt: ev.CreatedAt.UTC(), Data: rawJSON(ev.Data),
	}
	if ev.CausationID != [16]byte{} {
		j.CausationID = ev.CausationID.String()
	}
	if ev.CorrelationID != [16]byte{} {
		j.CorrelationID = ev.CorrelationID.String()
	}
	if ev.Metadata != nil {
		j.Metadata = rawJSON(ev.Metadata)
	}
	return j
}

func rawJSON(v any) json.RawMessage {
	if b, ok := v.([]byte); ok {
		if json.Valid(b) {
			return b
		}
		v = string(b)
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(fmt.Sprint(v))
	}
	return b
}

// clip shortens s to n runes for a table cell.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

const timeLayout = "2006-01-02 15:04:05"

func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	return tw
}

func writeEventRow(tw io.Writer, ev es.RecordedEvent) {
	fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", ev.EventNumber, ev.StreamID, ev.StreamVersion, ev.EventType,
		ev.CreatedAt.UTC().Format(timeLayout), clip(string(rawJSON(ev.Data)), 60))
}

const eventHeader = "NUMBER\tSTREAM\tVERSION\tTYPE\tCREATED (UTC)\tDATA"

func cmdStreams(ctx context.Context, c *command) error {
	p, err := c.store.PaginateStreams(ctx, es.PageOptions{
		Search: c.opts.search, PageNumber: c.opts.page, PageSize: c.opts.pageSize,
	})
	if err != nil {
		return err
	}
	if c.opts.json {
		enc := json.NewEncoder(c.out)
		for _, s := range p.Entries {
			if err := enc.Encode(streamJSON(s)); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(c.out, "STREAM\tVERSION\tCREATED (UTC)\tSTATUS")
	for _, s := range p.Entries {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.StreamID, s.StreamVersion, s.CreatedAt.UTC().Format(timeLayout), s.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "page %d of %d (%d streams)\n", p.PageNumber, max(p.TotalPages, 1), p.TotalEntries)
	return nil
}

// StreamJSON is a stream as es-admin streams --json prints it.
type StreamJSON struct {
	Stream    string     `json:"stream"`
	Version   int64      `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	Status    string     `json:"status"`
}

func streamJSON(s es.StreamInfo) StreamJSON {
	j := StreamJSON{Stream: s.StreamID, Version: s.StreamVersion, CreatedAt: s.CreatedAt.UTC(), Status: string(s.Status)}
	if s.DeletedAt != nil {
		t := s.DeletedAt.UTC()
		j.DeletedAt = &t
	}
	return j
}

func cmdRead(ctx context.Context, c *command) error {
	stream := c.args[0]
	count := c.opts.count
	if count < 0 {
		count = 100
	}
	if count == 0 {
		count = math.MaxInt
	}
	var opts []es.Option
	if c.opts.category != "" {
		if stream != es.AllStream {
			return usagef("--category reads $all only")
		}
		opts = append(opts, es.WithCategories(c.opts.category))
	}
	var seq func(func(es.RecordedEvent, error) bool)
	if c.opts.backward {
		from := c.opts.from
		if from < 0 {
			from = -1
		}
		if stream == es.AllStream {
			seq = c.store.StreamAllBackward(ctx, from, opts...)
		} else {
			seq = c.store.StreamBackward(ctx, stream, from, opts...)
		}
	} else {
		from := max(c.opts.from, 0)
		if stream == es.AllStream {
			seq = c.store.StreamAllForward(ctx, from, opts...)
		} else {
			seq = c.store.StreamForward(ctx, stream, from, opts...)
		}
	}
	pr := &progress{w: c.errOut, on: isTerminal(c.errOut)}
	defer pr.done()
	var enc *json.Encoder
	var tw *tabwriter.Writer
	if c.opts.json {
		enc = json.NewEncoder(c.out)
	} else {
		tw = newTable(c.out, eventHeader)
	}
	n := 0
	for ev, err := range seq {
		if err != nil {
			if tw != nil {
				_ = tw.Flush()
			}
			return err
		}
		if enc != nil {
			if err := enc.Encode(eventJSON(ev)); err != nil {
				return err
			}
		} else {
			writeEventRow(tw, ev)
		}
		n++
		pr.report(n)
		if n >= count {
			break
		}
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "%d events\n", n)
	}
	return nil
}

// tailPoll is how often tail looks for new events.
var tailPoll = 200 * time.Millisecond

func cmdTail(ctx context.Context, c *command) error {
	var opts []es.Option
	label := "$all"
	if len(c.args) == 1 {
		opts = append(opts, es.WithCategories(c.args[0]))
		label = "category " + c.args[0]
	}
	info, err := c.store.StreamInfo(ctx, es.AllStream)
	if err != nil {
		return err
	}
	pos := info.StreamVersion
	if !c.opts.json {
		fmt.Fprintf(c.errOut, "following %s from position %d (Ctrl-C stops)\n", label, pos)
	}
	n := 0
	for {
		// The head before the read: a read that finds nothing covered at least up to it.
		h, err := c.store.StreamInfo(ctx, es.AllStream)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		evs, err := c.store.ReadAllForward(ctx, pos+1, 500, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		for _, ev := range evs {
			if c.opts.json {
				if err := json.NewEncoder(c.out).Encode(eventJSON(ev)); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
				writeEventRow(tw, ev)
				_ = tw.Flush()
			}
			pos = ev.EventNumber
			if n++; c.opts.count > 0 && n >= c.opts.count {
				return nil
			}
		}
		if len(evs) > 0 {
			continue // there may be more
		}
		// Nothing matched up to the head: skip to it, so a filter does not rescan.
		pos = max(pos, h.StreamVersion)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tailPoll):
		}
	}
}

// SubscriptionJSON is a subscription as es-admin subscriptions --json prints it.
type SubscriptionJSON struct {
	Stream         string     `json:"stream"`
	Name           string     `json:"name"`
	Segment        int        `json:"segment"`  // 0 of 1 without segments
	Segments       int        `json:"segments"` // a segmented projection is listed once per segment
	Checkpoint     int64      `json:"checkpoint"`
	Head           int64      `json:"head"`
	Lag            int64      `json:"lag"`
	LagSeconds     float64    `json:"lag_seconds"`
	Holder         string     `json:"holder,omitempty"`
	Held           bool       `json:"held"`
	LeaseExpiresAt *time.Time `json:"lease_expires_at,omitempty"`
	Epoch          int64      `json:"epoch"`
	Parked         int64      `json:"parked"` // parked events, any status (es-admin parked lists them)
}

func cmdSubscriptions(ctx context.Context, c *command) error {
	subs, err := c.store.ListSubscriptions(ctx, es.ListSubscriptionsOptions{Stream: c.opts.stream})
	if err != nil {
		return err
	}
	if c.opts.json {
		enc := json.NewEncoder(c.out)
		for _, s := range subs {
			j := SubscriptionJSON{Stream: s.Stream, Name: s.Name, Segment: s.Segment, Segments: s.Segments, Checkpoint: s.Checkpoint, Head: s.Head, Lag: s.Lag,
				LagSeconds: s.LagSeconds, Holder: s.Holder, Held: s.Held, LeaseExpiresAt: s.LeaseExpiresAt, Epoch: s.Epoch, Parked: s.Parked}
			if err := enc.Encode(j); err != nil {
				return err
			}
		}
		return nil
	}
	tw := newTable(c.out, "STREAM\tSUBSCRIPTION\tSEGMENT\tCHECKPOINT\tHEAD\tLAG\tLAG TIME\tHOLDER\tLEASE\tEPOCH\tPARKED")
	for _, s := range subs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n", s.Stream, s.Name, segmentOf(s), s.Checkpoint, s.Head, s.Lag,
			lagTime(s), orDash(s.Holder), leaseState(s), s.Epoch, s.Parked)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%d subscriptions\n", len(subs))
	return nil
}

// segmentOf shows a segment of a segmented projection as "3/16" (its index from 0, of how many),
// and "-" for a subscription without segments.
func segmentOf(s es.SubscriptionInfo) string {
	if s.Segments <= 1 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", s.Segment, s.Segments)
}

func lagTime(s es.SubscriptionInfo) string {
	if s.Lag == 0 {
		return "-"
	}
	return (time.Duration(s.LagSeconds * float64(time.Second))).Round(time.Second).String()
}

func leaseState(s es.SubscriptionInfo) string {
	switch {
	case s.Held:
		return "held"
	case s.Holder != "":
		return "expired"
	default:
		return "free"
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
