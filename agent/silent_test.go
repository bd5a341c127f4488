package agent

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// TestSilentDumpIsANamedState: a dump connection on which the master sends
// nothing at all (not even the fake rotate) is the state "silent" with the
// master's view of the dump thread, status --check is CRITICAL, and the
// state ends when a dump delivers again.
func TestSilentDumpIsANamedState(t *testing.T) {
	e := newEnv(t)
	proxy := newDumpProxy(t, e.master.Addr())
	writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), "port = "+strconv.Itoa(e.master.Port()), "port = "+strconv.Itoa(proxy.port()), 1))
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx := context.Background()
	proxy.mute.Store(true)
	id, err := e.master.QueryString(ctx, "SELECT id FROM information_schema.processlist WHERE user = 'repl' AND command LIKE 'Binlog Dump%'")
	if err != nil || id == "" {
		t.Fatalf("the agent's dump thread: %q %v", id, err)
	}
	must(t, e.master.Exec(ctx, "KILL CONNECTION "+id))
	var rep status.Report
	harness.WaitFor(t, "the silent state", 60*time.Second, func() bool {
		rep = p.a.liveReport()
		return rep.Stream.State == ingest.StateSilent && rep.Stream.SilentSince != nil
	})
	if proxy.muted.Load() == 0 {
		t.Fatal("no dump was muted: the test proves nothing")
	}
	if !strings.Contains(rep.Stream.LastError, "master sends nothing") || !strings.Contains(rep.Stream.MasterDumpThread, "Binlog Dump") {
		t.Fatalf("last error %q, master's view %q: want the condition named and the master's view of the dump thread",
			rep.Stream.LastError, rep.Stream.MasterDumpThread)
	}
	if code, line := rep.Check(status.DefaultCheckThresholds(), time.Now()); code != status.CheckCritical || !strings.Contains(line, "silent") {
		t.Fatalf("--check: %d %q, want CRITICAL naming the silent stream", code, line)
	}
	if !strings.Contains(p.log.String(), "first packet of the dump arrived") {
		t.Fatal("the first packet of a dump is not logged")
	}
	proxy.mute.Store(false)
	harness.WaitFor(t, "the stream to deliver again", 60*time.Second, func() bool {
		r := p.a.liveReport()
		return r.Stream.State == ingest.StateStreaming && r.Stream.SilentSince == nil
	})
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.waitCaughtUp(func() status.Report { return p.a.liveReport() })
}
