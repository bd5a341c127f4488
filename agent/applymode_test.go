package agent

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/harness"
)

// directApplier is the applier of an agent in apply mode direct; the test
// fails in any other mode.
func directApplier(t *testing.T, a *Agent) *applier.Applier {
	t.Helper()
	m, ok := a.mode.(*directMode)
	if !ok {
		t.Fatalf("the agent's apply mode is %T; this test needs apply mode direct (withStandbyMode(ModeDirect))", a.mode)
	}
	return m.ap
}

// TestPanicLines: the harness's check finds a panic the agent recovered and
// one that ended its process, and nothing in an ordinary error line.
func TestPanicLines(t *testing.T) {
	tests := []struct {
		name, log string
		want      bool
	}{
		{name: "recovered op", log: `time=x level=ERROR msg="control op panicked; the daemon goes on" component=control op=switchover panic="runtime error: invalid memory address or nil pointer dereference" stack="goroutine 1 [running]:\n..."`, want: true},
		{name: "process ended", log: "time=x level=INFO msg=streaming\npanic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation]\n\ngoroutine 77 [running]:", want: true},
		{name: "fatal error", log: "fatal error: concurrent map writes", want: true},
		{name: "ordinary error", log: `time=x level=ERROR msg="applier stopped" err="Error 1062: Duplicate entry"`},
		{name: "word in data at INFO", log: `time=x level=INFO msg="hook output" out="don't panic"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := panicLines(tt.log) != ""; got != tt.want {
				t.Fatalf("panicLines(%q) found a panic: %v, want %v", tt.log, got, tt.want)
			}
		})
	}
}

// TestRecoverOp: a panic in an operation's own goroutine becomes its error
// (control.ErrOpPanicked), logged at ERROR with the stack.
func TestRecoverOp(t *testing.T) {
	lb := &harness.SyncBuffer{}
	a := &Agent{log: slog.New(slog.NewTextHandler(lb, nil))}
	done := make(chan error, 1)
	go func() {
		var err error
		defer func() { done <- err }()
		defer a.recoverOp("switchover", &err)
		var m *directMode
		_ = m.ap // nil dereference
	}()
	err := <-done
	if !errors.Is(err, control.ErrOpPanicked) || !strings.Contains(err.Error(), "switchover") {
		t.Fatalf("err = %v; want the panic as the op's error", err)
	}
	if l := panicLines(lb.String()); !strings.Contains(l, "op=switchover") || !strings.Contains(l, "applymode_test.go") {
		t.Fatalf("log:\n%s\nwant the panic at ERROR with the op and its stack", lb.String())
	}
}
