package replica

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
)

// TestReplicaStandbyRestartMidLoad: kill -9 of the standby's mariadbd while
// the master takes load. Its relay log is lost (GTID mode purges it); the
// replica resumes from gtid_slave_pos, and nothing is lost or doubled (the
// shared counter equals the number of transactions).
func TestReplicaStandbyRestartMidLoad(t *testing.T) {
	e := newEnv(t)
	r, _ := e.run(e.config())
	ctx := context.Background()
	loadDone := make(chan error, 1)
	go func() { loadDone <- e.load(ctx, 6, 300, 0) }()
	harness.WaitFor(t, "the standby to apply part of the load", 60*time.Second, func() bool {
		v, err := e.standby.QueryString(ctx, "SELECT n FROM test.counter WHERE id = 1")
		n, _ := strconv.Atoi(v)
		return err == nil && n >= 100
	})
	if err := e.standby.Kill(); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the replica to see the standby gone", 30*time.Second, func() bool { return r.Status().Retries > 0 })
	if err := e.standby.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	e.assertEqual(r, 6*300)
	if st := r.Status(); st.State != StateRunning || st.LastSQLErrno != 0 {
		t.Fatalf("status after the restart: %+v", st)
	}
	// SET GLOBAL does not survive the restart: the replica set it again.
	harness.WaitFor(t, "the restarted standby to be read-only with 4 optimistic threads again", 30*time.Second, func() bool {
		v, err := e.standby.QueryString(ctx, "SELECT CONCAT(@@GLOBAL.read_only, ' ', @@GLOBAL.slave_parallel_threads, ' ', @@GLOBAL.slave_parallel_mode)")
		return err == nil && v == "ON 4 optimistic"
	})
}

// TestReplicaSQLErrorSkip: a row inserted on the standby beforehand (no
// binlog) conflicts with the master's insert: the SQL thread stops, the
// status names that transaction's GTID, a skip of another GTID is refused,
// and a skip of that one moves past exactly it; the standby's binlog then
// carries the master's GTIDs.
func TestReplicaSQLErrorSkip(t *testing.T) {
	e := newEnv(t)
	r, _ := e.run(e.config())
	e.exec(e.master, "INSERT INTO test.t VALUES (1, 1, 'before')")
	e.waitCaughtUp(r)
	e.exec(e.standby, "SET SESSION sql_log_bin=0; INSERT INTO test.t VALUES (2, 99, 'standby only')")
	conn, err := e.master.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "INSERT INTO test.t VALUES (2, 2, 'master')"); err != nil {
		t.Fatal(err)
	}
	var failing string
	if err := conn.QueryRowContext(context.Background(), "SELECT @@SESSION.last_gtid").Scan(&failing); err != nil {
		t.Fatal(err)
	}
	e.exec(e.master, "INSERT INTO test.t VALUES (3, 3, 'after')")
	var st Status
	harness.WaitFor(t, "the SQL thread to stop on "+failing, 60*time.Second, func() bool {
		st = r.Status()
		return st.State == StateError
	})
	if st.FailedGTID != failing || st.LastSQLErrno != 1062 || !strings.HasPrefix(st.Error(), "standby SQL thread stopped on GTID "+failing+": error 1062: ") {
		t.Fatalf("status %+v, error %q: want the SQL thread stopped on %s with 1062", st, st.Error(), failing)
	}
	t.Logf("status error: %s", st.Error())
	if err := r.Skip(context.Background(), "0-1-999"); !errors.Is(err, ErrNotFailing) {
		t.Fatalf("skip of another GTID: %v, want ErrNotFailing", err)
	}
	if err := r.Skip(context.Background(), failing); err != nil {
		t.Fatal(err)
	}
	e.waitCaughtUp(r)
	if got := e.query(e.standby, "SELECT GROUP_CONCAT(CONCAT(id, '=', s) ORDER BY id) FROM test.t"); got != "1=before,2=standby only,3=after" {
		t.Fatalf("standby rows %s: want exactly the skipped transaction missing", got)
	}
	if mp, sp := e.query(e.master, "SELECT @@GLOBAL.gtid_binlog_pos"), e.query(e.standby, "SELECT @@GLOBAL.gtid_binlog_pos"); mp != sp {
		t.Fatalf("standby gtid_binlog_pos %s, master %s", sp, mp)
	}
	if err := r.Skip(context.Background(), failing); !errors.Is(err, ErrNotFailing) {
		t.Fatalf("second skip: %v, want ErrNotFailing", err)
	}
}

