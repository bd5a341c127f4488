package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
)

// TestPreviousDumpThreadIsEnded: after kill -9 with no load, the agent's dump
// thread lingers on the master; the restarted agent ends exactly that thread
// before dumping again, leaving one dump thread, its own.
func TestPreviousDumpThreadIsEnded(t *testing.T) {
	e := newEnv(t)
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	dumps := func() string {
		v, _ := e.master.QueryString(ctx, "SELECT GROUP_CONCAT(id ORDER BY id) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
		return v
	}
	first := dumps()
	p.kill()
	time.Sleep(300 * time.Millisecond)
	if got := dumps(); got != first {
		t.Logf("dump threads right after kill -9: %q (was %q)", got, first)
	}
	p.start()
	e.waitSemiSyncClient()
	harness.WaitFor(t, "one dump thread, a new one", 10*time.Second, func() bool {
		d := dumps()
		return d != "" && !strings.Contains(d, ",") && d != first
	})
	log := readFile(t, p.LogPath)
	if !strings.Contains(log, "ended the agent's previous dump thread on the master") || !strings.Contains(log, "id="+first) {
		t.Fatalf("the restarted agent did not end its previous dump thread %s:\n%s", first, grepLines(log, "dump"))
	}
}
