package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/relay"
)

// TestRelayPurgeKeepsWhatIsNeeded: applied segments past their retention are
// deleted; the live segment and everything not yet applied stay; the agent
// restarts on the purged relay log and goes on. In each apply mode (their
// purge horizons differ).
func TestRelayPurgeKeepsWhatIsNeeded(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testRelayPurgeKeepsWhatIsNeeded(t, mode) })
	}
}

func testRelayPurgeKeepsWhatIsNeeded(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyMode(mode)
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[relay]\nretention = \"300ms\"\ncheckpoint_interval = \"50ms\"\n")
	p := e.startProcess()
	e.waitSemiSyncClient()
	for i := range 4 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
		e.exec("FLUSH BINARY LOGS")
	}
	e.exec("INSERT INTO test.t (c) VALUES (99)")
	e.waitApplied(standby, 30*time.Second)
	c := e.config()
	harness.WaitFor(t, "old segments to be purged", 20*time.Second, func() bool {
		segs, _ := relay.ListSegments(c.RelayDir())
		return len(segs) <= 2
	})
	segs, _ := relay.ListSegments(c.RelayDir())
	if last := segs[len(segs)-1]; last.MasterFile != e.masterPos().File {
		t.Fatalf("the live segment (%s) was purged: %+v", e.masterPos().File, segs)
	}
	if !strings.Contains(readFile(t, p.LogPath), "relay segment purged") {
		t.Fatal("purges are not logged")
	}
	// Restart on the purged relay log; nothing is lost or redone.
	p.kill()
	p.start()
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (100)")
	e.waitApplied(standby, 30*time.Second)
	m, s := tableRows(t, e.master, "test.t", "id"), tableRows(t, standby, "test.t", "id")
	if len(m) != len(s) || len(m) != 6 {
		t.Fatalf("after purge and restart: master %d rows, standby %d", len(m), len(s))
	}
	if strings.Contains(readFile(t, p.LogPath), "level=ERROR") {
		t.Fatalf("errors after the purge:\n%s", grepLines(readFile(t, p.LogPath), "level=ERROR"))
	}
}
