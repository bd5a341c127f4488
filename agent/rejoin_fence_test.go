package agent

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
)

// onRejoinStep sets the rejoin's step hook for one test.
func onRejoinStep(t *testing.T, fn func(step string)) {
	t.Helper()
	rejoinStep = fn
	t.Cleanup(func() { rejoinStep = nil })
}

// TestRejoinFencesBeforeTheErrantCheck: the old master comes back writable
// after a failover and clients write to it while rejoin runs. Whatever
// lands after rejoin compared the GTID histories must not be absorbed into
// gtid_slave_pos by MASTER_DEMOTE_TO_SLAVE: the old master is fenced
// (read_only, clients killed) before the check, so a write after it is
// refused; a write that bypasses read_only (a user with READ_ONLY ADMIN)
// makes rejoin refuse and name it.
func TestRejoinFencesBeforeTheErrantCheck(t *testing.T) {
	t.Run("clients", func(t *testing.T) {
		f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
		f.failOver()
		ctx := context.Background()
		f.restartOldMaster(ctx) // writable: read_only is not in its option file
		f.grantRejoin(f.master)
		must(t, f.master.CreateUser(ctx, "app", "app-secret", "SELECT, INSERT"))
		app, err := sql.Open("mysql", "app:app-secret@tcp("+f.master.Addr()+")/test")
		must(t, err)
		defer app.Close()
		// Transactions left open before the rejoin, by the application
		// and by a user that read_only does not stop.
		appTx, err := app.BeginTx(ctx, nil)
		must(t, err)
		_, err = appTx.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (1, 'open before the rejoin')")
		must(t, err)
		rootTx, err := f.master.DB().BeginTx(ctx, nil)
		must(t, err)
		_, err = rootTx.ExecContext(ctx, "INSERT INTO test.t (c, payload) VALUES (2, 'open before the rejoin')")
		must(t, err)
		var after []string // the writes that returned OK after the check
		onRejoinStep(t, func(step string) {
			if step != "errant-checked" {
				return
			}
			if err := appTx.Commit(); err == nil {
				after = append(after, "the application's open transaction committed")
			}
			if err := rootTx.Commit(); err == nil {
				after = append(after, "a READ_ONLY ADMIN user's open transaction committed")
			}
			if _, err := app.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (3, 'after the check')"); err == nil {
				after = append(after, "the application inserted a row")
			}
		})
		msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if err == nil && len(after) > 0 {
			t.Fatalf("after the errant check %s on the old master, and rejoin absorbed it: %s", strings.Join(after, "; "), msg)
		}
		if err != nil {
			t.Fatalf("rejoin: %v (writes after the check: %v)", err, after)
		}
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload IN ('open before the rejoin', 'after the check')"); n != "0" {
			t.Fatalf("%s client rows on the rejoined old master", n)
		}
		if rep := verifyEqual(t, f.standby, f.master); !rep.Equal {
			t.Fatalf("the rejoined old master differs from the new master: %+v", rep.Tables)
		}
		f.checkRejoined(f.master)
	})
	t.Run("fence fails", func(t *testing.T) {
		f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
		f.failOver()
		ctx := context.Background()
		f.restartOldMaster(ctx)
		f.grantRejoin(f.master)
		// The agent's user may do everything a rejoin needs but fence.
		must(t, f.master.CreateUser(ctx, "repl", f.password, strings.Replace(rejoinPrivs, "READ_ONLY ADMIN, ", "", 1)))
		_, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), "must be fenced") || !strings.Contains(err.Error(), "READ_ONLY ADMIN") {
			t.Fatalf("rejoin with a user that cannot fence: %v; want refused saying so", err)
		}
		t.Logf("refused: %v", err)
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'system user'"); n != "0" {
			t.Fatalf("the refused rejoin left %s replication threads on the old master", n)
		}
	})
	t.Run("writer bypassing read_only", func(t *testing.T) {
		f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
		f.failOver()
		ctx := context.Background()
		f.restartOldMaster(ctx)
		f.grantRejoin(f.master)
		db, err := sql.Open("mysql", f.master.RootDSN("test"))
		must(t, err)
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		var committed atomic.Int64
		var ids func() []int64
		onRejoinStep(t, func(step string) {
			if step != "errant-checked" {
				return
			}
			ids = writers(wctx, db, 4, &committed, writerOptions{payload: "errant", retry: true})
			harness.WaitFor(t, "the writer to commit on the fenced old master", 30*time.Second, func() bool { return committed.Load() >= 1 })
		})
		_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		stop()
		if ids != nil {
			ids()
		}
		if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), "took writes while it was fenced") {
			t.Fatalf("rejoin with a writer bypassing read_only after the errant check: %v; want refused naming the writes", err)
		}
		t.Logf("refused: %v", err)
		if !strings.Contains(err.Error(), "gtid_binlog_state went from") {
			t.Fatalf("the refusal %q does not name the GTIDs written after the check", err)
		}
		// Nothing was absorbed: a second rejoin lists them as errant.
		pos, _ := f.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), "errant") || !strings.Contains(err.Error(), pos) {
			t.Fatalf("a second rejoin: %v; want refused listing the errant %s", err, pos)
		}
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'system user'"); n != "0" {
			t.Fatalf("the refused rejoin left %s replication threads on the old master", n)
		}
		if ro, _ := f.master.QueryString(ctx, "SELECT @@read_only"); ro != "1" {
			t.Fatalf("read_only=%s on the refused old master: it stays fenced", ro)
		}
		if strings.Contains(strings.Join(f.report().Audit, "\n"), "rejoined") {
			t.Fatalf("audit: %v", f.report().Audit)
		}
	})
}

