package demo_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/matryer/is"

	"github.com/go-eventstore/eventstore/cmd/es-demo/demo"
	"github.com/go-eventstore/eventstore/estest"
)

func TestMain(m *testing.M) { estest.Main(m) }

// The walkthrough against the test database: every step reports what the store guarantees.
func TestRun(t *testing.T) {
	is := is.New(t)
	var out bytes.Buffer
	is.NoErr(demo.Run(t.Context(), &out, estest.DB(t)))
	text := out.String()
	for _, want := range []string{
		"opening account-bob again is refused: true",
		"wrong expected version = true",
		"all 10 deposits landed: Bob has 70 at version 12",
		"withdrawing 1000 is refused by the domain: true",
		"rebuilt from it and 1 later event(s): balance 87 at version 5",
		"account-alice  Alice     87",
		"account-bob    Bob       70",
		"17 events in $all.",
		"account-bob    11 deposits, 0 withdrawals",
		"its checkpoint: position 17",
		"Done.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// The README's first command, as a user runs it: no DATABASE_URL, a throwaway server.
func TestCommandWithoutDatabaseURL(t *testing.T) {
	if estest.Driver() != estest.Drivers[0] {
		t.Skip("the command picks its own driver; once is enough")
	}
	is := is.New(t)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	cmd := exec.CommandContext(t.Context(), "go", "run", "./cmd/es-demo")
	cmd.Dir = root
	cmd.Env = append(cmd.Environ(), "DATABASE_URL=")
	out, err := cmd.CombinedOutput()
	is.NoErr(err) // exit status 0
	is.True(strings.Contains(string(out), "starting a throwaway PostgreSQL"))
	is.True(strings.Contains(string(out), "Done."))
}
