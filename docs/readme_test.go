// Package docs_test checks that every Go snippet of the README compiles.
package docs_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// prelude declares what the README's snippets take as given: the application's context, pool,
// store and domain types.
const prelude = `package snippets

import (
	"context"
	"database/sql"

	"github.com/go-eventstore/eventstore/es"
)

var (
	ctx    = context.Background()
	db     *sql.DB
	store  *es.Store
	id     = "account-1"
	v      int64
	b      int
	last   int64
	events    []es.EventData
	withdrawn []es.EventData
	deposited []es.EventData
	acc    *Account
	handler es.Handler
)

type MoneyDeposited struct{ Amount int }

type Account struct{ Balance int }

func (a *Account) Apply(ev es.RecordedEvent)                  {}
func (a *Account) Withdraw(amount int) ([]es.EventData, error) { return nil, nil }

func load(ctx context.Context, store *es.Store, id string) (*Account, int64) { return &Account{}, 0 }

func project(ctx context.Context, batch []es.RecordedEvent) error { return nil }

func amountOf(ev es.RecordedEvent) int { return 0 }
`

// packages are the imports a snippet may use without writing them.
var packages = map[string]string{
	"es":      "github.com/go-eventstore/eventstore/es",
	"estest":  "github.com/go-eventstore/eventstore/estest",
	"goose":   "github.com/go-eventstore/eventstore/goose",
	"context": "context",
	"errors":  "errors",
	"fmt":     "fmt",
	"os":      "os",
	"sql":     "database/sql",
	"testing": "testing",
	"time":    "time",
}

var (
	goBlock     = regexp.MustCompile("(?s)```go\n(.*?)```")
	importBlock = regexp.MustCompile(`(?s)^import \((.*?)\)\n`)
)

// TestReadmeSnippetsCompile writes each Go snippet of README.md into a package of its own (in a
// function returning error, unless it declares functions itself) and builds it.
func TestReadmeSnippetsCompile(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := goBlock.FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 10 {
		t.Fatalf("found %d Go snippets in README.md; the pattern is broken", len(blocks))
	}
	// Inside the module, so that its packages and dependencies resolve; under testdata, so that
	// ./... never sees it.
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("testdata", "snippets-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "prelude.go"), []byte(prelude), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, m := range blocks {
		src := m[1]
		imports := map[string]bool{}
		if im := importBlock.FindStringSubmatch(src); im != nil {
			for _, line := range strings.Split(im[1], "\n") {
				if line = strings.TrimSpace(line); line != "" {
					imports[line] = true
				}
			}
			src = src[len(im[0]):]
		}
		for name, path := range packages {
			if regexp.MustCompile(`\b` + name + `\.`).MatchString(src) {
				imports[fmt.Sprintf("%q", path)] = true
			}
		}
		var f strings.Builder
		fmt.Fprintf(&f, "package snippets\n\n// README.md, Go snippet %d.\n\nimport (\n", i+1)
		for im := range imports {
			fmt.Fprintf(&f, "\t%s\n", im)
		}
		f.WriteString(")\n\n")
		if regexp.MustCompile(`(?m)^func `).MatchString(src) {
			f.WriteString(src)
		} else {
			fmt.Fprintf(&f, "func snippet%d() error {\n%s\nreturn nil\n}\n", i+1, src)
		}
		name := fmt.Sprintf("snippet%02d.go", i+1)
		if strings.Contains(src, "*testing.") {
			name = fmt.Sprintf("snippet%02d_test.go", i+1)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(f.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	// go vet type-checks the package and its test files, and catches unused variables.
	cmd := exec.CommandContext(t.Context(), goBin, "vet", "-unreachable=false", "./"+filepath.ToSlash(dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("README.md snippets do not compile (snippet N is README's Nth Go block):\n%s", out)
	}
}
