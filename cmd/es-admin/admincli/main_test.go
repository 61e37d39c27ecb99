package admincli

import (
	"testing"

	"github.com/go-eventstore/eventstore/estest"
)

func TestMain(m *testing.M) { estest.Main(m) }
