package agent

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// withReplicaStandby is withStandby in apply mode replica with 4 threads.
func (e *testEnv) withReplicaStandby() *sandbox.Server {
	e.t.Helper()
	s := e.withStandbyMode(ModeReplica)
	writeFile(e.t, e.cfgPath, strings.Replace(readFile(e.t, e.cfgPath), `mode = "replica"`, "mode = \"replica\"\nparallel_threads = 4", 1))
	return s
}

// assertSameRows compares test.t on master and standby.
func assertSameRows(t *testing.T, master, standby *sandbox.Server, wantRows int) {
	t.Helper()
	m, s := tableRows(t, master, "test.t", "id"), tableRows(t, standby, "test.t", "id")
	if len(m) != wantRows {
		t.Fatalf("master has %d rows, want %d", len(m), wantRows)
	}
	if len(s) != len(m) {
		t.Fatalf("standby has %d rows, master %d", len(s), len(m))
	}
	for i := range m {
		if m[i] != s[i] {
			t.Fatalf("row %d differs: master %s, standby %s", i, m[i], s[i])
		}
	}
}

// TestReplicaModeLoadAndStandbyRestart: in replica mode the standby
// replicates from the agent's binlog server with 4 optimistic threads. A
// 16-client load arrives whole: rows equal, the standby's binlog carries
// the master's GTIDs, status names the mode, threads and frontier. A kill -9
// of the standby's mariadbd mid-load loses its relay log; the agent serves
// again from gtid_slave_pos: nothing lost or doubled.
func TestReplicaModeLoadAndStandbyRestart(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	if _, err := e.load(context.Background(), 16, 1500); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 120*time.Second)
	assertSameRows(t, e.master, standby, 1500)
	rep := p.a.liveReport()
	ap := rep.Applier
	if ap == nil || ap.Mode != ModeReplica || ap.ParallelThreads != 4 || ap.SQLThread != "Yes" || ap.IOThread != "Yes" ||
		!strings.HasPrefix(ap.Source, "127.0.0.1:") || ap.State == "error" {
		t.Fatalf("applier report %+v", ap)
	}
	// waitSemiSyncClient's nudge commits while the master is still async, so
	// the monitor's proof starts at its first clean sample after it.
	harness.WaitFor(t, "status --check to be OK", 30*time.Second, func() bool {
		code, _ := p.a.liveReport().Check(status.DefaultCheckThresholds(), time.Now())
		return code == status.CheckOK
	})
	if ro := query(t, standby, "SELECT @@GLOBAL.read_only"); ro != "1" {
		t.Fatalf("standby read_only=%s", ro)
	}
	fams := scrape(t, e.config().Status.Listen)
	for name, want := range map[string]float64{
		"hotstandby_applier_up": 1, "hotstandby_replica_io_thread_running": 1, "hotstandby_replica_sql_thread_running": 1,
		"hotstandby_replica_sql_errno": 0, "hotstandby_replica_parallel_threads": 4, "hotstandby_apply_lag_transactions": 0,
	} {
		if got := value(t, fams, name); got != want {
			t.Errorf("metric %s = %v, want %v", name, got, want)
		}
	}

	// kill -9 of the standby mid-load.
	ctx := context.Background()
	loadDone := make(chan error, 1)
	go func() {
		_, err := e.load(ctx, 8, 3000)
		loadDone <- err
	}()
	harness.WaitFor(t, "the standby to apply part of the second load", 60*time.Second, func() bool {
		n, _ := standby.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
		return n > "1600" && len(n) == 4
	})
	if err := standby.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 120*time.Second)
	assertSameRows(t, e.master, standby, 4500)
	harness.WaitFor(t, "the restarted standby to be read-only again", 30*time.Second, func() bool {
		v, err := standby.QueryString(ctx, "SELECT @@GLOBAL.read_only")
		return err == nil && v == "1"
	})
	if n := strings.Count(p.log.String(), "pw-"); n != 0 || strings.Contains(p.log.String(), e.password) {
		t.Fatal("a password is in the agent's log")
	}
}

