package agent

import (
	"context"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// TestApplyRowsAndDDL: DML of several types and DDL in the middle of the
// stream reach the standby identical, with the master's GTIDs; in both apply
// modes.
func TestApplyRowsAndDDL(t *testing.T) {
	for _, mode := range []string{ModeDirect, ModeReplica} {
		t.Run(mode, func(t *testing.T) { testApplyRowsAndDDL(t, mode) })
	}
}

func testApplyRowsAndDDL(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyIn(mode)
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for _, q := range []string{
		"CREATE TABLE test.types (id INT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, d DECIMAL(65,30), f DOUBLE, b BINARY(8), vb VARBINARY(20), ts TIMESTAMP(6) NULL, dt DATETIME(6), tm TIME(6), y YEAR, bits BIT(64), e ENUM('a','b'), st SET('x','y'), j JSON, g POINT, txt TEXT CHARACTER SET utf8mb4, l VARCHAR(10) CHARACTER SET latin1, v INT AS (id * 2) VIRTUAL, pst INT AS (id + 1) PERSISTENT)",
		"INSERT INTO test.types (id,u,s,d,f,b,vb,ts,dt,tm,y,bits,e,st,j,g,txt,l) VALUES (1, 18446744073709551615, -9223372036854775808, '-12345678901234567890123456789012345.123456789012345678901234567890', 1.7976931348623157e308, 'ab\\0', 'x\\0\\0', '2038-01-19 03:14:07.999999', '9999-12-31 23:59:59.999999', '-838:59:59.000000', 2155, b'1111111111111111111111111111111111111111111111111111111111111111', 'b', 'x,y', '{\"k\": [1, 2.5, \"s\"]}', POINT(1.5, -2.25), '😀 ünïcode', 'çà')",
		"INSERT INTO test.types (id, u, s) VALUES (2, 0, 0)",
		"UPDATE test.types SET s = s + 1, txt = CONCAT(IFNULL(txt,''), '!') WHERE id = 2",
		"ALTER TABLE test.types ADD COLUMN added INT DEFAULT 7",
		"INSERT INTO test.types (id, added) VALUES (3, 8)",
		"CREATE TABLE test.nopk (a INT, b VARCHAR(10))",
		"INSERT INTO test.nopk VALUES (1,'dup'),(1,'dup'),(2,'x')",
		"DELETE FROM test.nopk WHERE a = 2",
		"RENAME TABLE test.nopk TO test.nopk2",
		"CREATE DATABASE other",
		"CREATE TABLE other.t (id INT PRIMARY KEY)",
		"INSERT INTO other.t VALUES (1),(2),(3)",
		"DROP DATABASE other",
		"CREATE TABLE test.odd (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, blb LONGBLOB, y YEAR, bin BINARY(16), lt TEXT CHARACTER SET latin1)",
		"SET SESSION sql_mode = ''; INSERT INTO test.odd VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', REPEAT(x'00ff7f80', 1500000), 0, x'00010000', 'Ñandú')",
		"INSERT INTO test.odd VALUES (2, '2024-02-29', '1000-01-01 00:00:00', '1970-01-01 00:00:01', RANDOM_BYTES(1024), 1901, RANDOM_BYTES(16), NULL)",
	} {
		e.exec(q)
	}
	if _, err := e.load(context.Background(), 8, 2000); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 60*time.Second)
	for _, tc := range []struct{ table, order string }{{"test.types", "id"}, {"test.nopk2", "a, b"}, {"test.t", "id"}, {"test.odd", "id"}} {
		m, s := tableRows(t, e.master, tc.table, tc.order), tableRows(t, standby, tc.table, tc.order)
		if !reflect.DeepEqual(m, s) {
			t.Fatalf("%s differs:\nmaster  %v\nstandby %v", tc.table, m, s)
		}
	}
	rep := p.a.liveReport()
	if rep.Applier == nil || rep.Applier.LastError != "" || len(rep.Applier.Errant) != 0 {
		t.Fatalf("applier report %+v", rep.Applier)
	}
	if ro, _ := standby.QueryString(context.Background(), "SELECT @@read_only"); ro != "1" {
		t.Fatalf("standby read_only = %s, want 1", ro)
	}
	e.exec("SET SESSION sql_log_bin=0; GRANT SELECT ON *.* TO 'repl'@'127.0.0.1'") // verify reads
	out, err := exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("verify after the workload: %v\n%s", err, out)
	}
	// A write that reaches the standby from elsewhere is reported.
	if err := standby.Exec(context.Background(), "CREATE TABLE test.sneaky (id INT)"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "status to report the errant transaction", 20*time.Second, func() bool {
		r := p.a.liveReport()
		return r.Applier != nil && len(r.Applier.Errant) == 1 && strings.HasPrefix(r.Applier.Errant[0], "0-2-")
	})
}

