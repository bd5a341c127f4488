package ingest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// TestMonitorStopsWithASampleInFlight: the end of the monitor's context
// ends a sample whose master does not answer (here a frozen one), so a
// stop of the agent never waits for the master: an upgrade measured a 1 s
// planned stop that took 10 s, the master's semi-sync timeout, while a
// sample's round trip waited.
func TestMonitorStopsWithASampleInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs a MariaDB server")
	}
	ctx := context.Background()
	if err := sandbox.EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := sandbox.Start(ctx, sandbox.Config{Dir: t.TempDir(), ServerID: 1, Master: true, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	const pw = "monitor-pw-7c1f"
	if err := srv.CreateUser(ctx, "mon", pw, "BINLOG MONITOR, PROCESS"); err != nil {
		t.Fatal(err)
	}
	// A read timeout far beyond the test's wait: only the context can end
	// the round trip.
	m := NewMonitor(binlog.SourceConfig{Addr: srv.Addr(), User: "mon", Password: pw,
		ConnectTimeout: 5 * time.Second, ReadTimeout: 10 * time.Minute}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, nil)
	// read calls stream once before its round trips and once after them:
	// an odd count is a sample in flight.
	var streamCalls atomic.Int64
	m.stream = func() StreamView {
		streamCalls.Add(1)
		return StreamView{}
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Run(mctx, 50*time.Millisecond) }()
	harness.WaitFor(t, "the monitor's first sample", 30*time.Second, func() bool { return m.View().PosKnown })
	pid := srv.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw) // before the server's Stop, which runs after
	harness.WaitFor(t, "every thread of mariadbd to stop", 30*time.Second, func() bool { return frozen(pid) })
	// A sample in flight now waits on the frozen server, and one begins
	// every 50 ms.
	harness.WaitFor(t, "a sample in flight on the frozen server", 30*time.Second, func() bool { return streamCalls.Load()%2 == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		thaw()
		<-done
		t.Fatal("the monitor did not stop while its master was frozen: it waited for the master's answer")
	}
}

// frozen reports whether every thread of pid is stopped (state T).
func frozen(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			continue // the thread exited
		}
		// The state follows the command name in parentheses.
		if i := strings.LastIndexByte(string(b), ')'); i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}