// TestReplicaModeSQLErrorSkip: a row inserted on the standby beforehand
// conflicts with the master's: the SQL thread stops, status names the GTID,
// --check is CRITICAL; `skip` of another GTID is refused and not recorded;
// `skip --gtid G` moves past exactly G, is in the audit log with who asked,
// and the standby then equals the master but for G.
func TestReplicaModeSQLErrorSkip(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx := context.Background()
	e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
	e.waitApplied(standby, 60*time.Second)
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin=0; INSERT INTO test.t (id, c) VALUES (2, 99)"); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
	failing, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	e.exec("INSERT INTO test.t (id, c) VALUES (3, 3)")
	var rep status.Report
	harness.WaitFor(t, "the SQL thread to stop on "+failing, 60*time.Second, func() bool {
		rep = p.a.liveReport()
		return rep.Applier != nil && rep.Applier.State == "error"
	})
	if rep.Applier.FailedGTID != failing || !strings.Contains(rep.Applier.LastError, "SQL thread stopped on GTID "+failing+": error 1062") {
		t.Fatalf("applier report %+v: want the SQL thread stopped on %s with 1062", rep.Applier, failing)
	}
	code, text := rep.Check(status.DefaultCheckThresholds(), time.Now())
	if code != status.CheckCritical || !strings.Contains(text, failing) {
		t.Fatalf("status --check %d %q, want CRITICAL naming %s", code, text, failing)
	}
	c := e.config()
	if _, err := control.Call(ctx, c.ControlPath(), control.Request{Op: "skip", GTID: "0-1-999"}); err == nil {
		t.Fatal("skip of another GTID accepted")
	}
	msg, err := control.Call(ctx, c.ControlPath(), control.Request{Op: "skip", GTID: failing})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(msg)
	e.waitApplied(standby, 60*time.Second)
	got := query(t, standby, "SELECT GROUP_CONCAT(CONCAT(id, '=', c) ORDER BY id) FROM test.t")
	if got != "1=1,2=99,3=3" {
		t.Fatalf("standby rows %s: want exactly %s skipped", got, failing)
	}
	var skips []checkpoint.AuditEntry
	for _, en := range p.a.auditLog(t) {
		if en.Kind == "skip" {
			skips = append(skips, en)
		}
	}
	if len(skips) != 1 || !strings.Contains(skips[0].Text, "skip GTID "+failing+" by uid 0") || !strings.Contains(skips[0].Text, "error 1062") {
		t.Fatalf("audit log skips %+v: want one entry for %s by root with the error", skips, failing)
	}
	if rep := p.a.liveReport(); rep.Applier.State == "error" {
		t.Fatalf("still stopped after the skip: %+v", rep.Applier)
	}
}

