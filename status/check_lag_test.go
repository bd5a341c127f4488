package status

import (
	"strings"
	"testing"
	"time"
)

// TestCheckUsesTheDaemonsApplyLag: --check judges and prints the lag the
// daemon measured (it knows where the relay log starts: the master's
// history before a start at "current" is not lag), and compares the GTID
// positions only for a report without that figure.
func TestCheckUsesTheDaemonsApplyLag(t *testing.T) {
	now := time.Now()
	zero := int64(0)
	rep := Report{Daemon: "running", Role: "standby",
		Stream:   StreamReport{State: StateStreaming, Master: "m:3306", LastEventAt: &now},
		Received: PosReport{GTID: "0-1-4"}, Applied: &PosReport{GTID: ""},
		Applier: &ApplierReport{State: "waiting"}, Lag: LagReport{AppliedTransactions: &zero}}
	if n, ok := rep.ApplyLagTransactions(); !ok || n != 0 {
		t.Fatalf("lag %d %v, want the daemon's 0", n, ok)
	}
	if code, line := rep.Check(DefaultCheckThresholds(), now); code != CheckOK || !strings.Contains(line, "applier 0 transactions behind") {
		t.Fatalf("--check: %d %q", code, line)
	}
	rep.Lag.AppliedTransactions = nil // a report without the daemon's figure
	if n, ok := rep.ApplyLagTransactions(); !ok || n != 4 {
		t.Fatalf("lag from positions %d %v, want 4", n, ok)
	}
}
