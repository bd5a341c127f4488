package harness

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// StuckMarker is what the agent logs when a dump connection delivered
// nothing (no rotate, no format description, no heartbeat) within its read
// timeout.
const StuckMarker = "master sends nothing"

// Process is a running hotstandby process (or any command) whose standard
// output and error go to a log file. It is safe for one test goroutine plus
// the watcher.
type Process struct {
	LogPath string
	// OnStuck, when set before Start, runs once (in its own goroutine) the
	// first time the process logs StuckMarker.
	OnStuck func(line string)

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid once done is closed
	once sync.Once
}

// Start runs bin with args, appending its output to logPath. env is added
// to the test's environment. The process is killed when the test ends.
func Start(t testing.TB, bin string, args []string, logPath string, env []string, onStuck func(string)) *Process {
	t.Helper()
	p := &Process{LogPath: logPath, OnStuck: onStuck, t: t}
	p.start(bin, args, env)
	t.Cleanup(p.Kill)
	return p
}

// Restart starts the same command again after it ended.
func (p *Process) Restart() {
	p.t.Helper()
	p.start(p.cmd.Path, p.cmd.Args[1:], nil)
}

func (p *Process) start(bin string, args, env []string) {
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	if p.cmd != nil {
		cmd.Env = p.cmd.Env
	}
	w := &watcher{f: logf, p: p}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatal(err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		logf.Close()
		p.err = err
		close(done)
	}(p.done)
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the exit status once Exited.
func (p *Process) Err() error { <-p.done; return p.err }

// Kill sends SIGKILL and waits for the process to be gone. Killing an ended
// process does nothing.
func (p *Process) Kill() {
	if p.cmd == nil || p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop ends the process with SIGTERM, and with SIGKILL after d; it reports
// whether SIGTERM was enough.
func (p *Process) Stop(d time.Duration) bool {
	if p.Exited() {
		return true
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		p.Kill()
		return false
	}
}

// Wait waits up to d for the process to end and returns its exit status;
// after d it sends SIGQUIT (a Go process prints every goroutine's stack to
// its log) and fails the test.
func (p *Process) Wait(d time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
		p.t.Fatalf("process still running after %s; log (tail):\n%s", d, p.LogTail(60))
		return nil
	}
}

// Log returns the whole log.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail returns the last n lines of the log.
func (p *Process) LogTail(n int) string {
	lines := splitLines(strings.TrimRight(p.Log(), "\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func splitLines(s string) []string { return strings.Split(s, "\n") }

// watcher copies the process's output to its log file and looks for
// StuckMarker in it.
type watcher struct {
	f    *os.File
	p    *Process
	mu   sync.Mutex
	part []byte // an unfinished line
}

func (w *watcher) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	if w.p.OnStuck == nil {
		return n, err
	}
	w.mu.Lock()
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		line := string(w.part[:i])
		w.part = w.part[i+1:]
		if strings.Contains(line, StuckMarker) {
			w.p.once.Do(func() { go w.p.OnStuck(line) })
		}
	}
	w.mu.Unlock()
	return n, err
}
