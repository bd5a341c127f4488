package agent

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/status"
)

// firstRelayGTID returns the first GTID stored in the relay log.
func firstRelayGTID(t *testing.T, relayDir string) string {
	t.Helper()
	segs, err := relay.ListSegments(relayDir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("relay log: %v, %d segments", err, len(segs))
	}
	r, err := relay.OpenSegment(segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		ev, err := r.Next()
		if err == io.EOF {
			t.Fatal("no GTID event in the relay log")
		}
		if err != nil {
			t.Fatal(err)
		}
		h, _ := binlog.ParseHeader(ev)
		if h.Type == binlog.MariaGTIDEvent {
			g, _, _, _ := binlog.MariaGTID(ev, h)
			return g.String()
		}
	}
}

// TestFirstRunStartPositions: a first run from a GTID set starts with the
// next transaction; one from a file position starts exactly there.
func TestFirstRunStartPositions(t *testing.T) {
	tests := []struct {
		name  string
		start func(e *testEnv, gtid1 string, pos2 binlog.FilePos) string
		first string // the first GTID expected in the relay log
	}{
		{"gtid", func(e *testEnv, gtid1 string, _ binlog.FilePos) string { return "gtid:" + gtid1 }, "second"},
		{"file", func(e *testEnv, _ string, pos2 binlog.FilePos) string { return "file:" + pos2.String() }, "second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.exec("SET GLOBAL rpl_semi_sync_master_timeout=100")
			e.exec("INSERT INTO test.t (c) VALUES (1)")
			gtid1, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
			pos2 := e.masterPos()
			e.exec("INSERT INTO test.t (c) VALUES (2)")
			gtid2, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
			e.exec("INSERT INTO test.t (c) VALUES (3)")
			e.exec("SET GLOBAL rpl_semi_sync_master_timeout=10000")
			cfg := strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "`+tt.start(e, gtid1, pos2)+`"`, 1)
			writeFile(t, e.cfgPath, cfg)
			p := e.startInProcess(ingest.Hooks{})
			e.waitSemiSyncClient()
			e.exec("INSERT INTO test.t (c) VALUES (4)")
			e.waitCaughtUp(p.a.liveReport)
			if err := p.stop(); err != nil {
				t.Fatal(err)
			}
			c := e.config()
			if got := firstRelayGTID(t, c.RelayDir()); got != gtid2 {
				t.Fatalf("relay log starts with GTID %s, want %s (the transaction after the start)", got, gtid2)
			}
			compareRelay(t, filepath.Join(e.master.Dir(), "binlog"), c.RelayDir())
			st, err := checkpointState(c)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
			if st.Received.Pos.GTID.String() != want {
				t.Fatalf("checkpointed received GTID %s, master's gtid_binlog_pos %s", st.Received.Pos.GTID, want)
			}
		})
	}
}

// TestMasterIdentityChangeStops: positions belong to one master; when the
// configured master turns out to be another server, the agent refuses.
// A master whose server_id changed is refused; here its binlog still holds
// the relay's transactions (it is the same server), so the line names it as
// a new master rather than another history.
func TestMasterIdentityChangeStops(t *testing.T) {
	e := newEnv(t)
	p := e.startProcess()
	e.waitSemiSyncClient()
	p.kill()
	e.exec("SET GLOBAL server_id = 77")
	out, code := e.runToExit(30 * time.Second)
	if code != 1 || !strings.Contains(lastLine(out), "the relay log's positions belong to mariadb server_id=1, the configured master is mariadb server_id=77") {
		t.Fatalf("exit %d, last line %q", code, lastLine(out))
	}
}

// TestPreflightWarnings: settings that break the lossless promise are named
// with their fix, in the log and in status, and streaming goes on.
func TestPreflightWarnings(t *testing.T) {
	e := newEnv(t)
	e.exec("SET GLOBAL binlog_row_metadata = MINIMAL")
	e.exec("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_COMMIT")
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	// The master counts the replica when the dump starts, a moment before
	// its first packet reaches the agent (which then says streaming).
	var rep status.Report
	harness.WaitFor(t, "the stream to deliver", 30*time.Second, func() bool {
		rep = p.a.liveReport()
		return rep.Stream.State == ingest.StateStreaming
	})
	warnings := strings.Join(rep.Stream.Warnings, "\n")
	for _, want := range []string{
		"master " + e.master.Addr() + ": binlog_row_metadata = MINIMAL: set binlog_row_metadata=FULL",
		"master " + e.master.Addr() + ": rpl_semi_sync_master_wait_point = AFTER_COMMIT: set it to AFTER_SYNC",
	} {
		if !strings.Contains(warnings, want) || !strings.Contains(p.log.String(), want) {
			t.Errorf("warning %q missing; status warnings:\n%s", want, warnings)
		}
	}
}
