package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteMarkdown writes the report as markdown: the settings, the table (workload | driver |
// store | raw | ratio), the notes on particular rows, and how each workload was measured.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# es-bench\n\n")
	for _, s := range rep.Settings {
		fmt.Fprintf(&b, "- %s: %s\n", s[0], s[1])
	}
	if rep.Elapsed > 0 {
		fmt.Fprintf(&b, "- run time: %s\n", rep.Elapsed.Round(time.Second))
	}
	b.WriteString("\nFigures are events per second (higher is better) except the latency row; ratio = store / raw.\n\n")
	b.WriteString("| workload | driver | store | raw | ratio |\n|---|---|--:|--:|--:|\n")
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", cell(r.Workload), r.Driver, r.StoreString(), r.RawString(), r.RatioString())
	}
	var notes []string
	for _, r := range rep.Results {
		for _, n := range r.Notes {
			notes = append(notes, fmt.Sprintf("%s [%s]: %s", r.Workload, r.Driver, n))
		}
		if r.Err != nil {
			notes = append(notes, fmt.Sprintf("%s [%s]: ERROR: %v", r.Workload, r.Driver, r.Err))
		}
	}
	if len(notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", cell(n))
		}
	}
	if len(rep.Method) > 0 {
		b.WriteString("\nMethod:\n\n")
		for _, m := range rep.Method {
			fmt.Fprintf(&b, "- %s\n", m)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