// TestReplicaDrain: the promotion's drain waits for the frontier, then no
// replication configuration is left, and Run ends with ErrDrained.
func TestReplicaDrain(t *testing.T) {
	e := newEnv(t)
	r, done := e.run(e.config())
	if err := e.load(context.Background(), 4, 200, 0); err != nil {
		t.Fatal(err)
	}
	frontier := e.query(e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := r.Drain(ctx, frontier); err != nil {
		t.Fatal(err)
	}
	if got := e.query(e.standby, "SELECT @@GLOBAL.gtid_slave_pos"); got != frontier {
		t.Fatalf("after the drain gtid_slave_pos %s, want %s", got, frontier)
	}
	if m, s := e.digest(e.master), e.digest(e.standby); m != s || !strings.HasPrefix(m, "800:") {
		t.Fatalf("after the drain: master %s standby %s", m, s)
	}
	ss, err := readSlaveStatus(ctx, e.standby.DB())
	if err != nil || ss != nil {
		t.Fatalf("SHOW SLAVE STATUS after the drain: %v %v: want no replication configured", ss, err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrDrained) {
			t.Fatalf("Run: %v, want ErrDrained", err)
		}
		done <- err // for the cleanup
	case <-time.After(time.Minute):
		t.Fatal("Run did not end after the drain")
	}
	if st := r.Status(); st.State != StateDrained {
		t.Fatalf("state %s", st.State)
	}
}

// TestReplicaDrainStoppedSQLThread: a drain cannot reach a frontier past a
// failing transaction: it says so with the GTID instead of waiting forever.
func TestReplicaDrainStoppedSQLThread(t *testing.T) {
	e := newEnv(t)
	r, _ := e.run(e.config())
	e.waitCaughtUp(r)
	e.exec(e.standby, "SET SESSION sql_log_bin=0; INSERT INTO test.t VALUES (5, 0, 'standby only')")
	e.exec(e.master, "INSERT INTO test.t VALUES (5, 5, 'master')")
	frontier := e.query(e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
	err := r.Drain(context.Background(), frontier)
	if !errors.Is(err, ErrSQLThread) || !strings.Contains(err.Error(), "GTID "+frontier+": error 1062") {
		t.Fatalf("drain: %v, want ErrSQLThread naming %s", err, frontier)
	}
}

// TestReplicaPreflightLogSlaveUpdatesOff: a standby whose binlog would not
// carry the master's transactions is refused with one line, and nothing is
// configured on it.
func TestReplicaPreflightLogSlaveUpdatesOff(t *testing.T) {
	e := newEnv(t, "log_slave_updates=OFF")
	r, _ := e.run(e.config())
	var st Status
	harness.WaitFor(t, "the preflight to refuse", 30*time.Second, func() bool { st = r.Status(); return st.State == StatePreflight })
	want := fmt.Sprintf("standby %s: log_slave_updates=OFF: the standby's binary log would not carry the master's transactions "+
		"(after a promotion, its replicas and gtid_binlog_pos would miss them); start the standby with log_slave_updates=ON", e.standby.Socket())
	if len(st.Findings) != 1 || st.Findings[0] != want {
		t.Fatalf("findings %q, want exactly %q", st.Findings, want)
	}
	ss, err := readSlaveStatus(context.Background(), e.standby.DB())
	if err != nil || ss != nil {
		t.Fatalf("SHOW SLAVE STATUS on a refused standby: %v %v", ss, err)
	}
	if n := strings.Count(e.log.String(), "log_slave_updates=OFF"); n != 1 {
		t.Fatalf("the finding was logged %d times, want once", n)
	}
}

func TestQuoteAndScrub(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "abc", "'abc'"},
		{"quote", "a'b", `'a\'b'`},
		{"backslash", `a\b`, `'a\\b'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Fatalf("quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
	r := &Replica{cfg: Config{Source: Source{Password: "pw'1"}}}
	if got := r.scrub("near 'pw\\'1' and pw'1"); strings.Contains(got, "pw") {
		t.Fatalf("scrub left the password: %s", got)
	}
}

// TestReplicaIOThreadErrorIsNamed: a standby that asks the source for a GTID
// state the source cannot continue (it is ahead of the source's binlog)
// gets error 1236; the IO thread stops, and the status says so in one line
// naming the thread, the source and the error. The watcher starts it again
// after a while, and once the source has that GTID it goes on.
func TestReplicaIOThreadErrorIsNamed(t *testing.T) {
	e := newEnv(t)
	e.exec(e.standby, "SET SESSION sql_log_bin=0; CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY, c INT NOT NULL, s VARCHAR(64)) ENGINE=InnoDB")
	e.exec(e.standby, "SET GLOBAL gtid_slave_pos = '0-1-500'")
	r, _ := e.run(e.config())
	var st Status
	harness.WaitFor(t, "the IO thread to stop on an error", 60*time.Second, func() bool { st = r.Status(); return st.State == StateError })
	want := fmt.Sprintf("standby IO thread (from 127.0.0.1:%d) stopped: error 1236: ", e.master.Port())
	if st.IORunning != "No" || st.LastIOErrno != 1236 || !strings.HasPrefix(st.Error(), want) {
		t.Fatalf("status %+v, error %q: want it to start with %q", st, st.Error(), want)
	}
	t.Log(st.Error())
	// Once the source can continue from there, the watcher's retry of the
	// IO thread takes it up again.
	e.exec(e.master, "SET SESSION gtid_seq_no = 500; INSERT INTO test.t VALUES (500, 0, 'seq 500'); INSERT INTO test.t VALUES (501, 0, 'after')")
	harness.WaitFor(t, "the IO thread to run again", 60*time.Second, func() bool {
		st = r.Status()
		return st.State == StateRunning && st.IORunning == "Yes" && st.Applied == "0-1-501"
	})
	if n := e.query(e.standby, "SELECT GROUP_CONCAT(id) FROM test.t"); n != "501" {
		t.Fatalf("standby rows %s: want only the transaction after 0-1-500", n)
	}
}