// TestRejoinAfterAnUnfinishedRejoin: a rejoin that died while the old
// master replicated its own lost transactions under a temporary server_id
// leaves that id there (SET GLOBAL lasts until a restart). The next rejoin
// recognises it, stops replication, gives the old master its own server_id
// back and completes; a server_id that is neither the one the promotion
// recorded nor a temporary one is refused: [master] points elsewhere.
func TestRejoinAfterAnUnfinishedRejoin(t *testing.T) {
	f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
	for i := range 5 {
		f.exec("INSERT INTO test.t (c, payload) VALUES (?, 'before the failover')", i)
	}
	f.failOver()
	ctx := context.Background()
	for i := range 5 {
		must(t, f.standby.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (?, 'on the new master')", i))
	}
	f.restartOldMaster(ctx)
	f.grantRejoin(f.master)

	must(t, f.master.Exec(ctx, "SET GLOBAL server_id = 77"))
	_, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), "does not point at the old master") {
		t.Fatalf("rejoin of a server with server_id 77: %v; want refused", err)
	}
	t.Logf("refused: %v", err)

	// What a rejoin that died in its hole step leaves.
	temp := failover.TempServerIDs(1)[0]
	must(t, f.master.Exec(ctx, "SET GLOBAL read_only = ON"))
	must(t, f.master.Exec(ctx, "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER='repl', MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1", f.standby.Port(), f.password))
	must(t, f.master.Exec(ctx, "SET GLOBAL server_id = ?", temp))
	must(t, f.master.Exec(ctx, "START SLAVE"))
	msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	if err != nil {
		t.Fatalf("rejoin after an unfinished one: %v", err)
	}
	t.Log(msg)
	if id, _ := f.master.QueryString(ctx, "SELECT @@GLOBAL.server_id"); id != "1" {
		t.Fatalf("server_id %s after the rejoin, want 1 back", id)
	}
	if !strings.Contains(f.p.log.String(), "temporary server_id of a rejoin that did not finish") {
		t.Fatal("the agent's log does not say it gave the old master its server_id back")
	}
	if rep := verifyEqual(t, f.standby, f.master); !rep.Equal {
		t.Fatalf("the rejoined old master differs: %+v", rep.Tables)
	}
	f.checkRejoined(f.master)
}

// TestRejoinWhileTheNewMasterTakesWrites: the applications moved to the new
// master and write without pause while the old master rejoins. The data
// check still meets the new master at one GTID position (the old master's
// replication stops at each snapshot's position) and says equal, and
// replication runs again afterwards.
func TestRejoinWhileTheNewMasterTakesWrites(t *testing.T) {
	f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
	f.failOver()
	ctx := context.Background()
	f.restartOldMaster(ctx)
	f.grantRejoin(f.master)
	db, err := sql.Open("mysql", f.standby.RootDSN("test"))
	must(t, err)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var committed atomic.Int64
	ids := writers(wctx, db, 8, &committed, writerOptions{payload: "on the new master", pause: 2 * time.Millisecond})
	harness.WaitFor(t, "the clients to commit on the new master", 60*time.Second, func() bool { return committed.Load() >= 100 })
	msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	during := committed.Load()
	harness.WaitFor(t, "more commits on the new master after the rejoin", 60*time.Second, func() bool { return committed.Load() > during+50 })
	stop()
	ok := ids()
	if err != nil {
		t.Fatalf("rejoin while the new master takes writes: %v", err)
	}
	t.Logf("%s (%d commits on the new master meanwhile)", msg, len(ok))
	if !strings.Contains(msg, "verified: all") {
		t.Fatalf("rejoin's answer %q does not say the data was verified equal", msg)
	}
	f.checkRejoined(f.master)
	if missing := missingIDs(t, f.master, ok); len(missing) > 0 {
		t.Fatalf("%d ids OK'd on the new master are not on the rejoined old master", len(missing))
	}
}

