package agent

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
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
