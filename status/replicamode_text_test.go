package status_test

import (
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/status"
)

// TestWriteTextReplicaMode: in replica mode the applier lines name the
// binlog server the standby replicates from, its threads and their state,
// the IO thread's error, and the applied frontier by GTID only.
func TestWriteTextReplicaMode(t *testing.T) {
	g, err := binlog.ParseGTIDSet(binlog.MariaDB, "0-1-42")
	if err != nil {
		t.Fatal(err)
	}
	applied := status.Pos(binlog.Position{GTID: g})
	rep := status.Report{Schema: status.ReportSchemaVersion, Daemon: "running", Role: "standby", Applied: &applied,
		Applier: &status.ApplierReport{State: "error", Standby: "127.0.0.1:3307", Mode: "replica", Source: "127.0.0.1:40001",
			ParallelThreads: 4, IOThread: "No", SQLThread: "Yes", LastIOError: "Got fatal error 1236 from master",
			LastError: "standby IO thread (from 127.0.0.1:40001) stopped: error 1236: Got fatal error 1236 from master"}}
	got := render(rep, status.TextOptions{Now: now})
	for _, want := range []string{
		"mode replica: the standby replicates from 127.0.0.1:40001 with 4 parallel threads (IO",
		"thread No, SQL thread Yes)",
		"IO thread: Got fatal error 1236 from master",
		"apply error: standby IO thread (from 127.0.0.1:40001) stopped: error 1236",
		"applied:     gtid 0-1-42",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("text lacks %q:\n%s", want, got)
		}
	}
}