// ownHoleEnv is a failover whose new master holds three transactions of the
// old master's server_id that the old master lacks: what a crash recovery
// with --init-rpl-role=SLAVE leaves after truncating an acknowledged tail,
// made here without the crash (the new master writes them under the old
// master's server_id), followed by writes of the new master's own.
func ownHoleEnv(t *testing.T) *failoverEnv {
	t.Helper()
	f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
	for i := range 5 {
		f.exec("INSERT INTO test.t (c, payload) VALUES (?, 'before the failover')", i)
	}
	f.failOver()
	ctx := context.Background()
	f.restartOldMaster(ctx)
	f.grantRejoin(f.master)
	conn, err := f.standby.DB().Conn(ctx)
	must(t, err)
	defer conn.Close()
	for _, q := range []string{"SET SESSION server_id = 1",
		"INSERT INTO test.t (c, payload) VALUES (1, 'acknowledged tail')",
		"INSERT INTO test.t (c, payload) VALUES (2, 'acknowledged tail')",
		"INSERT INTO test.t (c, payload) VALUES (3, 'acknowledged tail')",
		"SET SESSION server_id = 2",
		"INSERT INTO test.t (c, payload) VALUES (4, 'on the new master')"} {
		_, err := conn.ExecContext(ctx, q)
		must(t, err)
	}
	if pairSeq(t, f.standby, 0, 1) != pairSeq(t, f.master, 0, 1)+3 {
		t.Fatalf("the new master's 0-1 history is not 3 past the old master's")
	}
	return f
}

// TestRejoinOwnHole: rejoin brings back the old master's own transactions
// that the new master holds; a rejoin interrupted while it does (its
// context ends) gives the old master its server_id back and stops its
// replication, and the next rejoin completes; an old master that an earlier
// rejoin (before this version) already moved past them is refused, since
// replication cannot bring them back.
func TestRejoinOwnHole(t *testing.T) {
	t.Run("interrupted, then again", func(t *testing.T) {
		f := ownHoleEnv(t)
		ctx := context.Background()
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		onRejoinStep(t, func(step string) {
			if step == "hole-started" {
				cancel()
			}
		})
		_, err := f.p.a.opRejoin(rctx, operator, control.Request{Op: "rejoin"})
		if err == nil {
			t.Fatal("a rejoin whose context ended in the hole step succeeded")
		}
		t.Logf("interrupted: %v", err)
		if id, _ := f.master.QueryString(ctx, "SELECT @@GLOBAL.server_id"); id != "1" {
			t.Fatalf("server_id %s after the interrupted rejoin, want 1 back", id)
		}
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'system user'"); n != "0" {
			t.Fatalf("the interrupted rejoin left %s replication threads running", n)
		}
		rejoinStep = nil
		msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if err != nil {
			t.Fatalf("rejoin after the interrupted one: %v", err)
		}
		t.Log(msg)
		if !strings.Contains(msg, "restored 0-1-") {
			t.Fatalf("rejoin's answer %q does not say what it restored", msg)
		}
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'acknowledged tail'"); n != "3" {
			t.Fatalf("%s of the 3 tail rows on the rejoined old master", n)
		}
		if rep := verifyEqual(t, f.standby, f.master); !rep.Equal {
			t.Fatalf("the rejoined old master differs: %+v", rep.Tables)
		}
		f.checkRejoined(f.master)
	})
	t.Run("already past it", func(t *testing.T) {
		f := ownHoleEnv(t)
		ctx := context.Background()
		// What the rejoin of earlier versions did: native replication,
		// whose IO thread drops the old master's own events.
		must(t, f.master.Exec(ctx, "SET GLOBAL read_only = ON"))
		must(t, f.master.Exec(ctx, "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER='repl', MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1", f.standby.Port(), f.password))
		must(t, f.master.Exec(ctx, "START SLAVE"))
		harness.WaitFor(t, "the old master to replicate the new master's own write", 60*time.Second, func() bool {
			n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'on the new master'")
			return n == "1"
		})
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'acknowledged tail'"); n != "0" {
			t.Fatalf("native replication brought %s of the old master's own rows: the premise does not hold", n)
		}
		_, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), "cannot bring them back") || !strings.Contains(err.Error(), "rebuild") {
			t.Fatalf("rejoin of an old master already past its lost transactions: %v; want refused", err)
		}
		t.Logf("refused: %v", err)
	})
}
