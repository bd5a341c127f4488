package applier

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
)

// The COMMIT of transaction N leads the round trip of N+1 (COMMIT; SET
// GTID; BEGIN; BINLOG ...). These tests hold the applier to what that must
// not change: the frontier moves only once a COMMIT returned OK, nothing is
// held while the applier waits, and an error names the transaction whose
// statement failed.

// pipelineServers returns a master whose binary log holds only n
// single-row INSERT transactions into d.t (ids 1..n; the schema is made
// with sql_log_bin=0), the relay log copied from it, and a standby with the
// same schema and nothing else.
func pipelineServers(t *testing.T, n int) (master, standby *sandbox.Server, rl relayLog) {
	t.Helper()
	master, standby = startServer(t, 1), startServer(t, 2)
	const schema = "SET SESSION sql_log_bin=0; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20)); SET SESSION sql_log_bin=1"
	mustExec(t, master, schema)
	mustExec(t, standby, schema)
	for i := 1; i <= n; i++ {
		mustExec(t, master, fmt.Sprintf("INSERT INTO d.t VALUES (%d, 'row %d')", i, i))
	}
	rl = copyRelay(t, master)
	if len(rl.txns) != n {
		t.Fatalf("relay log has %d transactions, want %d", len(rl.txns), n)
	}
	return master, standby, rl
}

// waitFailed waits until the applier stops on an apply error.
func waitFailed(t *testing.T, a *Applier) Status {
	t.Helper()
	var st Status
	harness.WaitFor(t, "the applier to stop on an apply error", 60*time.Second, func() bool {
		st = a.Status()
		return st.State == StateError && st.FailedGTID != ""
	})
	return st
}

