package agent

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// stackError formats with %+v as go-mysql's (pingcap) errors do: its message
// followed by a stack trace.
type stackError struct{}

func (stackError) Error() string { return "connection reset by peer" }
func (e stackError) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, e.Error())
	if f.Flag('+') {
		fmt.Fprint(f, "\ngithub.com/pingcap/errors.AddStack\n\t/root/go/pkg/mod/errors.go:174")
	}
}

// TestLoggerErrorsWithoutStacks: an error attribute is logged as its
// message, one line, in text and in JSON.
func TestLoggerErrorsWithoutStacks(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log, closer, err := NewLogger(LogConfig{Format: format, Level: "info"}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		log.Warn("replica connection refused", "err", stackError{})
		closer.Close()
		out := buf.String()
		if !strings.Contains(out, "connection reset by peer") || strings.Contains(out, "AddStack") || strings.Count(out, "\n") != 1 {
			t.Fatalf("%s log line: %q", format, out)
		}
	}
}
