package agent

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
)

// newGateEnv is a master, a standby in the given apply mode and an agent
// with failover.mode auto whose every connection to the master goes
// through a dumpProxy.
func newGateEnv(t *testing.T, mode string) (*failoverEnv, *dumpProxy) {
	t.Helper()
	f := newFailoverEnvWith(t, `mode = "auto"`, failoverSetup{mode: mode, proxy: true})
	return f, f.proxy
}

// waitGateRefuses waits until the gate answers not lossless with a reason
// naming what; a failure says what the gate last answered.
func (f *failoverEnv) waitGateRefuses(what string) {
	f.t.Helper()
	var last string
	defer func() {
		if f.t.Failed() {
			f.t.Logf("the gate last answered %s", last)
		}
	}()
	harness.WaitFor(f.t, "the gate to refuse, naming "+what, 60*time.Second, func() bool {
		r := f.report()
		if r.Failover == nil {
			return false
		}
		last = fmt.Sprintf("lossless=%v %q", r.Failover.LosslessNow, r.Failover.LosslessWhy)
		return !r.Failover.LosslessNow && strings.Contains(r.Failover.LosslessWhy, what)
	})
}

// waitRefusedPromotion kills the master and waits for the automatic
// promotion to be refused; it returns the audit log, and checks that the
// standby stayed a read-only standby.
func (f *failoverEnv) waitRefusedPromotion(reason string) string {
	f.t.Helper()
	must(f.t, f.master.Kill())
	harness.WaitFor(f.t, "the refused promotion in the audit log", 60*time.Second, func() bool {
		return strings.Contains(strings.Join(f.report().Audit, "\n"), "promotion refused")
	})
	rep := f.report()
	audit := strings.Join(rep.Audit, "\n")
	if rep.Role != checkpoint.RoleStandby || !strings.Contains(audit, reason) {
		f.t.Fatalf("role %s, audit:\n%s\nwant the promotion refused naming %q", rep.Role, audit, reason)
	}
	if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@read_only"); ro != "1" {
		f.t.Fatalf("read_only=%s on the standby after a refused promotion", ro)
	}
	return audit
}

// TestGateRefusesAStalledStream: the agent's dump stalls (nothing the
// master sends on it arrives, the master keeps counting one semi-sync
// replica) while the monitor's own connection keeps answering. The old
// gate took the proof's time for the stream's last word and called a
// promotion lossless; now the monitor records the breach and the gate
// refuses, naming the stream.
func TestGateRefusesAStalledStream(t *testing.T) {
	f, proxy := newGateEnv(t, ModeReplica)
	f.waitLossless()
	proxy.stall.Store(true)
	harness.WaitFor(t, "the stream to stop streaming while the master counts one semi-sync replica", 60*time.Second, func() bool {
		return f.report().Stream.State != ingest.StateStreaming && f.status("Rpl_semi_sync_master_clients") == 1
	})
	f.waitGateRefuses("the agent's stream is")
	if proxy.stalled.Load() == 0 {
		t.Fatal("nothing was held back from the agent: the test proves nothing")
	}
	f.waitRefusedPromotion("the agent's stream is")
}

// TestGateRefusesASecondSemiSyncReplicaWhileTheStreamIsDown: the agent's
// stream is down (its dump requests never reach the master) and a stock
// MariaDB replica with rpl_semi_sync_slave_enabled=ON connects to the
// master: the master counts one semi-sync replica again and its commits
// wait for that replica's ACKs only, so they are not on the standby. The
// old monitor counted one client and kept proving; now each sample is a
// breach naming another semi-sync replica, and the promotion is refused.
func TestGateRefusesASecondSemiSyncReplicaWhileTheStreamIsDown(t *testing.T) {
	f, proxy := newGateEnv(t, ModeReplica)
	f.waitLossless()
	ctx := context.Background()
	proxy.refuse.Store(true)
	id, err := f.master.QueryString(ctx, "SELECT id FROM information_schema.processlist WHERE user = 'repl' AND command LIKE 'Binlog Dump%'")
	if err != nil || id == "" {
		t.Fatalf("the agent's dump thread: %q %v", id, err)
	}
	must(t, f.master.Exec(ctx, "KILL CONNECTION "+id))
	harness.WaitFor(t, "the master to count no semi-sync replica", 30*time.Second, func() bool {
		return f.status("Rpl_semi_sync_master_clients") == 0
	})
	f.startSemiSyncReplica()
	harness.WaitFor(t, "the master to count the other replica as its one semi-sync replica", 30*time.Second, func() bool {
		return f.status("Rpl_semi_sync_master_clients") == 1
	})
	yes := f.status("Rpl_semi_sync_master_yes_tx")
	for i := range 5 {
		f.exec("INSERT INTO test.t (c, payload) VALUES (?, 'acknowledged by the other replica')", i)
	}
	if got := f.status("Rpl_semi_sync_master_yes_tx"); got < yes+5 {
		t.Fatalf("Rpl_semi_sync_master_yes_tx moved by %d for 5 commits: they did not wait for the other replica", got-yes)
	}
	if proxy.refused.Load() == 0 {
		t.Fatal("no dump request was refused: the test proves nothing")
	}
	f.waitGateRefuses("another semi-sync replica")
	f.waitRefusedPromotion("another semi-sync replica")
	if n, _ := f.standby.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'acknowledged by the other replica'"); n != "0" {
		t.Logf("the standby holds %s of the 5 rows only the other replica acknowledged", n)
	}
}