func rowIDs(t *testing.T, s *sandbox.Server) string {
	t.Helper()
	v, err := s.QueryString(context.Background(), "SELECT IFNULL(GROUP_CONCAT(id ORDER BY id), '') FROM d.t")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// pausingSource is a Source that stops the applier at its n-th call of
// Durable (the applier calls it once before reading each event), until
// released.
type pausingSource struct {
	*fixedSource
	n               int
	calls           int
	paused, release chan struct{}
}

func (s *pausingSource) Durable() relay.Frontier {
	if s.calls++; s.calls == s.n {
		close(s.paused)
		<-s.release
	}
	return s.fixedSource.Durable()
}

// eventsThrough counts the relay log's events after the segment header up
// to the end of transaction i.
func eventsThrough(t *testing.T, rl relayLog, i int) int {
	t.Helper()
	n := 0
	err := relay.Scan(rl.dir, func(ev relay.Event) error {
		if ev.Header.Type == binlog.FormatDescriptionEvent {
			return nil
		}
		n++
		if ev.Segment.Seq == rl.txns[i].at.Segment && ev.Offset+int64(ev.Header.Size) == rl.txns[i].at.Offset {
			return relay.ErrStopScan
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPipelinedCommitFailureIsThatTransactions: the COMMIT of the second
// transaction fails in the round trip that also carries the third one up
// to its BINLOG statement. The applier is paused with that COMMIT held, and
// meanwhile the standby gets a GTID of its own with a higher sequence
// number in the same domain, so that gtid_strict_mode refuses the second
// transaction's GTID at its COMMIT. The error names the second transaction
// and its COMMIT, the frontier stays after the first, nothing of the second
// or third is on the standby.
func TestPipelinedCommitFailureIsThatTransactions(t *testing.T) {
	_, standby, rl := pipelineServers(t, 3)
	src := &pausingSource{fixedSource: newFixedSource(rl.end), n: eventsThrough(t, rl, 1) + 1,
		paused: make(chan struct{}), release: make(chan struct{})}
	a, stop := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, src)
	select {
	case <-src.paused:
	case <-time.After(60 * time.Second):
		t.Fatalf("the applier did not reach the end of the second transaction: %+v", a.Status())
	}
	if st := a.Status(); st.Transactions != 1 || st.Frontier.Offset != rl.txns[0].at.Offset {
		t.Fatalf("paused after the second transaction's XID: %d transactions done, frontier %+v; want 1, the first one's end (the second's COMMIT held)", st.Transactions, st.Frontier)
	}
	mustExec(t, standby, "SET SESSION gtid_seq_no = 1000; DROP TABLE IF EXISTS d.no_such_table")
	close(src.release)
	st := waitFailed(t, a)
	stop()
	second := rl.txns[1].gtid.String()
	if st.FailedGTID != second || !strings.Contains(st.LastError, "apply GTID "+second+" ") || !strings.Contains(st.LastError, "(COMMIT of rows of d.t)") ||
		!strings.Contains(st.LastError, "1950") {
		t.Fatalf("failed GTID %q, error %q; want %s, its COMMIT refused by gtid_strict_mode (1950)", st.FailedGTID, st.LastError, second)
	}
	if st.Transactions != 1 || st.Frontier.Offset != rl.txns[0].at.Offset || st.Frontier.Pos.GTID.String() != rl.txns[0].gtid.String() {
		t.Fatalf("frontier %+v after %d transactions; want the first transaction's end", st.Frontier, st.Transactions)
	}
	if ids := rowIDs(t, standby); ids != "1" {
		t.Fatalf("standby has rows %q; want only 1", ids)
	}
}

// TestPipelinedStatementFailureIsTheNextTransactions: the BINLOG statement
// of the second transaction fails (its row is already on the standby) in
// the round trip that carries the first one's COMMIT. The first is
// committed and done, the error names the second, and the frontier stops
// between them.
func TestPipelinedStatementFailureIsTheNextTransactions(t *testing.T) {
	master, standby, rl := pipelineServers(t, 3)
	mustExec(t, standby, "SET SESSION sql_log_bin=0; INSERT INTO d.t VALUES (2, 'in the way'); SET SESSION sql_log_bin=1")
	a, stop := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, newFixedSource(rl.end))
	st := waitFailed(t, a)
	stop()
	second := rl.txns[1].gtid.String()
	if st.FailedGTID != second || !strings.Contains(st.LastError, "apply GTID "+second+" ") || !strings.Contains(st.LastError, "(rows of d.t)") ||
		!strings.Contains(st.LastError, "Duplicate entry") {
		t.Fatalf("failed GTID %q, error %q; want %s, a duplicate key in rows of d.t", st.FailedGTID, st.LastError, second)
	}
	if st.Frontier.Offset != rl.txns[0].at.Offset || st.Transactions != 1 || st.Frontier.Pos.GTID.String() != rl.txns[0].gtid.String() {
		t.Fatalf("frontier %+v (%d transactions); want the end of the first transaction %+v", st.Frontier, st.Transactions, rl.txns[0])
	}
	if ids, pos := rowIDs(t, standby), queryString(t, standby, "SELECT @@gtid_binlog_pos"); ids != "1,2" || pos != rl.txns[0].gtid.String() {
		t.Fatalf("standby has rows %q, gtid_binlog_pos %q; want 1,2 (the row in the way) and %s", ids, pos, rl.txns[0].gtid)
	}

	mustExec(t, standby, "SET SESSION sql_log_bin=0; DELETE FROM d.t WHERE id = 2; SET SESSION sql_log_bin=1")
	a2, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir, Start: st.Frontier}, newFixedSource(rl.end))
	st = waitCaughtUp(t, a2, rl.end, 60*time.Second)
	if ids := rowIDs(t, standby); ids != "1,2,3" || st.Transactions != 2 {
		t.Fatalf("after the fix: rows %q, %d transactions applied by the second applier; want 1,2,3 and 2", ids, st.Transactions)
	}
	if m, s := tableDigest(t, master, "d.t"), tableDigest(t, standby, "d.t"); m != s {
		t.Fatalf("d.t differs: master %s, standby %s", m, s)
	}
}

// TestFrontierNeverAheadOfStandby: while the applier works through a relay
// log that grows transaction by transaction, the frontier it reports is
// always on the standby already (a frontier moved at the COMMIT's send, not
// its OK, shows up here as a standby behind it), and each time it catches
// up the standby has everything: no COMMIT is left held while it waits.
func TestFrontierNeverAheadOfStandby(t *testing.T) {
	_, standby, rl := pipelineServers(t, 200)
	src := newFixedSource(rl.txns[0].at)
	a, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, src)
	ctx := context.Background()
	checks := 0
	for i := 0; i < len(rl.txns); i += 1 + i%7 {
		src.set(rl.txns[i].at)
		for {
			st := a.Status()
			if st.State == StateError {
				t.Fatalf("applier stopped: %s", st.LastError)
			}
			pos, err := standby.QueryString(ctx, "SELECT @@gtid_binlog_pos")
			if err != nil {
				t.Fatal(err)
			}
			if f := st.Frontier.Pos.GTID; !f.IsZero() {
				have, err := binlog.ParseGTIDSet(binlog.MariaDB, pos)
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := have.Contains(f); err != nil || !ok {
					t.Fatalf("the applier's frontier %s is ahead of the standby's gtid_binlog_pos %s", f, pos)
				}
				checks++
			}
			if st.CaughtUp.Offset == rl.txns[i].at.Offset {
				// Caught up: the standby must have every transaction so far.
				if pos != rl.txns[i].gtid.String() {
					t.Fatalf("caught up with %s, but the standby's gtid_binlog_pos is %s: a COMMIT was held while waiting", rl.txns[i].gtid, pos)
				}
				break
			}
		}
	}
	t.Logf("%d checks of the frontier against the standby", checks)
}

