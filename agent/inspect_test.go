package agent

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
)

// TestRelayListAndShow: relay list names every segment with its GTIDs,
// positions and whether it is applied; relay show finds a transaction by
// GTID and by position and, with -v, shows its rows.
func TestRelayListAndShow(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	e.exec("INSERT INTO test.t (id, c, payload) VALUES (41, 7, 'findme')")
	gtid, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	e.exec("FLUSH BINARY LOGS")
	pos2 := e.masterPos()
	e.exec("UPDATE test.t SET c = 8 WHERE id = 41")
	last, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	e.waitApplied(standby, 30*time.Second)
	p.Signal(interruptSignal)
	p.wait(10 * time.Second)

	out, err := exec.Command(hsBinary, "relay", "list", "--json", "--config", e.cfgPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	var segs []relay.SegmentInfo
	if err := json.Unmarshal(out, &segs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(segs) != 2 || segs[0].MasterFile != "mysql-bin.000001" || segs[1].MasterFile != pos2.File || segs[1].LastGTID != last {
		t.Fatalf("relay list: %+v", segs)
	}
	for _, s := range segs {
		if s.Applied != "yes" {
			st, _ := checkpointState(e.config())
			t.Fatalf("segment %d applied %q after the standby caught up; segments %+v; applied mirror %+v", s.Seq, s.Applied, segs, st.Applied)
		}
	}
	out, err = exec.Command(hsBinary, "relay", "show", "-v", "--gtid", gtid, "--config", e.cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GTID "+gtid+" at mysql-bin.000001:") ||
		!strings.Contains(string(out), "test.t") || !strings.Contains(string(out), `"findme"`) {
		t.Fatalf("relay show --gtid %s: %v\n%s", gtid, err, out)
	}
	out, err = exec.Command(hsBinary, "relay", "show", "--from", pos2.String(), "--config", e.cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "GTID "+last) || strings.Contains(string(out), "GTID "+gtid+" ") {
		t.Fatalf("relay show --from %s: %v\n%s", pos2, err, out)
	}
	out, err = exec.Command(hsBinary, "relay", "show", "--gtid", "0-1-999999", "--config", e.cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no transaction with GTID 0-1-999999") {
		t.Fatalf("relay show of a missing GTID: %v\n%s", err, out)
	}
}

// relayList runs `hotstandby relay list --json`.
func relayList(t *testing.T, cfgPath string) []relay.SegmentInfo {
	t.Helper()
	out, err := exec.Command(hsBinary, "relay", "list", "--json", "--config", cfgPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	var segs []relay.SegmentInfo
	if err := json.Unmarshal(out, &segs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return segs
}

// TestRelayListReplicaMode: in replica mode the applied record is the
// standby's gtid_slave_pos only, and relay list judges each segment by the
// GTIDs it holds: all applied once the standby caught up; with the standby
// down while more arrives, the segment it stopped in is partly applied and
// the one after it not applied.
func TestRelayListReplicaMode(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx := context.Background()
	e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
	e.waitApplied(standby, 60*time.Second)
	must(t, p.stop())
	segs := relayList(t, e.cfgPath)
	if len(segs) != 2 {
		t.Fatalf("relay list: %d segments, want 2: %+v", len(segs), segs)
	}
	for _, s := range segs {
		if s.Applied != "yes" {
			st, _ := checkpointState(e.config())
			t.Fatalf("segment %d applied %q after the standby caught up; segments %+v; applied mirror %+v", s.Seq, s.Applied, segs, st.Applied)
		}
	}

	// The standby goes down; one more transaction in the second segment and
	// one in a third.
	must(t, standby.Stop(ctx))
	p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (id, c) VALUES (3, 3)")
	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO test.t (id, c) VALUES (4, 4)")
	e.waitCaughtUp(p.a.liveReport)
	must(t, p.stop())
	segs = relayList(t, e.cfgPath)
	got := make([]string, len(segs))
	for i, s := range segs {
		got[i] = s.Applied
	}
	if strings.Join(got, ",") != "yes,partly,no" {
		st, _ := checkpointState(e.config())
		t.Fatalf("applied per segment %v, want yes,partly,no; segments %+v; applied mirror %+v", got, segs, st.Applied)
	}

	// The standby is back and catches up: every segment is applied.
	must(t, standby.Restart(ctx))
	p = e.startInProcess(ingest.Hooks{})
	e.waitApplied(standby, 60*time.Second)
	must(t, p.stop())
	for _, s := range relayList(t, e.cfgPath) {
		if s.Applied != "yes" {
			t.Fatalf("segment %d applied %q after the standby caught up again", s.Seq, s.Applied)
		}
	}
	assertSameRows(t, e.master, standby, 4)
}