// TestReplicaModePromotionLossless: kill -9 of the master under a
// 16-client load in replica mode: the agent drains the standby to the safe
// frontier (MASTER_GTID_WAIT), ends its replication, and promotes it; every
// id whose COMMIT returned OK is on it, and no replication configuration is
// left.
func TestReplicaModePromotionLossless(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"auto\"\n")
	f := &failoverEnv{testEnv: e, standby: standby}
	f.p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	f.waitLossless()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var committed atomic.Int64
	ids := okIDs(ctx, t, f.master, 16, &committed)
	harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= 400 })
	if err := f.master.Kill(); err != nil {
		t.Fatal(err)
	}
	stop()
	harness.WaitFor(t, "the automatic promotion", 90*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
	ok := ids()
	if missing := missingIDs(t, standby, ok); len(missing) > 0 {
		t.Fatalf("%d of %d committed ids are not on the promoted standby, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
	}
	if n := query(t, standby, "SELECT COUNT(*) FROM information_schema.processlist WHERE command = 'Slave_IO' OR user = 'system user'"); n != "0" {
		t.Fatalf("%s replication threads left on the promoted standby", n)
	}
	if err := standby.Exec(context.Background(), "INSERT INTO test.t (c, payload) VALUES (2, 'after the promotion')"); err != nil {
		t.Fatalf("the promoted standby does not take writes: %v", err)
	}
	rows, err := standby.DB().Query("SHOW SLAVE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	has := rows.Next()
	rows.Close()
	if has {
		t.Fatal("SHOW SLAVE STATUS not empty on the promoted standby: RESET SLAVE ALL missing")
	}
	t.Logf("%d commits OK'd, all on the promoted standby", len(ok))
	if !strings.Contains(f.p.log.String(), "drained: every transaction up to the frontier is applied") {
		t.Fatal("the promotion did not drain through the replica")
	}
}

// TestApplyModeDefaultAndValidation: unset, the mode is replica for a
// standby on this host and direct elsewhere; an explicit replica mode for a
// standby elsewhere, a bad mode or thread count is refused naming the key.
func TestApplyModeDefaultAndValidation(t *testing.T) {
	tests := []struct {
		name, host, mode string
		threads          int
		want, wantErr    string
	}{
		{name: "unset, loopback", host: "127.0.0.1", threads: 4, want: ModeReplica},
		{name: "unset, localhost", host: "localhost", threads: 4, want: ModeReplica},
		{name: "unset, remote", host: "10.0.0.7", threads: 4, want: ModeDirect},
		{name: "direct", host: "127.0.0.1", mode: "direct", threads: 4, want: ModeDirect},
		{name: "replica, remote", host: "10.0.0.7", mode: "replica", threads: 4, want: ModeReplica,
			wantErr: `standby.mode = "replica" with standby.host = "10.0.0.7": the standby must reach the agent's binlog server`},
		{name: "bad mode", host: "127.0.0.1", mode: "parallel", threads: 4, want: "parallel", wantErr: `standby.mode = "parallel": want "replica" or "direct"`},
		{name: "zero threads", host: "127.0.0.1", threads: 0, want: ModeReplica, wantErr: "standby.parallel_threads = 0: want 1-16383"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Standby.Host, c.Standby.Mode, c.Standby.ParallelThreads = tt.host, tt.mode, tt.threads
			if got := c.ApplyMode(); got != tt.want {
				t.Fatalf("ApplyMode() = %q, want %q", got, tt.want)
			}
			err := c.validateApplyMode()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestReplicaModeRelayPurge: in replica mode, segments whose transactions
// are all in the standby's gtid_slave_pos are purged past retention; the
// live one stays; a standby restarted after the purge (its own relay log
// lost) continues from the agent's kept segments, nothing lost or doubled.
func TestReplicaModeRelayPurge(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[relay]\nretention = \"300ms\"\ncheckpoint_interval = \"50ms\"\n")
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := range 5 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
		e.exec("FLUSH BINARY LOGS")
	}
	e.exec("INSERT INTO test.t (c) VALUES (99)")
	e.waitApplied(standby, 60*time.Second)
	c := e.config()
	harness.WaitFor(t, "old segments to be purged", 30*time.Second, func() bool {
		segs, _ := relay.ListSegments(c.RelayDir())
		return len(segs) <= 3
	})
	segs, _ := relay.ListSegments(c.RelayDir())
	if last := segs[len(segs)-1]; last.MasterFile != e.masterPos().File {
		t.Fatalf("the live segment (%s) was purged: %+v", e.masterPos().File, segs)
	}
	if !strings.Contains(p.log.String(), "relay segment purged: applied on the standby") {
		t.Fatal("purges are not logged")
	}
	if err := standby.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO test.t (c) VALUES (100)")
	e.waitApplied(standby, 60*time.Second)
	assertSameRows(t, e.master, standby, 7)
	if rep := p.a.liveReport(); rep.Applier.State == "error" || rep.Applier.LastIOError != "" {
		t.Fatalf("after the purge and the standby's restart: %+v", rep.Applier)
	}
}

// TestReplicaModePreflightLogSlaveUpdatesOff: a standby whose binlog would
// not carry the master's GTIDs is refused in one line naming the variable;
// --check is CRITICAL with it; the standby is not configured as a replica.
func TestReplicaModePreflightLogSlaveUpdatesOff(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	standby = e.restartStandbyWith(standby, "log_slave_updates=OFF")
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	line := "standby 127.0.0.1:" + strconv.Itoa(standby.Port()) + ": log_slave_updates=OFF: the standby's binary log would not carry the master's transactions " +
		"(after a promotion, its replicas and gtid_binlog_pos would miss them); start the standby with log_slave_updates=ON"
	var rep status.Report
	harness.WaitFor(t, "the preflight to refuse the standby", 60*time.Second, func() bool {
		rep = p.a.liveReport()
		return rep.Applier != nil && rep.Applier.State == "error"
	})
	if rep.Applier.LastError != line {
		t.Fatalf("applier error %q, want %q", rep.Applier.LastError, line)
	}
	if code, text := rep.Check(status.DefaultCheckThresholds(), time.Now()); code != status.CheckCritical || !strings.Contains(text, "log_slave_updates=OFF") {
		t.Fatalf("status --check %d %q, want CRITICAL naming log_slave_updates", code, text)
	}
	rows, err := standby.DB().Query("SHOW SLAVE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	configured := rows.Next()
	rows.Close()
	if configured {
		t.Fatal("a refused standby was configured as a replica")
	}
	if n := strings.Count(p.log.String(), "log_slave_updates=OFF"); n != 1 {
		t.Fatalf("the finding was logged %d times, want once", n)
	}
}

// TestReplicaModeBulkTransactions: a 200,000-row INSERT ... SELECT and a
// 100,000-row UPDATE, each one transaction, reach the standby whole through
// the binlog server and the standby's parallel threads.
func TestReplicaModeBulkTransactions(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("CREATE TABLE test.big (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
	e.exec("INSERT INTO test.big SELECT seq, CONCAT('row-', seq, REPEAT('x', 20)), seq * 7 FROM test.seq_1_to_200000")
	e.exec("UPDATE test.big SET n = n + 1 WHERE id <= 100000")
	if _, err := e.load(context.Background(), 8, 500); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 5*time.Minute)
	for _, q := range []string{"SELECT CONCAT_WS(' ', COUNT(*), SUM(n)) FROM test.big", "SELECT CONCAT_WS(' ', COUNT(*), SUM(c)) FROM test.t"} {
		if m, s := query(t, e.master, q), query(t, standby, q); m != s {
			t.Fatalf("%s: master %s, standby %s", q, m, s)
		}
	}
}

// TestReplicaModeCatchesUpFromAFullRelay: the master's whole history is in
// the relay log before the standby starts replicating (a standby added
// late, or back after a long outage): it arrives whole, at once, through
// the 4 parallel threads.
func TestReplicaModeCatchesUpFromAFullRelay(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	e.exec("SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	if _, err := e.load(context.Background(), 8, 4000); err != nil {
		t.Fatal(err)
	}
	e.exec("CREATE TABLE test.big (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
	e.exec("INSERT INTO test.big SELECT seq, CONCAT('row-', seq), seq FROM test.seq_1_to_100000")
	e.startInProcess(ingest.Hooks{})
	e.waitApplied(standby, 5*time.Minute)
	assertSameRows(t, e.master, standby, 4000)
	q := "SELECT CONCAT_WS(' ', COUNT(*), SUM(n)) FROM test.big"
	if m, s := query(t, e.master, q), query(t, standby, q); m != s {
		t.Fatalf("%s: master %s, standby %s", q, m, s)
	}
}

// TestReplicaModePromotionResumesAfterAgentKill: in replica mode, the agent
// is killed with kill -9 after the promotion's drain was recorded (the
// crash injection); restarted, it does not configure the
// standby as a replica again, finishes the promotion, and the new master
// stays writable with no replication configured and every committed row.
func TestReplicaModePromotionResumesAfterAgentKill(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+`
[failover]
mode = "auto"
`)
	p := e.startProcessEnv(killAfterStepEnv + "=" + checkpoint.StepApplied)
	e.waitSemiSyncClient()
	ctx := context.Background()
	report := e.processReport
	e.waitProcessLossless()
	for i := range 20 {
		e.exec("INSERT INTO test.t (id, c) VALUES (?, 1)", 1000+i)
	}
	must(t, e.master.Kill())
	harness.WaitFor(t, "the agent to kill itself after the drain", 60*time.Second, p.Exited)
	logBefore := len(p.Log())
	p.start()
	harness.WaitFor(t, "the resumed promotion to finish", 60*time.Second, func() bool { return report().Role == checkpoint.RoleMaster })
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	if missing := missingIDs(t, standby, ids); len(missing) > 0 {
		t.Fatalf("committed ids missing on the new master: %v", missing)
	}
	must(t, standby.Exec(ctx, "INSERT INTO test.t (c) VALUES (3)"))
	after := p.Log()[logBefore:]
	if strings.Contains(after, "standby configured as a replica") || !strings.Contains(after, "past its drain") {
		t.Fatalf("the restarted agent's log:\n%s\nwant no replica configuration after the drain", after)
	}
	rows, err := standby.DB().Query("SHOW SLAVE STATUS")
	must(t, err)
	configured := rows.Next()
	rows.Close()
	if ro := query(t, standby, "SELECT @@GLOBAL.read_only"); ro != "0" || configured {
		t.Fatalf("new master read_only=%s, replication configured: %t", ro, configured)
	}
}

// TestReplicaModeAppliedMirrored: in replica mode the standby's
// gtid_slave_pos is mirrored into the checkpoint store's applied record, so
// that `status` of a stopped daemon says what the standby has applied (and
// --check counts no lag) rather than nothing; an agent restarted while the
// standby is down keeps that record (it learns nothing new, and writes
// nothing); once the standby is back, the record follows it again.
func TestReplicaModeAppliedMirrored(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx := context.Background()
	for i := range 5 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.waitApplied(standby, 60*time.Second)
	applied := query(t, standby, "SELECT @@GLOBAL.gtid_slave_pos")
	if applied == "" || applied != query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos") {
		t.Fatalf("standby gtid_slave_pos %q, master gtid_binlog_pos %q", applied, query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos"))
	}
	c := e.config()
	stored := func(what string) status.Report {
		t.Helper()
		rep, err := status.Get(ctx, c.StatusSource())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Daemon != "stopped" {
			t.Fatalf("%s: status from a %s daemon, want the stopped daemon's checkpoint", what, rep.Daemon)
		}
		if rep.Applied == nil || rep.Applied.GTID != applied {
			t.Fatalf("%s: stored applied frontier %+v, want the standby's gtid_slave_pos %s", what, rep.Applied, applied)
		}
		if rep.Applied.File != "" {
			t.Fatalf("%s: stored applied frontier names file %s:%d; replica mode knows no file position", what, rep.Applied.File, rep.Applied.Pos)
		}
		if n, ok := rep.ApplyLagTransactions(); !ok || n != 0 {
			t.Fatalf("%s: apply lag %d transactions (measurable %t), want 0: received %s, applied %s", what, n, ok, rep.Received.GTID, rep.Applied.GTID)
		}
		return rep
	}
	must(t, p.stop())
	stored("agent stopped")

	// The standby goes down, the agent starts and stops without reaching it.
	must(t, standby.Stop(ctx))
	p = e.startInProcess(ingest.Hooks{})
	harness.WaitFor(t, "the agent to find the standby unreachable", 60*time.Second, func() bool {
		ap := p.a.liveReport().Applier
		return ap != nil && ap.State == "connecting" && ap.LastError != ""
	})
	must(t, p.stop())
	stored("agent restarted and stopped while the standby was down")

	// The standby is back: the record follows it.
	must(t, standby.Restart(ctx))
	p = e.startInProcess(ingest.Hooks{})
	e.exec("INSERT INTO test.t (c) VALUES (99)")
	e.waitApplied(standby, 60*time.Second)
	applied = query(t, standby, "SELECT @@GLOBAL.gtid_slave_pos")
	must(t, p.stop())
	stored("agent stopped after the standby caught up")
	assertSameRows(t, e.master, standby, 6)
}