// TestHeldCommitSentBeforeAStop: a transaction whose COMMIT is held when
// the next one stops the applier (here: a gap in another GTID domain, a
// StopError at that transaction's GTID event) is committed, and the
// frontier covers it, before the applier stops: a stop never rolls back a
// transaction that only waited for its COMMIT.
func TestHeldCommitSentBeforeAStop(t *testing.T) {
	master, standby := startServer(t, 1), startServer(t, 2)
	const schema = "SET SESSION sql_log_bin=0; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20)); SET SESSION sql_log_bin=1"
	mustExec(t, master, schema)
	mustExec(t, standby, schema)
	mustExec(t, master, "INSERT INTO d.t VALUES (1, 'domain 0')")
	mustExec(t, master, "SET SESSION gtid_domain_id = 1, SESSION gtid_seq_no = 5; INSERT INTO d.t VALUES (2, 'domain 1'); SET SESSION gtid_domain_id = 0")
	rl := copyRelay(t, master)
	// The standby's last transaction in domain 1 is 1-2-2: 3 and 4 are
	// missing before the relay log's 1-1-5.
	mustExec(t, standby, "SET SESSION gtid_domain_id = 1, SESSION gtid_seq_no = 2; DROP TABLE IF EXISTS d.no_such_table; SET SESSION gtid_domain_id = 0")
	a, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, newFixedSource(rl.end))
	var st Status
	harness.WaitFor(t, "the applier to stop on the gap in domain 1", 60*time.Second, func() bool {
		st = a.Status()
		return st.State == StateError
	})
	if st.FailedGTID != "" || !strings.Contains(st.LastError, "domain 1") {
		t.Fatalf("stopped with failed GTID %q, error %q; want the gap in domain 1", st.FailedGTID, st.LastError)
	}
	first := rl.txns[0].gtid.String()
	if ids := rowIDs(t, standby); ids != "1" {
		t.Fatalf("standby rows %q; want 1: the held COMMIT of %s was rolled back at the stop", ids, first)
	}
	if st.Transactions != 1 || st.Frontier.Offset != rl.txns[0].at.Offset || !strings.Contains(st.Frontier.Pos.GTID.String(), first) {
		t.Fatalf("frontier %+v after %d transactions; want the end of %s", st.Frontier, st.Transactions, first)
	}
}
