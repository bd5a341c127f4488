package agent

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// failoverEnv is a master, a standby and an agent with failover.mode auto.
type failoverEnv struct {
	*testEnv
	standby *sandbox.Server
	p       *inProcess
}

func newFailoverEnv(t *testing.T, failoverTOML string) *failoverEnv {
	t.Helper()
	e := newEnv(t)
	standby := e.withStandby()
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\n"+failoverTOML+"\n")
	f := &failoverEnv{testEnv: e, standby: standby}
	f.p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	return f
}

func (f *failoverEnv) report() status.Report { return f.p.a.liveReport() }

// waitLossless waits until the agent can prove a promotion now lossless:
// the monitor needs two samples of the master in semi-sync.
func (f *failoverEnv) waitLossless() {
	f.t.Helper()
	harness.WaitFor(f.t, "a promotion to be proven lossless", 60*time.Second, func() bool {
		r := f.report()
		return r.Failover != nil && r.Failover.LosslessNow
	})
}

// okIDs commits rows from n clients until ctx ends and returns every id
// whose COMMIT returned OK.
func okIDs(ctx context.Context, t *testing.T, s *sandbox.Server, clients int, committed *atomic.Int64) (ids func() []int64) {
	db, err := sql.Open("mysql", s.RootDSN("test"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(clients)
	var mu sync.Mutex
	var ok []int64
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := next.Add(1)
				cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := db.ExecContext(cctx, "INSERT INTO t (id, c, payload) VALUES (?, 1, 'committed')", id)
				cancel()
				if err != nil {
					return // the master is gone: this commit's outcome is unknown, not recorded
				}
				mu.Lock()
				ok = append(ok, id)
				mu.Unlock()
				committed.Add(1)
			}
		}()
	}
	return func() []int64 {
		wg.Wait()
		db.Close()
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), ok...)
	}
}

// TestFailoverLossless kills the master with kill -9 under a 16-client
// load, 10 times on fresh pairs of servers: each time the agent promotes the
// standby by itself, every id whose COMMIT returned OK is on it, it takes
// writes, the agent's role is master and the promotion is in the audit log.
func TestFailoverLossless(t *testing.T) {
	kills := 10
	if testing.Short() {
		t.Skip("integration test")
	}
	for i := range kills {
		t.Run(fmt.Sprintf("kill %d", i+1), func(t *testing.T) {
			f := newFailoverEnv(t, `mode = "auto"`)
			f.waitLossless()
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			var committed atomic.Int64
			ids := okIDs(ctx, t, f.master, 16, &committed)
			want := int64(200 + 37*i)
			harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= want })
			killedAt := time.Now()
			if err := f.master.Kill(); err != nil {
				t.Fatal(err)
			}
			stop()
			harness.WaitFor(t, "the automatic promotion", 60*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
			took := time.Since(killedAt)
			ok := ids()
			missing := missingIDs(t, f.standby, ok)
			if len(missing) > 0 {
				t.Fatalf("%d of %d committed ids are not on the promoted standby, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
			}
			if err := f.standby.Exec(context.Background(), "INSERT INTO test.t (c, payload) VALUES (2, 'after the promotion')"); err != nil {
				t.Fatalf("the promoted standby does not take writes: %v", err)
			}
			if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@read_only"); ro != "0" {
				t.Fatalf("read_only=%s on the promoted standby", ro)
			}
			rep := f.report()
			if !strings.Contains(strings.Join(rep.Audit, "\n"), "promoted to epoch 1") {
				t.Fatalf("audit log lacks the promotion: %v", rep.Audit)
			}
			t.Logf("kill %d: %d commits OK'd, all on the standby; promoted %s after the kill", i+1, len(ok), took.Round(time.Millisecond))
		})
	}
}

// missingIDs returns the ids not in test.t on s.
func missingIDs(t *testing.T, s *sandbox.Server, ids []int64) []int64 {
	t.Helper()
	rows, err := s.DB().Query("SELECT id FROM test.t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	var missing []int64
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}
