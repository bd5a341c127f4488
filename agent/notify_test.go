package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// notifySocket is a NOTIFY_SOCKET the test listens on, as systemd does.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string // every datagram, in order
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	dir, err := os.MkdirTemp("", "hsnotify") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ns := &notifySocket{path: filepath.Join(dir, "notify.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

// lines returns every "KEY=value" line received so far, in order.
func (ns *notifySocket) lines() []string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	var out []string
	for _, m := range ns.msgs {
		out = append(out, strings.Split(strings.TrimSpace(m), "\n")...)
	}
	return out
}

func (ns *notifySocket) count(line string) int {
	n := 0
	for _, l := range ns.lines() {
		if l == line {
			n++
		}
	}
	return n
}

// startNotified runs the daemon as systemd would: NOTIFY_SOCKET, and a
// watchdog of 300ms (pings expected every 150ms).
func (e *testEnv) startNotified(ns *notifySocket) *harness.Process {
	return harness.Start(e.t, hsBinary, []string{"run", "--config", e.cfgPath}, filepath.Join(e.dir, "agent.log"),
		[]string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=300000"}, nil)
}

// Under systemd (Type=notify, WatchdogSec) the daemon says READY=1 once
// its stream is up, or once it waits for a master that is down, then
// WATCHDOG=1 from then on, and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	for _, tc := range []struct {
		name       string
		masterDown bool
		wantState  string
	}{
		{"stream up", false, ingest.StateStreaming},
		{"waiting for the master", true, ingest.StateRetrying},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if tc.masterDown {
				if err := e.master.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			ns := listenNotify(t)
			hp := e.startNotified(ns)
			harness.WaitFor(t, "READY=1", 60*time.Second, func() bool { return ns.count("READY=1") == 1 || hp.Exited() })
			if hp.Exited() {
				t.Fatalf("the daemon exited before READY=1: %v\n%s", hp.Err(), readFile(t, hp.LogPath))
			}
			rep, err := status.Get(context.Background(), e.config().StatusSource())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Stream.State != tc.wantState {
				t.Errorf("READY=1 sent with the stream %q, want %q", rep.Stream.State, tc.wantState)
			}
			if rep.Build == nil || rep.Build.GoVersion == "" {
				t.Errorf("status has no build: %+v", rep.Build)
			}
			if !tc.masterDown {
				e.waitSemiSyncClient() // the master has its semi-sync replica
			}
			harness.WaitFor(t, "3 watchdog pings", 60*time.Second, func() bool { return ns.count("WATCHDOG=1") >= 3 })
			lines := ns.lines()
			ready := indexOf(lines, "READY=1")
			if first := indexOf(lines, "WATCHDOG=1"); first < ready {
				t.Errorf("WATCHDOG=1 before READY=1: %q", lines)
			}
			if !hp.Stop(30 * time.Second) {
				t.Fatal("the daemon did not stop on SIGTERM")
			}
			if err := hp.Err(); err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
			if ns.count("STOPPING=1") != 1 || ns.count("READY=1") != 1 {
				t.Errorf("want one READY=1 and one STOPPING=1: %q", ns.lines())
			}
			e.checkNoPanic("agent", readFile(t, hp.LogPath))
		})
	}
}

// A refusal (here the master refuses the password) ends the daemon with
// exit 1 before READY=1: `systemctl start` fails with the reason in the
// journal, and RestartPreventExitStatus=1 keeps systemd from retrying it.
func TestSystemdNotifyRefusalNeverReady(t *testing.T) {
	e := newEnv(t)
	writeFile(t, filepath.Join(e.dir, "master.pw"), "wrong-"+e.password+"\n")
	ns := listenNotify(t)
	hp := e.startNotified(ns)
	harness.WaitFor(t, "the daemon's exit", 60*time.Second, hp.Exited)
	var xe *exec.ExitError
	if err := hp.Err(); !errors.As(err, &xe) || xe.ExitCode() != 1 {
		t.Fatalf("exit %v, want exit status 1 (a refusal)\n%s", err, readFile(t, hp.LogPath))
	}
	if n := ns.count("READY=1"); n != 0 {
		t.Errorf("READY=1 sent before a refusal: %q", ns.lines())
	}
	if log := readFile(t, hp.LogPath); !strings.Contains(log, "1045") && !strings.Contains(strings.ToLower(log), "access denied") {
		t.Errorf("the log does not say why:\n%s", log)
	}
	if strings.Contains(readFile(t, hp.LogPath), e.password) {
		t.Error("the password is in the log")
	}
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return len(list)
}

func TestWatchdogPeriod(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{20 * time.Second: 10 * time.Second, 300 * time.Millisecond: 150 * time.Millisecond, time.Microsecond: 50 * time.Millisecond} {
		if got := watchdogPeriod(in); got != want {
			t.Errorf("watchdogPeriod(%s) = %s, want %s", in, got, want)
		}
	}
}
