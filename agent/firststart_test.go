package agent

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
)

// writers commits single-row transactions into test.t from n connections
// until stopped; stop returns how many committed and the first error.
type loadWriters struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	committed atomic.Int64
	mu        sync.Mutex
	err       error
}

func startWriters(t *testing.T, s *sandbox.Server, n int) *loadWriters {
	t.Helper()
	db, err := sql.Open("mysql", s.RootDSN("test"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(n)
	ctx, cancel := context.WithCancel(context.Background())
	w := &loadWriters{cancel: cancel}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := 0; ctx.Err() == nil; j++ {
				if _, err := db.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (?, ?)", i, strings.Repeat("w", j%50)); err != nil {
					if ctx.Err() == nil {
						w.mu.Lock()
						w.err = err
						w.mu.Unlock()
					}
					return
				}
				w.committed.Add(1)
			}
		}()
	}
	t.Cleanup(func() { w.stop(); db.Close() })
	return w
}

func (w *loadWriters) stop() (int64, error) {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed.Load(), w.err
}

// TestFirstStartCurrentUnderLoad: the first run with start = "current" on
// a master under 8 writers streams every time. The start position and its
// GTID state used to be read in two round trips (SHOW MASTER STATUS, then
// @@gtid_binlog_pos): a commit in between gave a GTID set newer than the
// position, and the continuity check refused the start as "the master was
// rebuilt" (about 1 start in 5). Each of the first starts here uses a new
// data_dir; each must stream, and its relay log must be the master's
// binlog byte for byte from its first event.
func TestFirstStartCurrentUnderLoad(t *testing.T) {
	const starts = 15
	e := newEnv(t)
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=200") // between two agents, commits fall back quickly
	w := startWriters(t, e.master, 8)
	harness.WaitFor(t, "the writers to commit", 30*time.Second, func() bool { return w.committed.Load() > 200 })
	base := readFile(t, e.cfgPath)
	var refused []string
	for i := range starts {
		dataDir := filepath.Join(e.dir, fmt.Sprintf("agent-%d", i))
		writeFile(t, e.cfgPath, strings.Replace(base, fmt.Sprintf("data_dir = %q", filepath.Join(e.dir, "agent")), fmt.Sprintf("data_dir = %q", dataDir), 1))
		p := e.startInProcess(ingest.Hooks{})
		var st ingest.Status
		harness.WaitFor(t, fmt.Sprintf("first start %d to stream or stop", i), 60*time.Second, func() bool {
			st = p.a.recv.Status()
			return (st.State == ingest.StateStreaming && st.Transactions > 0) || st.State == ingest.StateFailed
		})
		if st.State == ingest.StateFailed {
			refused = append(refused, fmt.Sprintf("start %d: %s", i, st.LastError))
		}
		if err := p.stop(); err != nil && st.State != ingest.StateFailed {
			t.Fatalf("start %d: %v", i, err)
		}
		if st.State != ingest.StateFailed {
			compareRelayPrefix(t, filepath.Join(e.master.Dir(), "binlog"), filepath.Join(dataDir, "relay"))
		}
	}
	n, err := w.stop()
	if err != nil {
		t.Fatalf("writers: %v", err)
	}
	t.Logf("%d first starts under 8 writers (%d commits)", starts, n)
	if len(refused) > 0 {
		t.Fatalf("%d of %d first starts refused:\n%s", len(refused), starts, strings.Join(refused, "\n"))
	}
}
