package agent

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/status"
)

// TestResumeAfterMasterEvents: the master kills the agent's dump thread, the
// master restarts, and the master rotates its binlog twice while the agent
// is stopped; each time the agent resumes with nothing lost or doubled.
func TestResumeAfterMasterEvents(t *testing.T) {
	e := newEnv(t)
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	cfg := e.config()
	report := func() status.Report { r, _ := status.Get(ctx, cfg.StatusSource()); return r }
	commit := func(n int) {
		t.Helper()
		if got, err := e.load(ctx, 4, n); err != nil || got != int64(n) {
			t.Fatalf("load: %d of %d commits: %v", got, n, err)
		}
	}
	commit(500)

	// 1. The master kills the dump thread.
	id, err := e.master.QueryString(ctx, "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%' LIMIT 1")
	if err != nil {
		t.Fatal(err)
	}
	e.exec("KILL " + id)
	commit(500)
	e.waitCaughtUp(report)
	e.waitSemiSyncClient()

	// 2. The master restarts.
	if err := e.master.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	e.waitSemiSyncClient()
	commit(500)
	e.waitCaughtUp(report)
	if r := report(); r.Stream.Reconnects == nil || *r.Stream.Reconnects < 2 {
		t.Fatalf("reconnects = %v, want at least 2", r.Stream.Reconnects)
	}

	// 3. The agent stops; the master rotates twice and commits meanwhile.
	p.Signal(syscall.SIGTERM)
	if err := p.wait(20 * time.Second); err != nil {
		t.Fatalf("agent did not stop cleanly on SIGTERM: %v", err)
	}
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=200") // no replica: don't stall
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO test.t (c) VALUES (2)")
	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO test.t (c) VALUES (3)")
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=10000")
	if r := report(); r.Daemon != "stopped" || r.Received.File == "" {
		t.Fatalf("status of a stopped agent: %+v", r)
	}
	p.start()
	e.waitSemiSyncClient()
	commit(200)
	e.waitCaughtUp(report)
	p.kill()
	recoverRelay(t, cfg)
	events := compareRelay(t, filepath.Join(e.master.Dir(), "binlog"), cfg.RelayDir())
	t.Logf("relay holds %d events equal to the master's", events)
	mariadbBinlogReads(t, cfg.RelayDir())
	if log := readFile(t, p.LogPath); !strings.Contains(log, "resuming from durable checkpoint") {
		t.Fatalf("restart did not say it resumed from the checkpoint:\n%s", log)
	}
}
