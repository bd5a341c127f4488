package applier

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// An agent killed (or a standby connection lost) in the middle of a round
// trip leaves its session on the standby: the server runs the statements it
// received to their end, and rolls back an open transaction only once it
// sees the client gone. The next session must not read the standby's GTID
// state before that session is done with it.

// earlierSession opens a connection to the standby as the applier's user and
// starts on it the transaction rl.txns[0] (the same GTID and row) without
// committing it, as the killed agent's session left it; then runs rest
// (its last statements) in the background and returns once the thread is in
// the state wantState.
func earlierSession(t *testing.T, standby *sandbox.Server, rl relayLog, rest, wantState string) *sql.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := standby.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var id string
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	g := rl.txns[0].gtid
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET SESSION gtid_domain_id = %d, SESSION server_id = %d; SET SESSION gtid_seq_no = %d; BEGIN; INSERT INTO d.t VALUES (1, 'row 1')", g.Domain, g.Server, g.Seq)); err != nil {
		t.Fatal(err)
	}
	if rest != "" {
		go conn.ExecContext(ctx, rest) //nolint:errcheck // its outcome is the standby's state
	}
	harness.WaitFor(t, "the earlier session's thread "+wantState, 30*time.Second, func() bool {
		st, _ := standby.QueryString(ctx, "SELECT CONCAT(command, ':', IFNULL(state, '')) FROM information_schema.processlist WHERE id = "+id)
		return st == wantState
	})
	return conn
}

// TestSessionWaitsForAnEarlierSessionsCommit: the earlier session's last
// round trip still runs, its COMMIT of transaction 1 comes last (slow: a
// loaded standby). The new session waits for it, finds transaction 1 on the
// standby, and applies only transaction 2: no apply error (applying 1 again
// would meet the earlier session's row lock, then a duplicate key), each row
// once.
func TestSessionWaitsForAnEarlierSessionsCommit(t *testing.T) {
	_, standby, rl := pipelineServers(t, 2)
	earlierSession(t, standby, rl, "DO SLEEP(2); COMMIT", "Query:User sleep")
	a, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, newFixedSource(rl.end))
	st := waitCaughtUp(t, a, rl.end, 60*time.Second)
	if st.Errors != 0 || st.Transactions != 1 {
		t.Fatalf("applier status %+v; want transaction 2 applied, 1 found on the standby, no error", st)
	}
	if ids, pos := rowIDs(t, standby), queryString(t, standby, "SELECT @@gtid_binlog_pos"); ids != "1,2" || pos != rl.txns[1].gtid.String() {
		t.Fatalf("standby rows %q at %s; want 1,2 at %s", ids, pos, rl.txns[1].gtid)
	}
}

// TestSessionKillsAnAbandonedTransaction: the earlier session's client is
// gone but the server has not noticed (its host died, the network is cut):
// the thread sleeps in an open transaction that can only roll back, holding
// row locks. The new session ends it and applies both transactions, instead
// of waiting innodb_lock_wait_timeout on its locks and stopping on the error.
func TestSessionKillsAnAbandonedTransaction(t *testing.T) {
	_, standby, rl := pipelineServers(t, 2)
	mustExec(t, standby, "SET GLOBAL innodb_lock_wait_timeout = 5") // the old code's stop comes sooner
	earlierSession(t, standby, rl, "", "Sleep:")
	a, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, newFixedSource(rl.end))
	st := waitCaughtUp(t, a, rl.end, 60*time.Second)
	if st.Errors != 0 || st.Transactions != 2 {
		t.Fatalf("applier status %+v; want both transactions applied, no error", st)
	}
	if ids, pos := rowIDs(t, standby), queryString(t, standby, "SELECT @@gtid_binlog_pos"); ids != "1,2" || pos != rl.txns[1].gtid.String() {
		t.Fatalf("standby rows %q at %s; want 1,2 at %s", ids, pos, rl.txns[1].gtid)
	}
}
