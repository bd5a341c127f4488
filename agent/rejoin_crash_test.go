package agent

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/verify"
)

// truncatedFrom matches MariaDB's crash recovery line "Successfully truncated
// binlog file: ... to remove transactions starting from GTID 0-1-12940".
var truncatedFrom = regexp.MustCompile(`truncated binlog file.*to remove transactions starting from GTID (\d+-\d+-\d+)`)

// startOldMasterAsSlave starts a crashed master's files for the first time,
// the way the README says: --init-rpl-role=SLAVE (crash recovery rolls back
// and truncates the prepared tail) and read_only=ON.
func startOldMasterAsSlave(t *testing.T, crashed *sandbox.Server) *sandbox.Server {
	t.Helper()
	s, err := sandbox.Start(context.Background(), sandbox.Config{Dir: crashed.Dir(), Port: crashed.Port(), ServerID: 1, Master: true, Log: t.Logf,
		Extra: []string{"rpl_semi_sync_master_timeout=100", "init-rpl-role=SLAVE", "read_only=ON"}})
	must(t, err)
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// pairSeq returns the last seq_no of (domain, server) in a server's
// gtid_binlog_state, 0 if none.
func pairSeq(t *testing.T, s *sandbox.Server, domain, server uint32) uint64 {
	t.Helper()
	state, err := s.QueryString(context.Background(), "SELECT @@GLOBAL.gtid_binlog_state")
	must(t, err)
	gs, err := failover.ParseGTIDState(state)
	must(t, err)
	for _, g := range gs {
		if g.Domain == domain && g.Server == server {
			return g.Seq
		}
	}
	return 0
}

// writeUntilKilled commits rows from n clients on the master and kills it
// (SIGKILL) the moment the want-th commit returns OK, from that client's
// goroutine: the commits of that group commit are OK'd, and the clients'
// next transactions have not yet reached their prepare, which is what
// would write InnoDB's log past them. It returns every id whose COMMIT
// returned OK.
func writeUntilKilled(t *testing.T, master *sandbox.Server, n int, want int64) []int64 {
	t.Helper()
	pid := master.PID()
	db, err := sql.Open("mysql", master.RootDSN("test"))
	must(t, err)
	defer db.Close()
	db.SetMaxOpenConns(n)
	var committed, next atomic.Int64
	var mu sync.Mutex
	var ok []int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := next.Add(1)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := db.ExecContext(ctx, "INSERT INTO t (id, c, payload) VALUES (?, 1, 'committed')", id)
				cancel()
				if err != nil {
					return // the master is gone: this commit's outcome is unknown
				}
				mu.Lock()
				ok = append(ok, id)
				mu.Unlock()
				if committed.Add(1) == want {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}()
	}
	wg.Wait()
	return ok
}

// verifyEqual compares every table of the new master and the old one.
func verifyEqual(t *testing.T, newMaster, old *sandbox.Server) verify.Report {
	t.Helper()
	rep, err := verify.Compare(context.Background(), newMaster.DB(), old.DB(), verify.Options{Consistent: true, Timeout: time.Minute})
	if err != nil {
		t.Fatalf("verify the new master against the rejoined old master: %v", err)
	}
	return rep
}

// TestRejoinRestoresTheAcknowledgedTail: the master is killed (kill -9)
// under 16 writers while the agent streams; the agent promotes the standby
// with every OK'd commit. With AFTER_SYNC a transaction is acknowledged by
// the agent after the master wrote and synced it to its binlog, and only
// then committed in InnoDB, whose commit record is not written to the log
// at commit (the binlog is the record; a later prepare writes it), so the
// old master's crash recovery finds the last acknowledged transactions (some
// of them OK'd to their clients) only prepared, and started with
// --init-rpl-role=SLAVE it truncates them from its binlog. The new master
// holds them. Replicating from it, the old master's IO thread drops events
// carrying its own server_id, so rejoin must bring them back by other
// means, and must check the data before it says caught up: afterwards
// verify finds the two servers equal, and every OK'd id is on the rejoined
// old master.
//
// The kill is repeated on fresh pairs until the old master's error log shows
// a truncation of GTIDs the new master holds; the kill lands the moment a
// commit returns OK (writeUntilKilled), when the commits of that group are
// acknowledged and the clients' next transactions have not yet prepared.
func TestRejoinRestoresTheAcknowledgedTail(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testRejoinAcknowledgedTail(t, mode) })
	}
}

