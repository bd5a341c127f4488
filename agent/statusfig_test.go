package agent

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/status"
)

func statusJSON(t *testing.T, cfgPath string) status.Report {
	t.Helper()
	out, err := exec.Command(hsBinary, "status", "--json", "--config", cfgPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	var r status.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return r
}

// TestStatusFiguresMatchServers compares what status --json prints with the
// servers' own view at the same moment: caught up, with the applier held
// back (standby down) so the lag is known, and after the master fell back
// to asynchronous replication. In each apply mode: the applier's figures
// come from different places.
func TestStatusFiguresMatchServers(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testStatusFiguresMatchServers(t, mode) })
	}
}

func testStatusFiguresMatchServers(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyMode(mode)
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	if _, err := e.load(ctx, 4, 200); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 30*time.Second)
	mpos := e.masterPos()
	mgtid, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	var r status.Report
	harness.WaitFor(t, "the monitor to measure the master", 10*time.Second, func() bool {
		r = statusJSON(t, e.cfgPath)
		return r.Master != nil && r.Master.Position.Pos != nil && *r.Master.Position.Pos == mpos.Pos
	})
	if r.Master.Position.File != mpos.File || r.Master.Position.GTID != mgtid || r.Master.SemiSync != "ON" {
		t.Fatalf("master as status sees it %+v; SHOW MASTER STATUS %s, gtid %s", r.Master, mpos, mgtid)
	}
	if r.Lag.ReceivedBytes == nil || *r.Lag.ReceivedBytes != 0 || r.Lag.AppliedTransactions == nil || *r.Lag.AppliedTransactions != 0 ||
		r.Lag.AppliedSeconds == nil || *r.Lag.AppliedSeconds != 0 || r.Lag.ReceivedSeconds == nil || *r.Lag.ReceivedSeconds != 0 {
		t.Fatalf("lag while caught up: %+v", r.Lag)
	}
	if r.SafeToPromote.GTID != mgtid || r.Applied.GTID != mgtid || r.Relay == nil || r.Relay.Bytes == 0 {
		t.Fatalf("safe %+v applied %+v relay %+v", r.SafeToPromote, r.Applied, r.Relay)
	}
	// Hold the applier back: the standby is down; 25 more commits.
	if err := standby.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.load(ctx, 1, 25); err != nil {
		t.Fatal(err)
	}
	mgtid, _ = e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	harness.WaitFor(t, "status to show the known lag", 15*time.Second, func() bool {
		r = statusJSON(t, e.cfgPath)
		return r.Received.GTID == mgtid && r.Lag.AppliedTransactions != nil && *r.Lag.AppliedTransactions == 25
	})
	// Replica mode knows the standby's gtid_slave_pos, not its place in a
	// file, and Seconds_Behind_Master is NULL with the standby down: the
	// bytes and seconds are unknown (omitted), never a made-up figure.
	if mode == ModeDirect && (r.Lag.AppliedBytes == nil || *r.Lag.AppliedBytes <= 0 || r.Lag.AppliedSeconds == nil || *r.Lag.AppliedSeconds < 0) {
		t.Fatalf("lag with 25 transactions unapplied: %+v", r.Lag)
	}
	if mode == ModeReplica && (r.Lag.AppliedBytes != nil || (r.Lag.AppliedSeconds != nil && *r.Lag.AppliedSeconds < 0)) {
		t.Fatalf("lag with 25 transactions unapplied, standby down, replica mode: %+v; want bytes unknown", r.Lag)
	}
	// --watch redraws with a sparkline of the applier lag.
	out, err := exec.Command(hsBinary, "status", "--watch", "--frames", "2", "--interval", "100ms", "--config", e.cfgPath).Output()
	if err != nil || strings.Count(string(out), "\033[H\033[2J") != 2 || !strings.Contains(string(out), "applier lag, last") || !strings.Contains(string(out), "(max 25)") {
		t.Fatalf("status --watch: %v\n%s", err, out)
	}
	// The master falls back to asynchronous replication.
	e.exec("SET GLOBAL rpl_semi_sync_master_enabled = OFF")
	harness.WaitFor(t, "status to show semi-sync OFF on the master", 15*time.Second, func() bool {
		r = statusJSON(t, e.cfgPath)
		return r.Master != nil && r.Master.SemiSync == "OFF"
	})
	out, _ = exec.Command(hsBinary, "status", "--config", e.cfgPath).Output()
	if !strings.Contains(string(out), "fell back to asynchronous") {
		t.Fatalf("status text does not say the master fell back:\n%s", out)
	}
	p.kill()
	if r := statusJSON(t, e.cfgPath); r.Daemon != "stopped" || r.Master != nil {
		t.Fatalf("stopped daemon's status shows a live master view: %+v", r)
	}
}
