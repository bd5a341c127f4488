package agent

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
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
				report := func() status.Report {
					r, err := status.Fetch(ctx, e.config().Status.Listen)
					if err != nil {
						return status.Report{}
					}
					return r
				}
				harness.WaitFor(t, "a promotion to be proven lossless", 60*time.Second, func() bool {
					r := report()
					return r.Failover != nil && r.Failover.LosslessNow
				})
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
