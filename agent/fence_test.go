package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
)

// holdHook is a hook command that touches started and then waits while
// hold exists: the test decides when the hook returns.
func holdHook(started, hold string) string {
	return fmt.Sprintf(`["sh", "-c", "touch %s; while [ -f %s ]; do sleep 0.02; done"]`, started, hold)
}

// TestAutoPromotionAbortsBesideAnUnfencedMaster: the master freezes long
// enough to be declared dead, and answers again while the promotion runs;
// the fence user ([master] user, without READ_ONLY ADMIN) cannot set
// read_only. The automatic promotion is aborted with the reason, the
// standby stays read-only, the alert hook runs and the audit log says
// why; the agent is a standby again and streams. An operator's promote
// --force then promotes, and the audit log records the override.
func TestAutoPromotionAbortsBesideAnUnfencedMaster(t *testing.T) {
	dir := t.TempDir()
	started, hold, alerts := filepath.Join(dir, "pre.started"), filepath.Join(dir, "pre.hold"), filepath.Join(dir, "alerts")
	writeFile(t, hold, "")
	f := newFailoverEnvMode(t, fmt.Sprintf("mode = \"auto\"\nhook_timeout = \"90s\"\npre_promote = %s\nalert = [\"sh\", \"-c\", \"echo \\\"$HOTSTANDBY_REASON\\\" >> %s\"]\n",
		holdHook(started, hold), alerts), ModeReplica)
	f.waitLossless()
	ctx := context.Background()
	must(t, syscall.Kill(f.master.PID(), syscall.SIGSTOP))
	cont := sync1(func() { _ = syscall.Kill(f.master.PID(), syscall.SIGCONT) })
	t.Cleanup(cont)
	harness.WaitFor(t, "the automatic promotion's pre_promote hook", 60*time.Second, func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	cont() // the master answers again while the promotion runs
	harness.WaitFor(t, "the master to answer again", 30*time.Second, func() bool {
		_, err := f.master.QueryString(ctx, "SELECT 1")
		return err == nil
	})
	must(t, os.Remove(hold))
	harness.WaitFor(t, "the promotion to end one way or the other", 60*time.Second, func() bool {
		r := f.report()
		return r.Role == checkpoint.RoleMaster || strings.Contains(strings.Join(r.Audit, "\n"), "aborted")
	})
	r := f.report()
	if ro, _ := f.standby.QueryString(ctx, "SELECT @@read_only"); ro != "1" || r.Role != checkpoint.RoleStandby {
		t.Fatalf("the standby was promoted beside a master that answered and was not fenced: role %s, standby read_only=%s, master read_only=%s; audit:\n%s",
			r.Role, ro, must1(f.master.QueryString(ctx, "SELECT @@read_only")), strings.Join(r.Audit, "\n"))
	}
	audit := strings.Join(r.Audit, "\n")
	if !strings.Contains(audit, "not fenced") || !strings.Contains(audit, "READ_ONLY ADMIN") {
		t.Fatalf("audit log:\n%s\nwant the abort with the fence's reason", audit)
	}
	harness.WaitFor(t, "the alert hook to run with the reason", 30*time.Second, func() bool {
		b, _ := os.ReadFile(alerts)
		return strings.Contains(string(b), "not fenced")
	})
	harness.WaitFor(t, "the agent to stream again", 30*time.Second, func() bool {
		return f.report().Stream.State == ingest.StateStreaming
	})
	// Nothing lost while it streams again: a commit the master OK's is
	// acknowledged by the agent.
	f.exec("INSERT INTO test.t (c, payload) VALUES (7, 'after the abort')")
	f.waitApplied(f.standby, 60*time.Second)

	// promote --force overrides the fence's refusal, and says so.
	msg, err := f.p.a.opPromote(ctx, control.Peer{UID: 0, PID: 1}, control.Request{Op: "promote", Force: true})
	if err != nil {
		t.Fatalf("promote --force: %v", err)
	}
	if !strings.Contains(msg, "NOT FENCED") {
		t.Fatalf("promote --force said %q; want it to say the old master is not fenced", msg)
	}
	r = f.report()
	if r.Role != checkpoint.RoleMaster {
		t.Fatalf("after --force: role %s", r.Role)
	}
	if audit := strings.Join(r.Audit, "\n"); !strings.Contains(audit, "FORCED past an old master that is not fenced") {
		t.Fatalf("the audit log does not record the override:\n%s", audit)
	}
	if ro, _ := f.standby.QueryString(ctx, "SELECT @@read_only"); ro != "0" {
		t.Fatalf("read_only=%s on the standby after promote --force", ro)
	}
}

// sync1 returns f made idempotent.
func sync1(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}

func must1[T any](v T, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprint(v)
}

var _ = errors.Is
var _ = failover.ErrRefused

// TestSwitchoverAbortKeepsAReadOnlyMasterReadOnly: the master is read-only
// before the switchover (a DBA's maintenance, an earlier freeze); the
// switchover is aborted after its freeze (pre_promote vetoes). The abort
// undoes only what the switchover did: the master stays read-only. In both
// apply modes: the switchover waits for the standby through the apply mode
// (gtid_slave_pos in replica mode, the applier in direct mode) before the
// veto aborts it.
func TestSwitchoverAbortKeepsAReadOnlyMasterReadOnly(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testSwitchoverAbortKeepsAReadOnlyMasterReadOnly(t, mode) })
	}
}

