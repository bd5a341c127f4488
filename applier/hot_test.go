package applier

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// TestGTIDsOfSeveralSourcesKept: transactions from two server_ids,
// interleaved, with DDL between them, reach the standby with
// exactly the master's GTIDs, in the master's order: setting only
// gtid_seq_no when the source is unchanged never gives a transaction
// another server's GTID.
func TestGTIDsOfSeveralSourcesKept(t *testing.T) {
	// Each line sets the source it writes with (mustExec's connection may
	// be another one each time).
	checkSourcesKept(t, func(ins func(int) string) []string {
		return []string{
			"SET SESSION server_id = 1;" + ins(3),
			"SET SESSION server_id = 5;" + ins(2),
			"SET SESSION server_id = 1;" + ins(1) + "CREATE TABLE d.u (id INT PRIMARY KEY);" + ins(2),
			"SET SESSION server_id = 5;" + ins(2) + "ALTER TABLE d.u ADD COLUMN w INT;" + ins(1),
			"SET SESSION server_id = 1;" + ins(2),
		}
	})
}

// TestGTIDDomainsKept: a master writing in two GTID domains, back and
// forth; the standby carries exactly its GTIDs, domain by domain (the first
// transaction of a domain used to be refused: error 1950, its gtid_seq_no
// checked in the previous domain).
func TestGTIDDomainsKept(t *testing.T) {
	checkSourcesKept(t, func(ins func(int) string) []string {
		return []string{
			"SET SESSION gtid_domain_id = 0;" + ins(2),
			"SET SESSION gtid_domain_id = 3;" + ins(2),
			"SET SESSION gtid_domain_id = 0;" + ins(1),
			"SET SESSION gtid_domain_id = 3;" + ins(1) + "CREATE TABLE d.u (id INT PRIMARY KEY);",
			"SET SESSION gtid_domain_id = 0, SESSION server_id = 4;" + ins(1),
		}
	})
}

// checkSourcesKept runs the master's lines (ins(n) gives n INSERTs of new
// rows into d.t), applies its binlog to a fresh standby, and compares the
// standby's binlog GTIDs, gtid_binlog_state and rows with the master's.
func checkSourcesKept(t *testing.T, lines func(ins func(int) string) []string) {
	t.Helper()
	master, standby := startServer(t, 1), startServer(t, 2)
	const schema = "SET SESSION sql_log_bin=0; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20)); SET SESSION sql_log_bin=1"
	mustExec(t, master, schema)
	mustExec(t, standby, schema)
	id := 0
	ins := func(n int) string {
		var b strings.Builder
		for range n {
			id++
			fmt.Fprintf(&b, "INSERT INTO d.t VALUES (%d, 'row %d');", id, id)
		}
		return b.String()
	}
	for _, q := range lines(ins) {
		mustExec(t, master, q)
	}
	rl := copyRelay(t, master)
	a, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, newFixedSource(rl.end))
	waitCaughtUp(t, a, rl.end, 60*time.Second)
	var want []string
	for _, tx := range rl.txns {
		want = append(want, tx.gtid.String())
	}
	if got := binlogGTIDs(t, standby); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("standby's binlog GTIDs\n  %s\nwant the master's\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	if got, want := queryString(t, standby, "SELECT @@gtid_binlog_state"), queryString(t, master, "SELECT @@gtid_binlog_state"); got != want {
		t.Fatalf("standby gtid_binlog_state %s; master %s", got, want)
	}
	if got, want := rowIDs(t, standby), rowIDs(t, master); got != want {
		t.Fatalf("standby rows %s; master %s", got, want)
	}
}

// binlogGTIDs lists the GTIDs of the server's binary log, in order.
func binlogGTIDs(t *testing.T, s *sandbox.Server) []string {
	t.Helper()
	logs, err := harness.BinaryLogs(s)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range logs {
		rows, err := s.DB().QueryContext(context.Background(), "SHOW BINLOG EVENTS IN '"+l.Name+"'")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ, info string
			var pos, server, end int64
			if err := rows.Scan(&name, &pos, &typ, &server, &end, &info); err != nil {
				t.Fatal(err)
			}
			if typ == "Gtid" {
				f := strings.Fields(info)
				out = append(out, f[len(f)-1])
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// TestStopWhileAStatementWaits: the applier's statements run without the
// session's context (no driver watcher); stopping the applier while one of
// them waits on the standby (here: for the lock of another session's LOCK
// TABLES, which holds the session's SET GLOBAL read_only)
// still ends it at once, by closing the connection, and the transaction it
// was in is not committed.
func TestStopWhileAStatementWaits(t *testing.T) {
	_, standby, rl := pipelineServers(t, 3)
	ctx := context.Background()
	lock, err := standby.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "LOCK TABLES d.t WRITE"); err != nil {
		t.Fatal(err)
	}
	a := New(Config{DSN: standbyDSN(standby), RelayDir: rl.dir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))}, newFixedSource(rl.end))
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	var plist, last string
	harness.WaitFor(t, "a statement of the applier to wait for the lock", 60*time.Second, func() bool {
		n, err := standby.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE state LIKE 'Waiting for%lock%'")
		plist, _ = standby.QueryString(ctx, "SELECT GROUP_CONCAT(CONCAT(IFNULL(state,''), ': ', LEFT(IFNULL(info,''), 60)) SEPARATOR ' | ') FROM information_schema.processlist")
		if p := plist + " / applier " + a.Status().State; p != last {
			t.Logf("standby processlist: %s", p)
			last = p
		}
		return err == nil && n == "1"
	})
	t.Logf("standby processlist: %s", plist)
	cancel()
	// No timing threshold: the applier must end while the lock is still
	// held (it could only end with the statement otherwise).
	harness.WaitFor(t, "Run to return while the table lock is still held", 60*time.Second, func() bool {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
			return true
		default:
			return false
		}
	})
	if st := a.Status(); st.State != StateStopped || st.Transactions != 0 {
		t.Fatalf("after the stop: state %s, %d transactions; want stopped, none", st.State, st.Transactions)
	}
	if _, err := lock.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		t.Fatal(err)
	}
	// The server notices the closed connection once its statement ends;
	// its transaction was never committed.
	harness.WaitFor(t, "the applier's connection to leave the standby", 60*time.Second, func() bool {
		n, err := standby.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE state LIKE 'Waiting for%lock%'")
		return err == nil && n == "0"
	})
	if ids, pos := rowIDs(t, standby), queryString(t, standby, "SELECT @@gtid_binlog_pos"); ids != "" || pos != "" {
		t.Fatalf("standby rows %q, gtid_binlog_pos %q after the stop; want none: a transaction without its COMMIT was kept", ids, pos)
	}
}
