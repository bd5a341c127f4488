package agent

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/status"
)

// TestApplyLagAfterStartAtCurrent: a first start with start = "current" on
// an idle master begins the relay log after the master's existing
// transactions, which the agent never receives and the applier never
// applies: they are not lag. Once the applier has caught up with the relay
// log, status counts 0 transactions behind (not the master's history), a
// commit received and not applied counts 1, and it is 0 again once the
// commit is applied; in both apply modes. The same holds after the agent
// restarts with that commit in its relay log, for a domain whose only
// transactions are from before the start.
func TestApplyLagAfterStartAtCurrent(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testApplyLagAfterStartAtCurrent(t, mode) })
	}
}

func testApplyLagAfterStartAtCurrent(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyIn(mode)
	ctx := context.Background()
	// The standby has the master's tables (a copy), none of its GTIDs.
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin = 0; CREATE DATABASE test; "+
		"CREATE TABLE test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, payload VARCHAR(200)) ENGINE=InnoDB; "+
		"CREATE TABLE test.nudge (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	cfg := readFile(t, e.cfgPath)
	if !strings.Contains(cfg, `start = "file:mysql-bin.000001:4"`) {
		t.Fatalf("the harness's start changed:\n%s", cfg)
	}
	writeFile(t, e.cfgPath, strings.Replace(cfg, `start = "file:mysql-bin.000001:4"`, `start = "current"`, 1))
	// A second domain with history only: the relay log never holds any of
	// it, also once it holds the first domain's commit below.
	if err := e.master.Exec(ctx, "SET SESSION gtid_domain_id = 1; CREATE DATABASE history_only; SET SESSION gtid_domain_id = 0"); err != nil {
		t.Fatal(err)
	}
	history, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	p := e.startProcess()
	defer p.kill()
	report := func() status.Report {
		rep, err := status.Get(ctx, e.config().StatusSource())
		if err != nil {
			return status.Report{}
		}
		return rep
	}
	caughtUp := func(rep status.Report) bool {
		return rep.Stream.State == "streaming" && rep.Received.GTID != "" && rep.Applier != nil && rep.Applier.State == "waiting"
	}
	lagIs := func(rep status.Report, want int64) bool {
		n, ok := rep.ApplyLagTransactions()
		return ok && n == want && rep.Lag.AppliedTransactions != nil && *rep.Lag.AppliedTransactions == want
	}
	var rep status.Report
	t.Cleanup(func() {
		if t.Failed() {
			n, ok := rep.ApplyLagTransactions()
			t.Logf("last status: received %q applied %+v lag %d (known %v) %+v applier %+v", rep.Received.GTID, rep.Applied, n, ok, rep.Lag, rep.Applier)
		}
	})
	harness.WaitFor(t, "the stream and the applier up", 60*time.Second, func() bool {
		rep = report()
		return caughtUp(rep)
	})
	if rep.Received.GTID != history {
		t.Fatalf("received %q on an idle master at %q", rep.Received.GTID, history)
	}
	n, _ := rep.ApplyLagTransactions()
	if !lagIs(rep, 0) {
		t.Fatalf("idle master, nothing received since the start at %s: status counts %d transactions behind (lag %+v); want 0", history, n, rep.Lag)
	}
	if out, _ := exec.Command(hsBinary, "status", "--config", e.cfgPath).CombinedOutput(); !strings.Contains(string(out), "/ 0 transactions /") {
		t.Fatalf("status text on an idle master after start = current:\n%s", out)
	}

	// A commit the applier cannot apply yet (the standby is down) is lag.
	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if mode == ModeReplica {
		// The agent knows the standby is down before the commit arrives
		// (the lag is then counted from the standby's last known state).
		// The direct applier finds out only at its next transaction.
		harness.WaitFor(t, "the agent to see the standby down", 60*time.Second, func() bool {
			rep = report()
			return rep.Applier != nil && rep.Applier.State != "waiting"
		})
	}
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	one, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	harness.WaitFor(t, "status to count the unapplied commit", 60*time.Second, func() bool {
		rep = report()
		return rep.Received.GTID == one && lagIs(rep, 1)
	})
	applied := func(rep status.Report) bool {
		// The first domain's commit applied (the other has nothing in the
		// relay log to apply).
		return caughtUp(rep) && rep.Applied != nil && strings.Contains(","+rep.Applied.GTID+",", ","+commitGTID(t, one)+",")
	}
	if err := standby.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the commit applied and the lag back to 0", 60*time.Second, func() bool {
		rep = report()
		return applied(rep) && lagIs(rep, 0)
	})
	assertSameRows(t, e.master, standby, 1)

	// A restart: the relay log now holds the commit; the other domain's
	// history is still not lag once the standby has caught up again.
	p.kill()
	p.start()
	harness.WaitFor(t, "the stream and the applier up after the restart", 60*time.Second, func() bool {
		rep = report()
		return rep.Received.GTID == one && applied(rep)
	})
	harness.WaitFor(t, "0 transactions behind after the restart", 60*time.Second, func() bool {
		rep = report()
		return lagIs(rep, 0)
	})
	if n, _ := rep.ApplyLagTransactions(); n != 0 {
		t.Fatalf("after the restart: %d transactions behind; want 0", n)
	}
}

// commitGTID returns the GTID of domain 0 in a gtid_binlog_pos.
func commitGTID(t *testing.T, pos string) string {
	t.Helper()
	for _, g := range strings.Split(pos, ",") {
		if strings.HasPrefix(g, "0-") {
			return g
		}
	}
	t.Fatalf("no domain 0 in %q", pos)
	return ""
}
