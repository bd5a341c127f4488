package agent

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
)

// TestResumedPromotionKeepsWhatTheMasterCommittedWhileTheAgentWasDown is a
// double fault: the master froze long enough to be declared dead, the
// automatic promotion recorded its decision, and the agent was killed right
// there. The master then woke up; with no semi-sync replica it waited its
// timeout and returned OK for commits the standby never received (async
// fallback while the agent was down). The restarted agent resumes the
// promotion: it fences the live old master and must not stop the stream
// before the relay log holds everything that master committed, or those
// OK'd commits are lost on the new master.
func TestResumedPromotionKeepsWhatTheMasterCommittedWhileTheAgentWasDown(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			standby := e.withStandbyMode(mode)
			writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"auto\"\n")
			// The [master] user is the fence user: it needs these.
			grantFence(t, e)
			p := e.startProcessEnv(killAfterStepEnv + "=" + checkpoint.StepStarted)
			e.waitSemiSyncClient()
			ctx := context.Background()
			e.waitProcessLossless()
			must(t, syscall.Kill(e.master.PID(), syscall.SIGSTOP))
			cont := sync1(func() { _ = syscall.Kill(e.master.PID(), syscall.SIGCONT) })
			t.Cleanup(cont)
			harness.WaitFor(t, "the agent to kill itself after recording the decision", 60*time.Second, p.Exited)
			if !strings.Contains(p.Log(), "kill -9 after the promotion step") {
				t.Fatalf("the agent exited without the crash injection:\n%s", p.LogTail(40))
			}
			cont()
			// The agent is down: the first commit waits the semi-sync
			// timeout and returns OK without an ACK; the others are async.
			ids := []int64{7001, 7002, 7003, 7004, 7005}
			for _, id := range ids {
				e.exec("INSERT INTO test.t (id, c) VALUES (?, 1)", id)
			}
			p.start()
			harness.WaitFor(t, "the resumed promotion to finish", 90*time.Second, func() bool {
				return e.processReport().Role == checkpoint.RoleMaster
			})
			if missing := missingIDs(t, standby, ids); len(missing) > 0 {
				t.Fatalf("commits the old master returned OK for are missing on the new master: %v\n%s", missing, p.LogTail(60))
			}
			if ro := must1(e.master.QueryString(ctx, "SELECT @@global.read_only")); ro != "1" {
				t.Fatalf("the old master is not read-only after the promotion: read_only=%s", ro)
			}
		})
	}
}

// TestOldMasterThawedDuringTheDrainIsFencedBeforeTheStandbyIsWritable:
// the master froze (SIGSTOP: its TCP port accepts, nothing answers), so
// the promotion's fence found it unreachable and went on; the agent was
// killed after the stream stopped, and the master woke up, writable,
// before the drain finished. When the standby becomes writable the old
// master must already be read-only: never two writable servers (the watch
// of the old master starts only with the master role, after that).
func TestOldMasterThawedDuringTheDrainIsFencedBeforeTheStandbyIsWritable(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			standby := e.withStandbyMode(mode)
			writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\nmode = \"auto\"\n")
			grantFence(t, e)
			p := e.startProcessEnv(killAfterStepEnv + "=" + checkpoint.StepStreamStopped)
			e.waitSemiSyncClient()
			ctx := context.Background()
			e.waitProcessLossless()
			e.exec("INSERT INTO test.t (id, c) VALUES (8001, 1)")
			must(t, syscall.Kill(e.master.PID(), syscall.SIGSTOP))
			cont := sync1(func() { _ = syscall.Kill(e.master.PID(), syscall.SIGCONT) })
			t.Cleanup(cont)
			harness.WaitFor(t, "the agent to kill itself after the stream stopped", 90*time.Second, p.Exited)
			if !strings.Contains(p.Log(), "kill -9 after the promotion step") {
				t.Fatalf("the agent exited without the crash injection:\n%s", p.LogTail(40))
			}
			cont()
			if ro := must1(e.master.QueryString(ctx, "SELECT @@global.read_only")); ro != "0" {
				t.Fatalf("the frozen master was fenced after all (read_only=%s): the test needs it unfenced", ro)
			}
			// Stop the next run right after the standby was made writable:
			// the moment two writers would exist.
			p2 := e.startProcessEnv(killAfterStepEnv + "=" + checkpoint.StepWritable)
			harness.WaitFor(t, "the resumed promotion to stop after making the standby writable", 90*time.Second, p2.Exited)
			if !strings.Contains(p2.Log(), "kill -9 after the promotion step") {
				t.Fatalf("the agent exited without the crash injection:\n%s", p2.LogTail(40))
			}
			sro := must1(standby.QueryString(ctx, "SELECT @@global.read_only"))
			mro := must1(e.master.QueryString(ctx, "SELECT @@global.read_only"))
			if sro == "0" && mro == "0" {
				t.Fatalf("two writable servers: the standby was made writable beside the old master that woke up during the drain\n%s", p2.LogTail(40))
			}
			p2.start()
			harness.WaitFor(t, "the promotion to finish", 90*time.Second, func() bool {
				return e.processReport().Role == checkpoint.RoleMaster
			})
			if missing := missingIDs(t, standby, []int64{8001}); len(missing) > 0 {
				t.Fatalf("committed ids missing on the new master: %v", missing)
			}
		})
	}
}

// grantFence gives the [master] user, the fence user, what the fence
// needs, unlogged (the standby has no such user to grant to).
func grantFence(t *testing.T, e *testEnv) {
	t.Helper()
	ctx := context.Background()
	c, err := e.master.DB().Conn(ctx)
	must(t, err)
	defer c.Close()
	_, err = c.ExecContext(ctx, "SET SESSION sql_log_bin = 0")
	must(t, err)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		_, err := c.ExecContext(ctx, fmt.Sprintf("GRANT READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS ON *.* TO 'repl'@'%s'", host))
		must(t, err)
	}
	// The connection goes back to the pool: it must log again.
	_, err = c.ExecContext(ctx, "SET SESSION sql_log_bin = 1")
	must(t, err)
}