func testSwitchoverAbortKeepsAReadOnlyMasterReadOnly(t *testing.T, mode string) {
	f := newFailoverEnvMode(t, "mode = \"manual\"\npre_promote = [\"false\"]\n", mode)
	f.grantRejoin(f.master)
	ctx := context.Background()
	f.exec("INSERT INTO test.t (c) VALUES (1)")
	f.waitApplied(f.standby, 60*time.Second)
	f.exec("SET GLOBAL read_only = ON")
	_, err := f.p.a.opSwitchover(ctx, operator, control.Request{Op: "switchover", Timeout: 30 * time.Second})
	if !errors.Is(err, failover.ErrSwitchoverAborted) {
		t.Fatalf("switchover: %v, want aborted by the veto", err)
	}
	if ro := must1(f.master.QueryString(ctx, "SELECT @@GLOBAL.read_only")); ro != "1" {
		t.Fatalf("the aborted switchover left the master read_only=%s; it was read-only before (%v)", ro, err)
	}
	if !strings.Contains(err.Error(), "read-only before") {
		t.Fatalf("switchover: %v; want it to say the master stays read-only as it was", err)
	}
	// A master that was writable is writable again after an abort.
	f.exec("SET GLOBAL read_only = OFF")
	_, err = f.p.a.opSwitchover(ctx, operator, control.Request{Op: "switchover", Timeout: 30 * time.Second})
	if !errors.Is(err, failover.ErrSwitchoverAborted) || !strings.Contains(err.Error(), "writable again") {
		t.Fatalf("switchover: %v, want aborted, the master writable again", err)
	}
	if ro := must1(f.master.QueryString(ctx, "SELECT @@GLOBAL.read_only")); ro != "0" {
		t.Fatalf("read_only=%s after the abort of a writable master's switchover", ro)
	}
}

// TestAutoPromotionRetriesWhileTheGateHolds: the automatic promotion is
// refused (pre_promote vetoes while a file exists) after the master died;
// it is tried again while the master stays dead and a promotion is still
// proven lossless, status says it is retrying and why, and once the veto
// is gone the standby is promoted. With a veto that never ends, the retries
// stop when the gate no longer holds (the master's semi-sync timeout after
// the stream last heard it), and the standby stays read-only.
func TestAutoPromotionRetriesWhileTheGateHolds(t *testing.T) {
	for _, c := range []struct {
		name    string
		timeout string // the master's rpl_semi_sync_master_timeout, ms
		lift    bool   // the veto ends
	}{
		{"veto lifted", "60000", true},
		{"veto until the gate expires", "8000", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			veto := filepath.Join(t.TempDir(), "veto")
			writeFile(t, veto, "")
			f := newFailoverEnvMode(t, fmt.Sprintf("mode = \"auto\"\npre_promote = [\"sh\", \"-c\", \"test ! -f %s\"]\n", veto), ModeReplica)
			f.exec("SET GLOBAL rpl_semi_sync_master_timeout = " + c.timeout)
			f.exec("INSERT INTO test.t (c) VALUES (1)")
			harness.WaitFor(t, "a proof with the new timeout", 60*time.Second, func() bool {
				p, _, err := f.p.a.store.SemiSync()
				return err == nil && p != nil && p.Timeout.Milliseconds() == must2(t, c.timeout)
			})
			f.waitLossless()
			must(t, f.master.Kill())
			harness.WaitFor(t, "status to say the automatic promotion is retrying", 60*time.Second, func() bool {
				r := f.report()
				return r.Failover != nil && strings.Contains(r.Failover.Retrying, "pre_promote")
			})
			if !c.lift {
				harness.WaitFor(t, "the retries to stop once the gate no longer holds", 60*time.Second, func() bool {
					return f.report().Failover.Retrying == ""
				})
				if !strings.Contains(f.p.log.String(), "no longer proven lossless: not retried") {
					t.Fatalf("the retries stopped without saying why")
				}
				if r := f.report(); r.Role != checkpoint.RoleStandby {
					t.Fatalf("role %s after a veto that never ended", r.Role)
				}
				if ro := must1(f.standby.QueryString(context.Background(), "SELECT @@read_only")); ro != "1" {
					t.Fatalf("standby read_only=%s after a veto that never ended", ro)
				}
				return
			}
			must(t, os.Remove(veto))
			harness.WaitFor(t, "the retried promotion, recorded in the audit log", 60*time.Second, func() bool {
				r := f.report()
				return r.Role == checkpoint.RoleMaster && strings.Contains(strings.Join(r.Audit, "\n"), "promoted to epoch 1")
			})
			r := f.report()
			audit := strings.Join(r.Audit, "\n")
			if !strings.Contains(audit, "pre_promote vetoed") || !strings.Contains(audit, "promoted to epoch 1") {
				t.Fatalf("audit log:\n%s\nwant the veto, then the promotion", audit)
			}
			if r.Failover.Retrying != "" {
				t.Fatalf("status still says retrying after the promotion: %q", r.Failover.Retrying)
			}
		})
	}
}

