package agent

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// restartStandbyWith stops the standby and starts it again on the same
// directory and port with extra my.cnf lines (none: the sandbox defaults).
func (e *testEnv) restartStandbyWith(old *sandbox.Server, extra ...string) *sandbox.Server {
	e.t.Helper()
	ctx := context.Background()
	if err := old.Stop(ctx); err != nil {
		e.t.Fatal(err)
	}
	s, err := sandbox.Start(ctx, sandbox.Config{Dir: old.Dir(), Port: old.Port(), ServerID: 2, Log: e.t.Logf, Extra: extra})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

func query(t *testing.T, s *sandbox.Server, q string) string {
	t.Helper()
	v, err := s.QueryString(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitStopped waits until the applier is stopped on a StopError whose text
// satisfies ok, and returns its status.
func waitStopped(t *testing.T, p *inProcess, what string, ok func(string) bool) applier.Status {
	t.Helper()
	var st applier.Status
	harness.WaitFor(t, "the applier to stop: "+what, 60*time.Second, func() bool {
		st = directApplier(t, p.a).Status()
		return st.State == applier.StateError && st.FailedGTID == "" && ok(st.LastError)
	})
	return st
}

// assertStoppedVisibly checks what a person and a machine see of a stopped
// applier: the report, `status --check`, a refused skip, and a stream that
// keeps receiving.
func assertStoppedVisibly(t *testing.T, p *inProcess, line string) {
	t.Helper()
	rep := p.a.liveReport()
	if rep.Applier == nil || rep.Applier.State != "error" || rep.Applier.LastError != line {
		t.Fatalf("status report applier %+v, want state error with %q", rep.Applier, line)
	}
	if code, text := rep.Check(status.DefaultCheckThresholds(), time.Now()); code != status.CheckCritical || !strings.Contains(text, line) {
		t.Fatalf("status --check %d %q, want CRITICAL naming the finding", code, text)
	}
	if rep.Stream.State != ingest.StateStreaming {
		t.Fatalf("stream %s: the stream must keep receiving while the applier is stopped", rep.Stream.State)
	}
	if err := directApplier(t, p.a).Skip("0-1-1"); err == nil {
		t.Fatal("skip accepted while stopped on the standby's settings or state")
	}
}

// nothingApplied checks that the standby did not get the master's schema.
func nothingApplied(t *testing.T, standby *sandbox.Server) {
	t.Helper()
	if n := query(t, standby, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'test'"); n != "0" {
		t.Fatal("the applier applied transactions to a standby it refused")
	}
}

// TestStandbyPreflightLogBinOff: a standby without a binary log has no GTID
// state to be the applied checkpoint: the applier stops with one line naming
// log_bin, applies nothing, logs it once; restarting the standby with
// log_bin resumes without restarting the agent.
func TestStandbyPreflightLogBinOff(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	standby = e.restartStandbyWith(standby, "skip-log-bin")
	if v := query(t, standby, "SELECT @@GLOBAL.log_bin"); v != "0" {
		t.Fatalf("standby log_bin = %s, want 0", v)
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	line := fmt.Sprintf("standby %s: log_bin=OFF: exactly-once apply needs the binary log (its gtid_binlog_state is the applied checkpoint; "+
		"without it a restart applies transactions again); start the standby with log_bin (the applier checks again every 10s)", standby.Addr())
	waitStopped(t, p, "log_bin=OFF", func(s string) bool { return s == line })
	assertStoppedVisibly(t, p, line)
	nothingApplied(t, standby)

	standby = e.restartStandbyWith(standby)
	e.waitApplied(standby, 90*time.Second)
	if n := strings.Count(p.log.String(), "applier stopped until the standby is fixed: "+line); n != 1 {
		t.Fatalf("the finding was logged %d times, want once", n)
	}
	if st := directApplier(t, p.a).Status(); st.LastError != "" || len(st.Warnings) != 0 || st.Errors != 1 {
		t.Fatalf("applier status after the fix: %+v", st)
	}
}

// TestStandbyPreflightStrictModeOff: without gtid_strict_mode the standby
// would not refuse a double apply: stopped, nothing applied, re-checked
// without logging again, and resumed by SET GLOBAL gtid_strict_mode=ON.
func TestStandbyPreflightStrictModeOff(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	if err := standby.Exec(context.Background(), "SET GLOBAL gtid_strict_mode = OFF"); err != nil {
		t.Fatal(err)
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	line := fmt.Sprintf("standby %s: gtid_strict_mode=OFF: without it the standby does not refuse a transaction applied twice or out of order; "+
		"SET GLOBAL gtid_strict_mode=ON on the standby and put gtid_strict_mode=ON in its options (the applier checks again every 10s)", standby.Addr())
	waitStopped(t, p, "gtid_strict_mode=OFF", func(s string) bool { return s == line })
	assertStoppedVisibly(t, p, line)
	nothingApplied(t, standby)
	if v := query(t, standby, "SELECT @@GLOBAL.gtid_binlog_pos"); v != "" {
		t.Fatalf("standby gtid_binlog_pos %q, want empty", v)
	}

	// The applier checks again (its preflight query reaches the standby)
	// without logging the same finding again.
	comSelect := func() int64 {
		v, err := standby.Status(context.Background(), "Com_select")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	before := comSelect()
	harness.WaitFor(t, "the applier to check the standby again", 60*time.Second, func() bool { return comSelect() > before })
	if st := directApplier(t, p.a).Status(); st.State != applier.StateError || st.LastError != line || st.Errors != 1 {
		t.Fatalf("after a re-check: %+v", st)
	}
	if n := strings.Count(p.log.String(), "applier stopped until the standby is fixed: "+line); n != 1 {
		t.Fatalf("the finding was logged %d times, want once", n)
	}

	if err := standby.Exec(context.Background(), "SET GLOBAL gtid_strict_mode = ON"); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 90*time.Second)
	if st := directApplier(t, p.a).Status(); st.LastError != "" || st.State == applier.StateError {
		t.Fatalf("applier status after the fix: %+v", st)
	}
}

// TestStandbyPreflightWarnings: sync_binlog=0 and
// innodb_flush_log_at_trx_commit=2 weaken durability after a power loss
// only: the applier applies, and shows both in its status, logged once.
func TestStandbyPreflightWarnings(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	standby = e.restartStandbyWith(standby, "sync_binlog=0", "innodb_flush_log_at_trx_commit=2")
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := range 5 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.waitApplied(standby, 60*time.Second)
	want := []string{
		fmt.Sprintf("standby %s: innodb_flush_log_at_trx_commit=2: a power loss can lose transactions from InnoDB while the binary log keeps their GTIDs, "+
			"and the applier would not apply them again; SET GLOBAL innodb_flush_log_at_trx_commit=1 on the standby and put it in its options", standby.Addr()),
		fmt.Sprintf("standby %s: sync_binlog=0: a power loss can lose the last transactions from the standby's binary log, the applied checkpoint "+
			"(the applier then refuses to go on, or applies transactions InnoDB kept a second time); SET GLOBAL sync_binlog=1 on the standby and put it in its options", standby.Addr()),
	}
	st := directApplier(t, p.a).Status()
	if strings.Join(st.Warnings, "\n") != strings.Join(want, "\n") {
		t.Fatalf("applier warnings\n%q\nwant\n%q", st.Warnings, want)
	}
	if st.LastError != "" || st.Errors != 0 || st.Transactions == 0 {
		t.Fatalf("applier status %+v: warnings must not stop it", st)
	}
	log := p.log.String()
	for _, w := range want {
		if n := strings.Count(log, w); n != 1 {
			t.Fatalf("warning logged %d times, want once (one session): %s", n, w)
		}
	}
	// A fresh standby has nothing to follow in domain 0: said once.
	if n := strings.Count(log, "the standby has no GTID in this domain yet"); n != 1 {
		t.Fatalf("the fresh-domain note was logged %d times, want once", n)
	}
}

// TestStandbyBehindCheckpoint: after the agent applied up to G, the standby
// loses its last transactions (as a restore from an older backup, or a power
// loss with sync_binlog=0, would leave it); at the agent's next start the
// applier refuses, naming both positions, and applies nothing.
func TestStandbyBehindCheckpoint(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	ctx := context.Background()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := 1; i <= 10; i++ {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.waitApplied(standby, 60*time.Second)
	applied := query(t, e.master, "SELECT @@gtid_binlog_pos")
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if rep, err := status.Get(ctx, e.config().StatusSource()); err != nil || rep.Applied == nil || rep.Applied.GTID != applied {
		t.Fatalf("checkpoint applied %+v (%v), want GTID %s", rep.Applied, err, applied)
	}
	// The standby loses the last three transactions (rows 8-10), data and
	// GTIDs together.
	g, err := binlog.ParseGTID(applied)
	if err != nil {
		t.Fatal(err)
	}
	older := binlog.GTID{Domain: g.Domain, Server: g.Server, Seq: g.Seq - 3}
	for _, q := range []string{
		"SET SESSION sql_log_bin = 0; DELETE FROM test.t WHERE id > 7",
		"RESET MASTER",
		"SET GLOBAL gtid_binlog_state = '" + older.String() + "'",
	} {
		if err := standby.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	p = e.startInProcess(ingest.Hooks{})
	line := fmt.Sprintf("standby %s: gtid_binlog_pos %s is behind the agent's applied checkpoint %s (domain 0): "+
		"the standby lost transactions the agent applied (restored from an older backup, or commits lost in a crash or power loss); "+
		"rebuild it from a backup or clone at or after %s", standby.Addr(), older, applied, applied)
	waitStopped(t, p, "standby behind the checkpoint", func(s string) bool { return s == line })
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (11)")
	e.waitCaughtUp(p.a.liveReport)
	assertStoppedVisibly(t, p, line)
	if v := query(t, standby, "SELECT @@GLOBAL.gtid_binlog_pos"); v != older.String() {
		t.Fatalf("standby gtid_binlog_pos %s, want %s: nothing may be applied", v, older)
	}
	if n := query(t, standby, "SELECT COUNT(*) FROM test.t"); n != "7" {
		t.Fatalf("standby has %s rows in test.t, want 7: nothing may be applied", n)
	}
}

// TestStandbyRelayGapRefused: the relay log starts later than the standby's
// GTID state (the agent was set up with a start position after it): the
// first transaction to apply does not follow the standby's last one, and the
// applier refuses, naming both and the count missing.
func TestStandbyRelayGapRefused(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout = 100") // no replica yet
	for i := range 20 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout = 10000")
	// The relay log starts at the master's current position: a first run
	// before the standby is configured (beside a standby that holds the
	// master's transactions, a first run that starts after it is refused
	// at once: TestFirstStartRefusesAStandbyThatCannotContinue)...
	pos := e.masterPos()
	g, err := binlog.ParseGTID(query(t, e.master, "SELECT @@gtid_binlog_pos"))
	if err != nil {
		t.Fatal(err)
	}
	next := g.Seq + 1 // the relay log's first transaction
	writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "file:`+pos.String()+`"`, 1))
	first := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	// ...and the standby is an old copy, at 0-1-3.
	for _, q := range []string{"RESET MASTER", "SET GLOBAL gtid_binlog_state = '0-1-3'"} {
		if err := standby.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (100)")
	re := regexp.MustCompile("^" + regexp.QuoteMeta(fmt.Sprintf("standby %s: the next transaction in the relay log for domain 0 is 0-1-%d (at %s:", standby.Addr(), next, pos.File)) +
		`[0-9]+` + regexp.QuoteMeta(fmt.Sprintf(") but the standby is at 0-1-3: %d transactions (seq 4 to %d) are missing from the relay log; "+
		"apply them to the standby from the master's binary log, or rebuild it; only if the master skipped those numbers on purpose (gtid_seq_no set forward), "+
		"mark it on the standby: SET gtid_domain_id=0, server_id=1; SET gtid_seq_no=%d; DROP TABLE IF EXISTS mysql.hotstandby_no_such_table", next-4, next-1, next-1)) + "$")
	st := waitStopped(t, p, "the relay gap", re.MatchString)
	assertStoppedVisibly(t, p, st.LastError)
	if v := query(t, standby, "SELECT @@GLOBAL.gtid_binlog_pos"); v != "0-1-3" {
		t.Fatalf("standby gtid_binlog_pos %s, want 0-1-3: nothing may be applied", v)
	}
	nothingApplied(t, standby)
}

// TestStandbyFollowsMasterSeqJump: no false gap. The master's sequence
// jumps on purpose (SET gtid_seq_no) right after the last transaction the
// agent applied before a restart; the relay segment before the restarted
// session's start point shows the standby's last GTID right before the
// jump, so the applier goes on.
func TestStandbyFollowsMasterSeqJump(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := range 3 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.waitApplied(standby, 60*time.Second)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	g, err := binlog.ParseGTID(query(t, e.master, "SELECT @@gtid_binlog_pos"))
	if err != nil {
		t.Fatal(err)
	}
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout = 100") // the agent is down
	e.exec(fmt.Sprintf("SET SESSION gtid_seq_no = %d; INSERT INTO test.t (c) VALUES (50)", g.Seq+50))
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout = 10000")

	p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.waitApplied(standby, 60*time.Second)
	if st := directApplier(t, p.a).Status(); st.LastError != "" || st.Errors != 0 {
		t.Fatalf("applier status %+v: the jump must not be refused", st)
	}
	if log := p.log.String(); !strings.Contains(log, "the master's sequence jumped in this domain") ||
		!strings.Contains(log, "in the relay segment before the session's start point") {
		t.Fatal("the jump was not accepted on the relay log's evidence before the start point")
	}
}

// TestStandbyErrantCleanupIsNotBehind: an errant transaction written on the
// standby in a domain of its own is reported, then removed the usual way
// (RESET MASTER, gtid_binlog_state set to the master's). The applied
// checkpoint holds only the relay log's GTIDs, so the next start does not
// call the cleaned standby behind, and applying goes on.
func TestStandbyErrantCleanupIsNotBehind(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's preflight
	ctx := context.Background()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.waitApplied(standby, 60*time.Second)
	if err := standby.Exec(ctx, "SET SESSION gtid_domain_id = 5; CREATE TABLE test.sneaky (id INT)"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the errant transaction to be reported", 30*time.Second, func() bool {
		er := directApplier(t, p.a).Status().Errant
		return len(er) == 1 && er[0] == "5-2-1"
	})
	e.exec("INSERT INTO test.t (c) VALUES (2)") // applied after the errant one
	harness.WaitFor(t, "the row after the errant transaction", 30*time.Second, func() bool {
		return query(t, standby, "SELECT COUNT(*) FROM test.t") == "2" && directApplier(t, p.a).Status().Transactions > 0
	})
	masterPos := query(t, e.master, "SELECT @@gtid_binlog_pos")
	master, err := binlog.ParseGTIDSet(binlog.MariaDB, masterPos)
	if err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the applied frontier to reach the master", 30*time.Second, func() bool {
		ok, _ := directApplier(t, p.a).Status().Frontier.Pos.GTID.Contains(master)
		return ok
	})
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"SET SESSION sql_log_bin = 0; DROP TABLE test.sneaky",
		"RESET MASTER",
		"SET GLOBAL gtid_binlog_state = '" + masterPos + "'",
	} {
		if err := standby.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (3)")
	var st applier.Status
	harness.WaitFor(t, "the applier to apply the next row, or to stop", 60*time.Second, func() bool {
		st = directApplier(t, p.a).Status()
		return st.State == applier.StateError || query(t, standby, "SELECT COUNT(*) FROM test.t") == "3"
	})
	if st.State == applier.StateError {
		t.Fatalf("the cleaned standby was refused: %s", st.LastError)
	}
	e.waitApplied(standby, 60*time.Second)
	if st := directApplier(t, p.a).Status(); st.LastError != "" || st.Errors != 0 || len(st.Errant) != 0 {
		t.Fatalf("applier status after the cleanup %+v", st)
	}
	if got := directApplier(t, p.a).Status().Frontier.Pos.GTID.String(); got != query(t, e.master, "SELECT @@gtid_binlog_pos") {
		t.Fatalf("applied frontier GTIDs %s: only the relay log's (the master's) GTIDs belong there", got)
	}
}
