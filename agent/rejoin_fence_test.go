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
		must(t, f.master.Restart(ctx)) // writable: read_only is not in its option file
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
	t.Run("writer bypassing read_only", func(t *testing.T) {
		f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
		f.failOver()
		ctx := context.Background()
		must(t, f.master.Restart(ctx))
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
