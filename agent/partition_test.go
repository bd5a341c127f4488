package agent

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
)

// TestPartitionedMasterIsShotBeforeTheDrain: the master stays alive behind
// a partition (its port dropped in its namespace) while clients on its own
// host keep writing over its socket; the drain takes longer than the
// master's semi-sync timeout T (the standby's table is locked). The SQL
// fence cannot reach it, which the gate's argument allows only until
// B + T: past that the master falls back to async and acknowledges
// commits the standby never gets. The stonith command (here: kill -9 of
// the master) runs before the stream stops and the drain begins, so that
// no commit is acknowledged after B + T: every commit a client was told
// succeeded is on the new master. (Replica mode, the default: nsEnv's
// standby has no mode key.)
func TestPartitionedMasterIsShotBeforeTheDrain(t *testing.T) {
	harness.NeedNetns(t, "iptables")
	dir := t.TempDir()
	shot := filepath.Join(dir, "stonith.ran")
	e := newNsEnvWith(t, func(e *nsEnv) string {
		return fmt.Sprintf("mode = \"auto\"\nstonith = [\"sh\", \"-c\", \"touch %s; kill -9 %d\"]\n", shot, e.master.PID())
	})
	ctx := context.Background()
	db, err := sql.Open("mysql", e.master.RootDSN("test")) // the master's own host: its socket
	must(t, err)
	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var committed atomic.Int64
	ids := writers(load, db, 4, &committed, writerOptions{payload: "local", pause: 20 * time.Millisecond})
	harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= 100 })
	lock, err := e.standby.DB().Conn(ctx)
	must(t, err)
	defer lock.Close()
	_, err = lock.ExecContext(ctx, "LOCK TABLES test.t WRITE")
	must(t, err)
	locked := committed.Load()
	harness.WaitFor(t, "commits behind the lock", 30*time.Second, func() bool { return committed.Load() >= locked+20 })
	e.blockMasterPort()
	blockedAt := time.Now() // about B: the stream's last word
	harness.WaitFor(t, "the promotion to be in its drain", 60*time.Second, func() bool {
		r := e.mustReport()
		if r.Failover == nil || r.Failover.Promotion == nil {
			return false
		}
		s := r.Failover.Promotion.Step
		return s == "stream-end" || s == "stream-stopped"
	})
	// The drain lasts past B + T (T = 10 s) with some margin.
	harness.WaitFor(t, "B + T + 3s", 60*time.Second, func() bool { return time.Since(blockedAt) > 13*time.Second })
	_, err = lock.ExecContext(ctx, "UNLOCK TABLES")
	must(t, err)
	harness.WaitFor(t, "the promotion, recorded in the audit log", 60*time.Second, func() bool {
		r := e.mustReport()
		return r.Role == checkpoint.RoleMaster && strings.Contains(strings.Join(r.Audit, "\n"), "promoted to epoch 1")
	})
	stopLoad()
	ok := ids()
	if _, err := os.Stat(shot); err != nil {
		t.Fatalf("the stonith command did not run: %v", err)
	}
	harness.WaitFor(t, "the old master to be gone (stonith)", 30*time.Second, func() bool { return e.master.PID() == 0 })
	if missing := missingIDs(t, e.standby, ok); len(missing) > 0 {
		t.Fatalf("%d of %d commits OK'd by the partitioned master are not on the new master, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
	}
	r := e.mustReport()
	audit := strings.Join(r.Audit, "\n")
	if !strings.Contains(audit, "unreachable") || !strings.Contains(audit, "stonith") {
		t.Fatalf("audit log:\n%s\nwant the fence's 'unreachable' and the stonith command's result", audit)
	}
	t.Logf("%d commits OK'd by the partitioned master, all on the new master", len(ok))
}
