package agent

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
)

// startProcessEnv is startProcess with extra environment variables (kept
// across restarts).
func (e *testEnv) startProcessEnv(env ...string) *agentProcess {
	e.t.Helper()
	hp := harness.Start(e.t, hsBinary, []string{"run", "--config", e.cfgPath}, filepath.Join(e.dir, "agent.log"),
		append([]string{"TZ=Asia/Kathmandu"}, env...), func(line string) { e.t.Logf("agent: %s\n%s", line, e.master.Diagnose(context.Background())) })
	p := &agentProcess{Process: hp, e: e}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("agent process log (tail):\n%s", p.LogTail(300))
		}
	})
	return p
}

// boundWriter is a user of the standby without READ_ONLY ADMIN (nor
// SUPER): read_only binds it, as it binds the applications.
func boundWriter(t *testing.T, standby *sandbox.Server) *sql.DB {
	t.Helper()
	pw := "w-" + harness.RandHex(8)
	must(t, standby.CreateUser(context.Background(), "appwriter", pw, "SELECT, INSERT"))
	db, err := sql.Open("mysql", fmt.Sprintf("appwriter:%s@tcp(127.0.0.1:%d)/test", pw, standby.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestPromotionKilledAtEveryStep kills the agent with kill -9 right after
// each recorded step of an automatic promotion, in both apply modes;
// restarted, it finishes the promotion, and the end state is the one a
// user relies on: role master, every committed row on the new master, a
// user bound by read_only can write there (and still can once the agent
// has nothing left to do), and no applier is left: no session of the
// agent's standby user, no replication configured.
func TestPromotionKilledAtEveryStep(t *testing.T) {
	steps := []string{checkpoint.StepStarted, checkpoint.StepIsolated, checkpoint.StepStreamStopped,
		checkpoint.StepApplied, checkpoint.StepWritable, checkpoint.StepDone}
	for _, mode := range []string{ModeReplica, ModeDirect} {
		for _, step := range steps {
			t.Run(mode+"/"+step, func(t *testing.T) {
				e := newEnv(t)
				standby := e.withStandbyMode(mode)
				writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"auto\"\n")
				writer := boundWriter(t, standby)
				p := e.startProcessEnv(killAfterStepEnv + "=" + step)
				e.waitSemiSyncClient()
				ctx := context.Background()
				report := e.processReport
				e.waitProcessLossless()
				ids := make([]int64, 20)
				for i := range ids {
					ids[i] = int64(1000 + i)
					e.exec("INSERT INTO test.t (id, c) VALUES (?, 1)", ids[i])
				}
				must(t, e.master.Kill())
				harness.WaitFor(t, "the agent to kill itself after step "+step, 60*time.Second, p.Exited)
				if !strings.Contains(p.Log(), "kill -9 after the promotion step") {
					t.Fatalf("the agent exited without the crash injection:\n%s", p.LogTail(40))
				}
				p.start()
				harness.WaitFor(t, "the promotion to finish after the restart", 60*time.Second, func() bool {
					return report().Role == checkpoint.RoleMaster
				})
				if missing := missingIDs(t, standby, ids); len(missing) > 0 {
					t.Fatalf("committed ids missing on the new master: %v", missing)
				}
				write := func(when string) {
					t.Helper()
					if _, err := writer.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (5, 'bound by read_only')"); err != nil {
						ro, _ := standby.QueryString(ctx, "SELECT @@read_only")
						t.Fatalf("%s: a user bound by read_only cannot write on the new master (read_only=%s): %v", when, ro, err)
					}
				}
				write("once promoted")
				harness.WaitFor(t, "no session of the agent's standby user on the new master", 30*time.Second, func() bool {
					n, err := standby.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'applier'")
					return err == nil && n == "0"
				})
				rows, err := standby.DB().Query("SHOW ALL SLAVES STATUS")
				must(t, err)
				configured := rows.Next()
				rows.Close()
				if configured {
					t.Fatalf("replication is still configured on the new master")
				}
				write("with no applier left")
			})
		}
	}
}

// TestResumedPromotionAbortsBesideAnUnfencedMaster: the agent is killed
// right after an automatic promotion recorded its decision (the master
// was frozen long enough to be declared dead); the master answers again
// before the agent restarts, and the fence user cannot fence it. The
// restarted agent resumes the promotion beside its stream, finds the old
// master answering and not fenced, and aborts: the standby stays
// read-only, the agent is a standby again and streams, and a commit on
// the master reaches the standby.
func TestResumedPromotionAbortsBesideAnUnfencedMaster(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeReplica)
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"auto\"\n")
	p := e.startProcessEnv(killAfterStepEnv + "=" + checkpoint.StepStarted)
	e.waitSemiSyncClient()
	ctx := context.Background()
	report := e.processReport
	e.waitProcessLossless()
	must(t, syscall.Kill(e.master.PID(), syscall.SIGSTOP))
	cont := sync1(func() { _ = syscall.Kill(e.master.PID(), syscall.SIGCONT) })
	t.Cleanup(cont)
	harness.WaitFor(t, "the agent to kill itself after recording the decision", 60*time.Second, p.Exited)
	cont()
	p.start()
	harness.WaitFor(t, "the resumed promotion to be aborted", 60*time.Second, func() bool {
		r := report()
		return r.Role == checkpoint.RoleStandby && r.Failover != nil && strings.Contains(r.Failover.LastAborted, "not fenced")
	})
	if ro := must1(standby.QueryString(ctx, "SELECT @@read_only")); ro != "1" {
		t.Fatalf("standby read_only=%s after the aborted promotion", ro)
	}
	harness.WaitFor(t, "the agent to stream again", 30*time.Second, func() bool {
		return report().Stream.State == ingest.StateStreaming
	})
	e.exec("INSERT INTO test.t (id, c) VALUES (4242, 1)")
	harness.WaitFor(t, "the commit on the standby", 60*time.Second, func() bool {
		n, _ := standby.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE id = 4242")
		return n == "1"
	})
}
