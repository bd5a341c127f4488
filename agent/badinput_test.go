package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// runToExit runs the agent binary and waits for it to stop on its own.
func (e *testEnv) runToExit(d time.Duration) (stderr string, exitCode int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, hsBinary, "run", "--config", e.cfgPath)
	// On timeout, SIGQUIT: the Go runtime prints every goroutine's stack.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := buf.Bytes()
	if ctx.Err() != nil {
		e.t.Fatalf("agent did not exit within %s; output:\n%s", d, out)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return string(out), 0
}

// lastLine is the one line the agent ends with.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func assertNoSecret(t *testing.T, where, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Fatalf("the password appears in %s:\n%s", where, text)
	}
}

func TestWrongPasswordStops(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(filepath.Join(e.dir, "master.pw"), []byte("not-"+e.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := e.runToExit(30 * time.Second)
	if code != 1 || !strings.Contains(lastLine(out), "Access denied for user 'repl'") {
		t.Fatalf("exit %d, last line %q; want exit 1 and an access-denied line", code, lastLine(out))
	}
	assertNoSecret(t, "the agent's output", out, e.password)
	assertNoSecret(t, "the agent's output", out, "not-"+e.password)
}

func TestUnreachableMasterIsRetried(t *testing.T) {
	e := newEnv(t)
	port, _ := sandbox.FreePort() // nothing listens there
	cfg := readFile(t, e.cfgPath)
	cfg = strings.Replace(cfg, "port = "+strconv.Itoa(e.master.Port()), "port = "+strconv.Itoa(port), 1)
	os.WriteFile(e.cfgPath, []byte(cfg), 0o600)
	p := e.startProcess()
	c := e.config()
	harness.WaitFor(t, "status to report the retries", 20*time.Second, func() bool {
		r, err := status.Get(context.Background(), c.StatusSource())
		return err == nil && r.Stream.State == ingest.StateRetrying && strings.Contains(r.Stream.LastError, "connection refused") &&
			r.Stream.Reconnects != nil && *r.Stream.Reconnects >= 3
	})
	if strings.Count(readFile(t, p.LogPath), "connection refused") < 3 {
		t.Fatalf("log does not show the retries:\n%s", readFile(t, p.LogPath))
	}
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(10 * time.Second); err != nil {
		t.Fatalf("agent exit after SIGINT: %v", err)
	}
}

func TestPurgedStartPositionStops(t *testing.T) {
	e := newEnv(t)
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=100")
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.exec("FLUSH BINARY LOGS")
	e.exec("INSERT INTO test.t (c) VALUES (2)")
	harness.PurgeBinaryLogsTo(t, e.master, "mysql-bin.000002")
	e.writeConfig("")
	cfg := strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "file:mysql-bin.000001:4"`, 1)
	os.WriteFile(e.cfgPath, []byte(cfg), 0o600)
	out, code := e.runToExit(30 * time.Second)
	if code != 1 || !strings.Contains(lastLine(out), "mysql-bin.000001") || !strings.Contains(lastLine(out), "1236") {
		t.Fatalf("exit %d, last line %q; want exit 1 naming the purged file and error 1236", code, lastLine(out))
	}
}

func TestServerIDInUseStops(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	replica, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(e.dir, "r"), ServerID: 9001, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Stop(ctx)
	if err := replica.Exec(ctx, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos", e.master.Port(), e.password)); err != nil {
		t.Fatal(err)
	}
	if err := replica.Exec(ctx, "START SLAVE"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the native replica to register", 20*time.Second, func() bool {
		n, _ := e.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
		return n == "1"
	})
	out, code := e.runToExit(30 * time.Second)
	if code != 1 || !strings.Contains(lastLine(out), "server_id = 9001 is already used by the replica") {
		t.Fatalf("exit %d, last line %q; want exit 1 naming the server_id conflict", code, lastLine(out))
	}
	// The native replica was not kicked off.
	if v, _ := replica.QueryString(ctx, "SELECT 1 FROM information_schema.processlist WHERE command='Slave_IO'"); v != "1" {
		t.Fatal("the native replica's IO thread is gone")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	base := "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\npassword = \"hunter2-secret\"\n"
	tests := []struct {
		name    string
		path    string
		wantErr string
	}{
		{"missing file", filepath.Join(dir, "nope.toml"), "no such file or directory"},
		{"a directory", dir, "is a directory"},
		{"malformed", write("bad.toml", "data_dir = \n"), "line 1"},
		{"unknown key", write("unk.toml", base+"pasword = \"x\"\n"), "unknown key master.pasword"},
		{"unknown section", write("sec.toml", base+"[semisyn]\nenabled = true\n"), "unknown key semisyn"},
		{"bad duration", write("dur.toml", base+"heartbeat = \"soon\"\n"), "heartbeat"},
		{"read timeout below heartbeat", write("rt.toml", base+"heartbeat = \"2s\"\nread_timeout = \"1s\"\n"), "master.read_timeout = 1s must be longer than master.heartbeat = 2s"},
		{"bad start", write("start.toml", "start = \"yesterday\"\n"+base), `start = "yesterday"`},
		{"no server_id", write("sid.toml", "data_dir = \"d\"\n[master]\nuser = \"r\"\n"), "server_id is required"},
		{"password file missing", write("pwf.toml", "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"r\"\npassword_file = \"/nonexistent/pw\"\n"), "master.password_file /nonexistent/pw: no such file"},
		{"listen not host:port", write("listen.toml", base+"[status]\nlisten = \"8910\"\n"), `status.listen = "8910"`},
		{"valid", write("ok.toml", base), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(tt.path)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("LoadConfig err = %v, want one containing %q", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.path) {
					t.Fatalf("error %q does not name the file", err)
				}
				assertNoSecret(t, "a config error", err.Error(), "hunter2-secret")
			}
		})
	}
}

// corruptingProxy forwards TCP to target and flips one byte in the middle of
// the first large server->client packet after `after` packets, once armed.
type corruptingProxy struct {
	ln      net.Listener
	target  string
	armed   atomic.Bool
	flipped atomic.Int32
}

func newCorruptingProxy(t *testing.T, target string) *corruptingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptingProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *corruptingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *corruptingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		go func() { io.Copy(s, c); s.Close() }()
		go func() { p.pump(c, s); c.Close() }()
	}
}

// pump copies server->client packet by packet, flipping a byte when armed.
func (p *corruptingProxy) pump(dst io.Writer, src io.Reader) {
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint32(append(hdr[:3:3], 0)))
		body := make([]byte, n)
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if n > 2000 && p.armed.Load() && p.flipped.Load() == 0 {
			body[n/2] ^= 0x40
			p.flipped.Add(1)
		}
		if _, err := dst.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}

// TestCorruptEventIsNotStored: an event damaged on the wire fails its CRC32;
// the agent says so, stores nothing of it, reconnects, and ends with a relay
// log equal to the master's.
func TestCorruptEventIsNotStored(t *testing.T) {
	e := newEnv(t)
	proxy := newCorruptingProxy(t, e.master.Addr())
	cfg := strings.Replace(readFile(t, e.cfgPath), "port = "+strconv.Itoa(e.master.Port()), "port = "+strconv.Itoa(proxy.port()), 1)
	os.WriteFile(e.cfgPath, []byte(cfg), 0o600)
	p := e.startProcess()
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c, payload) VALUES (1, 'small')")
	proxy.armed.Store(true)
	e.exec("INSERT INTO test.t (c, payload) VALUES (2, REPEAT('a', 190)), (3, REPEAT('b', 190)), (4, REPEAT('c', 190)), (5, REPEAT('d', 190)), (6, REPEAT('e', 190)), (7, REPEAT('f', 190)), (8, REPEAT('g', 190)), (9, REPEAT('h', 190)), (10, REPEAT('i', 190)), (11, REPEAT('j', 190)), (12, REPEAT('k', 190))")
	e.exec("INSERT INTO test.t (c) VALUES (13)")
	c := e.config()
	e.waitCaughtUp(func() status.Report { r, _ := status.Get(context.Background(), c.StatusSource()); return r })
	if proxy.flipped.Load() != 1 {
		t.Fatal("the proxy never corrupted an event; the test proves nothing")
	}
	p.kill()
	recoverRelay(t, c)
	log := readFile(t, p.LogPath)
	if !strings.Contains(log, "event checksum mismatch") || !strings.Contains(log, "not stored, will re-read it from the master") {
		t.Fatalf("log does not report the checksum failure:\n%s", log)
	}
	compareRelay(t, filepath.Join(e.master.Dir(), "binlog"), c.RelayDir())
}
