package writertest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/lakesink/lakesink/writers"
	"github.com/lakesink/lakesink/writers/writertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAcceptanceMemory(t *testing.T) {
	writertest.AcceptanceTest(t, func(t *testing.T) writers.Writer { return writers.NewMemory() })
}