// TestApplyErrorStopsAndSkipIsRecorded: a row changed on the standby behind
// the agent's back makes the next transaction fail; the applier stops with
// the GTID and the table, the stream goes on, and an explicit skip moves on
// and is in the audit log.
func TestApplyErrorStopsAndSkipIsRecorded(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's texts; replica mode: TestReplicaModeSQLErrorSkip
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
	e.waitApplied(standby, 30*time.Second)
	// Behind the agent's back (and not binlogged: no errant GTID).
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin=0; INSERT INTO test.t (id, c) VALUES (2, 99)"); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
	failing, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	e.exec("INSERT INTO test.t (id, c) VALUES (3, 3)")
	c := e.config()
	var rep status.Report
	harness.WaitFor(t, "the applier to stop on the error", 30*time.Second, func() bool {
		rep, _ = status.Get(ctx, c.StatusSource())
		return rep.Applier != nil && rep.Applier.State == "error"
	})
	msg := rep.Applier.LastError
	for _, want := range []string{"GTID " + failing, "test.t", "Duplicate entry '2'"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("apply error %q does not name %q", msg, want)
		}
	}
	if rep.Stream.State != ingest.StateStreaming {
		t.Fatalf("stream state %s: the stream must keep receiving while the applier is stopped", rep.Stream.State)
	}
	// Skipping anything but the failing GTID is refused.
	if out, err := exec.Command(hsBinary, "skip", "--config", e.cfgPath, "--gtid", "0-1-999").CombinedOutput(); err == nil || !strings.Contains(string(out), "refused: applier: not stopped on that GTID") {
		t.Fatalf("skip of another GTID: %v: %s", err, out)
	}
	// Through the control socket: the daemon names the caller from the
	// socket's peer credentials.
	skip := exec.Command(hsBinary, "skip", "--config", e.cfgPath, "--gtid", failing)
	if out, err := skip.CombinedOutput(); err != nil {
		t.Fatalf("skip: %v: %s", err, out)
	}
	by := selfBy(t, skip.Process.Pid)
	e.waitApplied(standby, 30*time.Second)
	if v, _ := standby.QueryString(ctx, "SELECT c FROM test.t WHERE id = 2"); v != "99" {
		t.Fatalf("standby row 2 has c=%s; the skipped transaction must not have been applied", v)
	}
	if v, _ := standby.QueryString(ctx, "SELECT c FROM test.t WHERE id = 3"); v != "3" {
		t.Fatalf("the transaction after the skip is not applied (c=%q)", v)
	}
	rep, _ = status.Get(ctx, c.StatusSource())
	if len(rep.Audit) != 1 || !strings.Contains(rep.Audit[0], "skip GTID "+failing+" by "+by+"; applier error: ") || !strings.Contains(rep.Audit[0], "Duplicate entry") {
		t.Fatalf("audit log %q, want the skip by %s", rep.Audit, by)
	}
	if rep.Applier.State == "error" || rep.Applier.LastError != "" {
		t.Fatalf("applier still failing: %+v", rep.Applier)
	}
	p.kill()
	store, err := checkpoint.Open(c.CheckpointPath(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if log, err := store.AuditLog(); err != nil || len(log) != 1 || log[0].By != by {
		t.Fatalf("audit log %+v, %v: want one entry by %s", log, err, by)
	}
}