func must2(t *testing.T, ms string) int64 {
	t.Helper()
	var v int64
	if _, err := fmt.Sscan(ms, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPromotionFencesBeforeTheDrain: the old master is alive and its
// clients write while a promotion's drain takes several times the master's
// semi-sync timeout T (the standby's table is locked). Fenced only after
// the drain, the master would fall back to async T after the stream
// stopped and acknowledge commits the standby never gets. Fenced first, it
// refuses writes before the stream stops: every commit a client was told
// succeeded is on the new master, and no sample sees two writable servers.
func TestPromotionFencesBeforeTheDrain(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			f := newFailoverEnvMode(t, `mode = "manual"`, mode)
			f.grantRejoin(f.master) // the fence user can fence
			ctx := context.Background()
			f.exec("SET GLOBAL rpl_semi_sync_master_timeout = 1000")
			load, stopLoad := context.WithCancel(ctx)
			defer stopLoad()
			var committed atomic.Int64
			ids := appWriters(load, t, f.master, 8, &committed)
			harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= 100 })
			sampling, stopSampling := context.WithCancel(ctx)
			defer stopSampling()
			sampler := sampleWritable(sampling, f.master, f.standby)

			// The drain waits for this lock.
			lock, err := f.standby.DB().Conn(ctx)
			must(t, err)
			defer lock.Close()
			_, err = lock.ExecContext(ctx, "LOCK TABLES test.t WRITE")
			must(t, err)
			// A backlog for the drain: commits received, not applied.
			locked := committed.Load()
			harness.WaitFor(t, "commits behind the lock", 30*time.Second, func() bool { return committed.Load() >= locked+20 })
			promoted := make(chan error, 1)
			go func() {
				_, err := f.p.a.opPromote(ctx, control.Peer{UID: 0, PID: 1}, control.Request{Op: "promote", Force: true})
				promoted <- err
			}()
			var drainAt time.Time
			harness.WaitFor(t, "the promotion to be in its drain", 60*time.Second, func() bool {
				p := f.report().Failover.Promotion
				if p != nil && (p.Step == "stream-end" || p.Step == "stream-stopped") {
					drainAt = time.Now()
					return true
				}
				return false
			})
			okBefore := committed.Load()
			// The drain outlasts T three times over while the clients write.
			harness.WaitFor(t, "3 T into the drain", 30*time.Second, func() bool { return time.Since(drainAt) > 3*time.Second })
			okDuring := committed.Load() - okBefore
			_, err = lock.ExecContext(ctx, "UNLOCK TABLES")
			must(t, err)
			select {
			case err := <-promoted:
				if err != nil {
					t.Fatalf("promote --force: %v", err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("the promotion did not end")
			}
			stopLoad()
			ok := ids()
			stopSampling()
			<-sampler.done
			if missing := missingIDs(t, f.standby, ok); len(missing) > 0 {
				t.Fatalf("%d of %d commits OK'd by the old master are not on the new master (%d OK'd during the drain), e.g. %v",
					len(missing), len(ok), okDuring, missing[:min(5, len(missing))])
			}
			if n := sampler.both.Load(); n > 0 {
				t.Fatalf("%d of %d samples saw both servers writable", n, sampler.samples.Load())
			}
			if okDuring > 0 {
				t.Fatalf("the old master acknowledged %d commits during the drain", okDuring)
			}
			t.Logf("%d commits OK'd, all on the new master; none during the drain; %d samples, never two writers", len(ok), sampler.samples.Load())
		})
	}
}
