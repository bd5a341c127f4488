package agent

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/ingest"
)

// TestSemiSyncLosslessUnderLoad: with the agent as the master's only
// semi-sync replica, 16 clients commit 10,000 transactions; every one was
// acknowledged (yes_tx +10,000, no_tx unchanged) and the relay log holds
// exactly the master's events.
func TestSemiSyncLosslessUnderLoad(t *testing.T) {
	e := newEnv(t)
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	yes0, no0 := e.status("Rpl_semi_sync_master_yes_tx"), e.status("Rpl_semi_sync_master_no_tx")
	n, err := e.load(context.Background(), 16, 10000)
	if err != nil || n != 10000 {
		t.Fatalf("load: %d commits, %v", n, err)
	}
	yes, no := e.status("Rpl_semi_sync_master_yes_tx")-yes0, e.status("Rpl_semi_sync_master_no_tx")-no0
	if yes != 10000 || no != 0 {
		t.Fatalf("Rpl_semi_sync_master_yes_tx rose by %d, no_tx by %d; want 10000 and 0", yes, no)
	}
	e.exec("FLUSH BINARY LOGS") // a rotate in the stream
	e.exec("INSERT INTO test.t (c) VALUES (-1)")
	e.waitCaughtUp(p.a.liveReport)
	rep := p.a.liveReport()
	if rep.SemiSync.AcksSent == nil || *rep.SemiSync.AcksSent == 0 || *rep.SemiSync.AcksSent > 10001 {
		t.Fatalf("acks_sent = %v", rep.SemiSync.AcksSent)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	events := compareRelay(t, filepath.Join(e.master.Dir(), "binlog"), e.config().RelayDir())
	t.Logf("relay holds %d events equal to the master's; %d ACKs sent", events, *rep.SemiSync.AcksSent)
	mariadbBinlogReads(t, e.config().RelayDir())
	_ = time.Second
}
