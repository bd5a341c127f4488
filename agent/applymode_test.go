package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/binlogserver"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
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

// TestApplyModeBeforeStart: the control socket and the status listener
// answer before runRole has started the apply mode (and after it ended).
// In every mode, every operation then answers or refuses; none panics
// (switchover in replica mode dereferenced a nil applier). No server is
// needed: nothing is started.
func TestApplyModeBeforeStart(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect, "none"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			pw := filepath.Join(dir, "pw")
			must(t, os.WriteFile(pw, []byte("secret\n"), 0o600))
			cfg := fmt.Sprintf("data_dir = \"agent\"\nserver_id = 9001\n[master]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"repl\"\npassword_file = %q\n[failover]\nmode = \"manual\"\n", pw)
			if mode != "none" {
				cfg += fmt.Sprintf("[standby]\nhost = \"127.0.0.1\"\nport = 1\nuser = \"applier\"\npassword_file = %q\nmode = %q\n", pw, mode)
			}
			path := filepath.Join(dir, "hotstandby.toml")
			must(t, os.WriteFile(path, []byte(cfg), 0o600))
			c, err := LoadConfig(path)
			must(t, err)
			lb := &harness.SyncBuffer{}
			a, err := newAgent(c, slog.New(slog.NewTextHandler(lb, nil)), ingest.Hooks{})
			must(t, err)
			defer a.store.Close()
			a.ctx = context.Background()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()

			rep := a.liveReport()
			if (mode == "none") != (rep.Applier == nil) {
				t.Fatalf("applier report %+v in mode %s", rep.Applier, mode)
			}
			if _, err := a.opSkip(ctx, operator, control.Request{Op: "skip", GTID: "0-1-1"}); err == nil {
				t.Fatal("skip before the mode started: accepted")
			}
			if mode != "none" {
				_, err := a.opSwitchover(ctx, operator, control.Request{Op: "switchover", Timeout: time.Second})
				if !errors.Is(err, failover.ErrRefused) {
					t.Fatalf("switchover before the mode started: %v; want refused", err)
				}
			}
			if _, _, err := a.mode.applied(); mode != ModeDirect && err == nil {
				t.Fatal("applied() before start: no error")
			}
			if _, ok := a.mode.frontier(); ok {
				t.Fatal("a frontier before start")
			}
			if _, ok := a.mode.purgeHorizon(checkpoint.State{}); ok {
				t.Fatal("a purge horizon before start")
			}
			a.purgeRelay(time.Now())
			if _, err := a.mode.drain(ctx, relay.Frontier{Segment: 1}); err == nil {
				t.Fatal("drain before start: no error")
			}
			rec := httptest.NewRecorder()
			a.metrics.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != 200 {
				t.Fatalf("metrics: %d %s", rec.Code, rec.Body)
			}
			if l := panicLines(lb.String()); l != "" {
				t.Fatalf("panics:\n%s", l)
			}
		})
	}
}

// TestCaughtUpTo: replica mode takes the relay's GTID state as the lag's
// base only when the standby provably applied everything the relay holds up
// to it; otherwise the base stays where it was.
func TestCaughtUpTo(t *testing.T) {
	gs := func(s string) binlog.GTIDSet {
		g, err := binlog.ParseGTIDSet(binlog.MariaDB, s)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	at := binlog.FilePos{File: "mysql-bin.000001", Pos: 900}
	durable := relay.Frontier{Segment: 1, Offset: 500, Pos: binlog.Position{FilePos: at, GTID: gs("0-1-5,1-1-3")}}
	done := binlogserver.Replica{Mode: "gtid", Requested: "0-1-2", Sent: at, SentGTID: "0-1-5", CaughtUp: true}
	for _, c := range []struct {
		name    string
		reps    []binlogserver.Replica
		durable relay.Frontier
		applied string
		want    string // "": not known
	}{
		{"caught up and applied", []binlogserver.Replica{done}, durable, "0-1-5", "0-1-5,1-1-3"},
		{"the relay log empty", nil, relay.Frontier{Pos: binlog.Position{FilePos: at, GTID: gs("0-1-3")}}, "", "0-1-3"},
		{"nothing received", nil, relay.Frontier{}, "", ""},
		{"no standby dump", nil, durable, "0-1-5", ""},
		{"two dumps", []binlogserver.Replica{done, done}, durable, "0-1-5", ""},
		{"dump not caught up", []binlogserver.Replica{func() binlogserver.Replica { r := done; r.CaughtUp = false; return r }()}, durable, "0-1-5", ""},
		{"sent before durable", []binlogserver.Replica{func() binlogserver.Replica { r := done; r.Sent.Pos = 800; return r }()}, durable, "0-1-5", ""},
		{"sent not applied", []binlogserver.Replica{done}, durable, "0-1-4", ""},
		{"asked state not applied", []binlogserver.Replica{func() binlogserver.Replica { r := done; r.Requested = "0-1-2,2-1-9"; return r }()}, durable, "0-1-5", ""},
		{"file mode", []binlogserver.Replica{func() binlogserver.Replica { r := done; r.Mode = "file"; return r }()}, durable, "0-1-5", ""},
	} {
		got, ok := caughtUpTo(c.reps, c.durable, gs(c.applied))
		if (c.want == "") == ok || (ok && got.String() != gs(c.want).String()) {
			t.Errorf("%s: caughtUpTo = %q, %v; want %q", c.name, got, ok, c.want)
		}
	}
}