func testRejoinAcknowledgedTail(t *testing.T, mode string) {
	const maxAttempts = 10
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		done := false
		t.Run(fmt.Sprintf("attempt %d", attempt), func(t *testing.T) {
			f := newFailoverEnvMode(t, `mode = "auto"`, mode)
			f.waitLossless()
			ctx := context.Background()
			want := int64(100 + 17*attempt)
			ok := writeUntilKilled(t, f.master, 16, want)
			must(t, f.master.Kill()) // reaps it
			harness.WaitFor(t, "the automatic promotion", 90*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
			if missing := missingIDs(t, f.standby, ok); len(missing) > 0 {
				t.Fatalf("%d OK'd ids are not on the promoted standby, e.g. %v", len(missing), missing[:min(5, len(missing))])
			}
			old := startOldMasterAsSlave(t, f.master)
			m := truncatedFrom.FindStringSubmatch(readFile(t, old.ErrorLog()))
			if m == nil {
				t.Logf("attempt %d: the old master's crash recovery truncated nothing", attempt)
				return
			}
			from, err := binlog.ParseGTID(m[1])
			must(t, err)
			have := pairSeq(t, f.standby, from.Domain, from.Server)
			if have < from.Seq {
				t.Logf("attempt %d: the old master truncated from %s, none of which the new master has (it has up to %d-%d-%d)", attempt, from, from.Domain, from.Server, have)
				return
			}
			done = true
			lost := missingIDs(t, old, ok)
			// Every GTID from `from` on is on the new master, acknowledged
			// by the agent; some of them were also OK'd to their clients
			// (the others died with the master between the ACK and the OK).
			t.Logf("attempt %d: the old master truncated %s..%d-%d-%d, which the new master holds: %d of the %d OK'd ids are missing on it before the rejoin",
				attempt, from, from.Domain, from.Server, have, len(lost), len(ok))

			// Writes on the new master after the promotion, so that the two
			// servers can meet at one GTID position for verify.
			for i := range 5 {
				must(t, f.standby.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (?, 'on the new master')", i))
			}
			f.grantRejoin(old)
			f.master = old
			msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
			if err != nil {
				t.Fatalf("rejoin: %v", err)
			}
			t.Log(msg)
			rep := verifyEqual(t, f.standby, old)
			if !rep.Equal {
				var b bytes.Buffer
				rep.WriteText(&b)
				t.Fatalf("rejoin said %q, but the rejoined old master differs from the new master (%d OK'd ids missing on it):\n%s", msg, len(missingIDs(t, old, ok)), b.String())
			}
			if missing := missingIDs(t, old, ok); len(missing) > 0 {
				t.Fatalf("%d OK'd ids are not on the rejoined old master, e.g. %v", len(missing), missing[:min(5, len(missing))])
			}
			if !strings.Contains(msg, "verified") {
				t.Fatalf("rejoin's answer %q does not say the data was verified", msg)
			}
			if id, _ := old.QueryString(ctx, "SELECT @@GLOBAL.server_id"); id != "1" {
				t.Fatalf("server_id %s on the rejoined old master, want its own 1 back", id)
			}
			f.checkRejoined(old)
		})
		if done && !t.Failed() {
			t.Logf("%s mode: an acknowledged tail was truncated at attempt %d of %d", mode, attempt, maxAttempts)
			return
		}
		if t.Failed() {
			return
		}
	}
	t.Fatalf("%s mode: no kill in %d attempts left the old master truncating GTIDs the new master holds", mode, maxAttempts)
}
