package agent

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/verify"
)

// newFailoverEnvMode is newFailoverEnv with the standby's apply mode chosen
// (the users' default is ModeReplica).
func newFailoverEnvMode(t *testing.T, failoverTOML, mode string) *failoverEnv {
	t.Helper()
	e := newEnv(t)
	standby := e.withStandbyMode(mode)
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\n"+failoverTOML+"\n")
	f := &failoverEnv{testEnv: e, standby: standby}
	f.p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	return f
}

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
// under writers while the agent streams; the agent promotes the standby
// with every OK'd commit. With AFTER_SYNC a commit is OK'd once the agent
// acknowledged it and InnoDB committed it in memory, so the old master's
// crash recovery finds the last ones only prepared, and started with
// --init-rpl-role=SLAVE it truncates them from its binlog: acknowledged
// commits the new master holds. Replicating from the new master, the old
// master's IO thread drops events carrying its own server_id, so rejoin
// must bring them back by other means, and must check the data before it
// says caught up: afterwards verify finds the two servers equal, and every
// OK'd id is on the rejoined old master.
//
// The kill is repeated on fresh pairs until the old master's error log shows
// a truncation of GTIDs the new master holds. The writers pause after each
// OK'd commit: the commit records of the last OK'd transactions stay in
// InnoDB's log buffer until the next transaction's prepare writes the log
// (with a binlog, InnoDB does not write the log at commit), so the pause is
// what leaves acknowledged commits merely prepared at the kill.
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
			wctx, stop := context.WithCancel(ctx)
			defer stop()
			db, err := sql.Open("mysql", f.master.RootDSN("test"))
			must(t, err)
			var committed atomic.Int64
			ids := writers(wctx, db, 8, &committed, writerOptions{payload: "committed", pause: 20 * time.Millisecond})
			want := int64(100 + 17*attempt)
			harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= want })
			must(t, f.master.Kill())
			stop()
			ok := ids()
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
