package agent

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// TestAckWaitsForFsync: while the relay's fsync is held back, a commit on the
// master does not return (the master counts it as a waiting session), and no
// ACK ever names a position past the durable one.
func TestAckWaitsForFsync(t *testing.T) {
	e := newEnv(t)
	var armed atomic.Bool
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	var badAck atomic.Value
	hooks := ingest.Hooks{
		Sync: func(f *os.File) error {
			if armed.Load() {
				select {
				case entered <- struct{}{}:
				default:
				}
				<-gate
			}
			return f.Sync()
		},
		BeforeAck: func(ack, durable binlog.FilePos) {
			if ok, err := durable.AtLeast(ack); err != nil || !ok {
				badAck.Store(ack.String() + " > durable " + durable.String())
			}
		},
	}
	p := e.startInProcess(hooks)
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (0)")
	yes0, no0 := e.status("Rpl_semi_sync_master_yes_tx"), e.status("Rpl_semi_sync_master_no_tx")

	armed.Store(true)
	done := make(chan error, 1)
	go func() { done <- e.master.Exec(context.Background(), "INSERT INTO test.t (c) VALUES (1)") }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay writer never tried to fsync the commit")
	}
	// fsync is held: the commit must still be waiting for the ACK.
	time.Sleep(time.Second)
	select {
	case err := <-done:
		t.Fatalf("commit returned (err %v) while its events were not yet fsynced", err)
	default:
	}
	if w := e.status("Rpl_semi_sync_master_wait_sessions"); w < 1 {
		t.Fatalf("Rpl_semi_sync_master_wait_sessions = %d while fsync is held, want >= 1", w)
	}
	armed.Store(false)
	close(gate)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("commit did not return after fsync was released")
	}
	if yes, no := e.status("Rpl_semi_sync_master_yes_tx")-yes0, e.status("Rpl_semi_sync_master_no_tx")-no0; yes != 1 || no != 0 {
		t.Fatalf("yes_tx +%d, no_tx +%d; want +1 and +0", yes, no)
	}
	if v := badAck.Load(); v != nil {
		t.Fatalf("ACK beyond the durable position: %v", v)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
}

// agentProcess runs the hotstandby binary, so that tests can kill -9 it.
// When the agent logs that the master sends nothing on its dump connection,
// the master's diagnosis goes into the test's log.
type agentProcess struct {
	*harness.Process
	e *testEnv
}

func (e *testEnv) startProcess() *agentProcess {
	e.t.Helper()
	// The agent runs in a time zone other than the servers' (UTC): nothing
	// it copies may depend on its own.
	hp := harness.Start(e.t, hsBinary, []string{"run", "--config", e.cfgPath}, filepath.Join(e.dir, "agent.log"),
		[]string{"TZ=Asia/Kathmandu"}, func(line string) { e.t.Logf("agent: %s\n%s", line, e.master.Diagnose(context.Background())) })
	p := &agentProcess{Process: hp, e: e}
	e.t.Cleanup(func() {
		e.checkNoPanic("agent process", p.Log())
		if e.t.Failed() {
			e.t.Logf("agent process log (tail):\n%s", p.LogTail(300))
		}
	})
	return p
}

// start starts the agent again after kill.
func (p *agentProcess) start() { p.Restart() }

// kill sends SIGKILL and waits for the process to be gone.
func (p *agentProcess) kill() { p.Kill() }

// wait returns the process's exit, or fails after d.
func (p *agentProcess) wait(d time.Duration) error { return p.Wait(d) }

// TestKill9UnderLoad kills the agent's process at random moments while 16
// clients commit, 20 times; afterwards the relay log holds exactly the
// master's events, nothing missing or doubled, and semi-sync is back.
func TestKill9UnderLoad(t *testing.T) {
	e := newEnv(t)
	p := e.startProcess()
	e.waitSemiSyncClient()
	no0 := e.status("Rpl_semi_sync_master_no_tx")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var committed int64
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		committed, loadErr = e.load(ctx, 16, 1_000_000)
	}()
	for i := 0; i < 20; i++ {
		time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
		if i%4 == 3 {
			// A rotate in the stream. (Rotating while the only semi-sync
			// replica is down stalls the master for the whole semi-sync
			// timeout; TestResumeAfterMasterEvents covers that case.)
			e.exec("FLUSH BINARY LOGS")
		}
		p.kill()
		p.start()
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	wg.Wait()
	if loadErr != nil && ctx.Err() == nil {
		t.Fatal(loadErr)
	}
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (-1)")
	harness.WaitFor(t, "semi-sync to be back ON on the master", 30*time.Second, func() bool {
		v, _ := e.master.Status(context.Background(), "Rpl_semi_sync_master_status")
		return v == "ON"
	})
	cfg := e.config()
	e.waitCaughtUp(func() status.Report { r, _ := status.Get(context.Background(), cfg.StatusSource()); return r })
	p.kill()
	recoverRelay(t, cfg)
	events := compareRelay(t, filepath.Join(e.master.Dir(), "binlog"), cfg.RelayDir())
	if no := e.status("Rpl_semi_sync_master_no_tx") - no0; no != 0 {
		t.Errorf("Rpl_semi_sync_master_no_tx rose by %d across the kills: commits fell back to async", no)
	}
	t.Logf("%d commits under 20 kills; relay holds %d events equal to the master's", committed, events)
	mariadbBinlogReads(t, cfg.RelayDir())
}
