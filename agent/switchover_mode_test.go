package agent

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// TestSwitchoverDaemon runs `hotstandby switchover` against the daemon's
// process, in each apply mode (replica, the users' default, first): the
// command succeeds, the daemon is still running and answers, the standby is
// the writable master with every committed row, and the old master is
// read-only.
func TestSwitchoverDaemon(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testSwitchoverDaemon(t, mode) })
	}
}

func testSwitchoverDaemon(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyMode(mode)
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"manual\"\n")
	ctx := context.Background()
	must(t, e.master.CreateUser(ctx, "repl", e.password, rejoinPrivs)) // the freeze needs READ_ONLY ADMIN
	p := e.startProcess()
	e.waitSemiSyncClient()
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = int64(1000 + i)
		e.exec("INSERT INTO test.t (id, c) VALUES (?, 1)", ids[i])
	}
	report := func() status.Report {
		r, err := status.Fetch(ctx, e.config().Status.Listen)
		if err != nil {
			return status.Report{}
		}
		return r
	}
	harness.WaitFor(t, "the standby to apply the rows", 60*time.Second, func() bool {
		return len(missingIDs(t, standby, ids)) == 0
	})

	out, err := exec.Command(hsBinary, "switchover", "--config", e.cfgPath, "--timeout", "60s").CombinedOutput()
	text := strings.TrimSpace(string(out))
	if p.Exited() {
		t.Fatalf("the daemon ended during `hotstandby switchover` (output %q, err %v); its log:\n%s", text, err, p.LogTail(60))
	}
	if err != nil || !strings.Contains(text, "switched over") {
		t.Fatalf("hotstandby switchover: %v, output %q; want the switchover done", err, text)
	}
	if r := report(); r.Role != checkpoint.RoleMaster {
		t.Fatalf("role %q after the switchover (daemon answers: %v); want master", r.Role, r.Schema != 0)
	}
	if missing := missingIDs(t, standby, ids); len(missing) > 0 {
		t.Fatalf("committed ids missing on the new master: %v", missing)
	}
	if ro, _ := standby.QueryString(ctx, "SELECT @@GLOBAL.read_only"); ro != "0" {
		t.Fatalf("read_only=%s on the new master", ro)
	}
	if ro, _ := e.master.QueryString(ctx, "SELECT @@GLOBAL.read_only"); ro != "1" {
		t.Fatalf("read_only=%s on the old master after the switchover", ro)
	}
	if s := grepLines(p.Log(), "panic"); s != "" {
		t.Fatalf("the daemon logged a panic:\n%s", s)
	}
	t.Logf("%s: %s", mode, text)
}

// TestSwitchoverRefusedWhileApplyStopped: with the standby's apply stopped
// on an error (a conflicting row), a switchover is refused before anything
// changes, naming the error, in each apply mode: the master stays
// writable, the standby read-only, the agent a standby, and it keeps
// streaming.
func TestSwitchoverRefusedWhileApplyStopped(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			standby := e.withStandbyMode(mode)
			writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"manual\"\n")
			p := e.startInProcess(ingest.Hooks{})
			e.waitSemiSyncClient()
			ctx := context.Background()
			e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
			e.waitApplied(standby, 60*time.Second)
			must(t, standby.Exec(ctx, "SET SESSION sql_log_bin=0; INSERT INTO test.t (id, c) VALUES (2, 99)"))
			e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
			harness.WaitFor(t, "the standby's apply to stop on the conflict", 60*time.Second, func() bool {
				r := p.a.liveReport()
				return r.Applier != nil && r.Applier.State == "error"
			})
			_, err := p.a.opSwitchover(ctx, operator, control.Request{Op: "switchover", Timeout: 5 * time.Second})
			if !errors.Is(err, failover.ErrRefused) || !strings.Contains(err.Error(), "stopped on an error") || !strings.Contains(err.Error(), "1062") {
				t.Fatalf("switchover with the apply stopped: %v; want refused naming the error", err)
			}
			if ro, _ := e.master.QueryString(ctx, "SELECT @@GLOBAL.read_only"); ro != "0" {
				t.Fatalf("read_only=%s on the master after a refused switchover", ro)
			}
			if ro, _ := standby.QueryString(ctx, "SELECT @@GLOBAL.read_only"); ro != "1" {
				t.Fatalf("read_only=%s on the standby after a refused switchover", ro)
			}
			if r := p.a.liveReport(); r.Role != checkpoint.RoleStandby || r.Stream.State != ingest.StateStreaming {
				t.Fatalf("role %s, stream %s after a refused switchover", r.Role, r.Stream.State)
			}
		})
	}
}