// TestGateProvesAcrossABinlogRotation: the master rotates its binlog and
// commits nothing after: the stream holds the new file's position (rotate,
// format description, GTID list, binlog checkpoint), so the monitor keeps
// proving and the gate keeps answering lossless; a proof that needs the
// stream to hold the master's position must not stall on events that are
// not transactions.
func TestGateProvesAcrossABinlogRotation(t *testing.T) {
	f, _ := newGateEnv(t, ModeReplica)
	f.waitLossless()
	f.exec("FLUSH BINARY LOGS")
	rotated := time.Now()
	harness.WaitFor(t, "a proof after the rotation, and the gate lossless", 60*time.Second, func() bool {
		r := f.report()
		return r.SemiSync.ProvenAt != nil && r.SemiSync.ProvenAt.After(rotated.Add(4*time.Second)) && r.Failover != nil && r.Failover.LosslessNow
	})
	f.exec("INSERT INTO test.t (c) VALUES (1)")
	f.exec("FLUSH BINARY LOGS")
	rotated = time.Now()
	harness.WaitFor(t, "a proof after a commit and a second rotation", 60*time.Second, func() bool {
		r := f.report()
		return r.SemiSync.ProvenAt != nil && r.SemiSync.ProvenAt.After(rotated.Add(4*time.Second)) && r.Failover != nil && r.Failover.LosslessNow
	})
}

// TestStatusLagNeverNegative: under load, status's "received ... behind
// the master's SHOW MASTER STATUS" compares the master's position with the
// stream's as of the same sample: it is never negative (it was, by up to
// a sample's worth of binlog, when the sample's position met the stream's
// current one).
func TestStatusLagNeverNegative(t *testing.T) {
	e := newEnv(t)
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	db, err := sql.Open("mysql", e.master.RootDSN("test"))
	if err != nil {
		t.Fatal(err)
	}
	var committed atomic.Int64
	ids := writers(ctx, db, 8, &committed, writerOptions{payload: "lag"})
	defer func() { stop(); ids() }()
	measured := map[time.Time]bool{}
	harness.WaitFor(t, "five samples of the master under load", 120*time.Second, func() bool {
		r := p.a.liveReport()
		if b := r.Lag.ReceivedBytes; b != nil {
			if *b < 0 {
				t.Fatalf("status says received %d bytes behind the master (sample of %s, received %s:%d, master %s:%d)",
					*b, r.Master.MeasuredAt.Format("15:04:05.000"), r.Received.File, *r.Received.Pos, r.Master.Position.File, *r.Master.Position.Pos)
			}
			if committed.Load() > 0 {
				measured[r.Master.MeasuredAt] = true
			}
		}
		return len(measured) >= 5
	})
}

// TestGateRefusesAfterAFallbackTheMonitorDidNotSee: the relay log's fsync
// stalls (a dying disk): the stream receives the commit's events and its
// ACK request but cannot store or ACK them, while the monitor keeps
// sampling a master whose counters have not moved. The commit waits
// rpl_semi_sync_master_timeout, falls back to async and returns OK; the
// master dies at once, before the monitor's next sample. The old gate
// took the proof's time for the stream's last word and promoted without
// that commit; now B stopped when the stream stopped holding what the
// master wrote, and the promotion is refused.
func TestGateRefusesAfterAFallbackTheMonitorDidNotSee(t *testing.T) {
	var hold atomic.Bool
	hooks := ingest.Hooks{Sync: func(f *os.File) error {
		for hold.Load() {
			time.Sleep(5 * time.Millisecond) // fault injection: a stalled disk
		}
		return f.Sync()
	}}
	f := newFailoverEnvWith(t, `mode = "auto"`, failoverSetup{mode: ModeReplica, hooks: hooks, proxy: true})
	// Registered after the agent's start, so it runs before the agent's
	// stop: a stop waits for the stalled fsync.
	t.Cleanup(func() { hold.Store(false) })
	f.exec("SET GLOBAL rpl_semi_sync_master_timeout = 6000")
	set := time.Now()
	harness.WaitFor(t, "a proof with the new timeout, and the gate lossless", 60*time.Second, func() bool {
		r := f.report()
		return r.SemiSync.ProvenAt != nil && r.SemiSync.ProvenAt.After(set) && r.Failover != nil && r.Failover.LosslessNow
	})
	hold.Store(true)
	noTimes := f.status("Rpl_semi_sync_master_no_times")
	f.exec("INSERT INTO test.t (c, payload) VALUES (1, 'returned OK after the fallback')")
	fellBack := f.status("Rpl_semi_sync_master_no_times") > noTimes
	must(t, f.master.Kill())
	if !fellBack {
		t.Fatal("the commit returned without a fallback to async: the test proves nothing")
	}
	harness.WaitFor(t, "the promotion to be refused", 60*time.Second, func() bool {
		return strings.Contains(strings.Join(f.report().Audit, "\n"), "promotion refused")
	})
	rep := f.report()
	audit := strings.Join(rep.Audit, "\n")
	if rep.Role != checkpoint.RoleStandby || !strings.Contains(audit, "last heard") && !strings.Contains(audit, "fell back to async") {
		t.Fatalf("role %s, audit:\n%s\nwant the promotion refused: the stream stopped hearing the master", rep.Role, audit)
	}
	if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@read_only"); ro != "1" {
		t.Fatalf("read_only=%s on the standby after a refused promotion", ro)
	}
}
