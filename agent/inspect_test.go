package agent

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

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
