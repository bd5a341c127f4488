package binlogserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
)

// recordingProxy forwards TCP connections to target and records what each
// client sent.
type recordingProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex // mu guards sent
	sent   []*bytes.Buffer
	wg     sync.WaitGroup
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			buf := &bytes.Buffer{}
			p.mu.Lock()
			p.sent = append(p.sent, buf)
			p.mu.Unlock()
			p.wg.Add(2)
			var bmu sync.Mutex
			go func() {
				defer p.wg.Done()
				defer up.Close()
				b := make([]byte, 32<<10)
				for {
					n, err := c.Read(b)
					bmu.Lock()
					buf.Write(b[:n])
					bmu.Unlock()
					if n > 0 {
						if _, werr := up.Write(b[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() { defer p.wg.Done(); defer c.Close(); _, _ = io.Copy(c, up) }()
		}
	}()
	return p
}

func (p *recordingProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// take closes the proxy and returns each connection's client bytes.
func (p *recordingProxy) take() [][]byte {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	for _, b := range p.sent {
		out = append(out, append([]byte(nil), b.Bytes()...))
	}
	return out
}

// writeSeed stores one session as two corpus entries: the whole session
// (mode 0) and its command phase after the handshake response (mode 1).
func writeSeed(t *testing.T, name string, session []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", "FuzzServeSession")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(suffix string, data []byte) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name+"-"+suffix), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("login", append([]byte{0}, session...))
	if len(session) >= 4 {
		n := int(session[0]) | int(session[1])<<8 | int(session[2])<<16
		if 4+n <= len(session) {
			put("commands", append([]byte{1}, session[4+n:]...))
		}
	}
	t.Logf("seed %s: %d bytes", name, len(session))
}

// TestCaptureFuzzSeeds records real client sessions against the binlog
// server, through a proxy, as FuzzServeSession's seed corpus, and the small
// relay log the fuzz target serves. It runs only with
// HOTSTANDBY_CAPTURE_FUZZ=1 (it rewrites testdata).
func TestCaptureFuzzSeeds(t *testing.T) {
	if os.Getenv("HOTSTANDBY_CAPTURE_FUZZ") != "1" {
		t.Skip("set HOTSTANDBY_CAPTURE_FUZZ=1 to capture the seed sessions again")
	}
	f := newRelayFixture(t, 1, 12)
	end := f.ends[len(f.ends)-1].pos
	f.durableAt(len(f.ends))
	if err := os.MkdirAll(fuzzRelay, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(f.relay)
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join(f.relay, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fuzzRelay, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	capture := func(name string, run func(port int)) {
		p := newRecordingProxy(t, f.srv.Addr())
		run(p.port())
		for i, s := range p.take() {
			writeSeed(t, fmt.Sprintf("%s-%d", name, i), s)
		}
	}
	ctx := context.Background()
	replica := func(name string, id uint32, extra []string, change string) func(int) {
		return func(port int) {
			r := f.newReplicaAt(t, name, id, extra, port, change) // through the proxy
			waitRead(t, r, name, end)
			if err := r.Exec(ctx, "STOP SLAVE"); err != nil {
				t.Fatal(err)
			}
		}
	}
	capture("replica-semisync-gtid", replica("semi", 2, []string{"rpl_semi_sync_slave_enabled=ON"}, "MASTER_USE_GTID=slave_pos"))
	capture("replica-file", replica("plain", 3, nil, fmt.Sprintf("MASTER_LOG_FILE='%s', MASTER_LOG_POS=4, MASTER_USE_GTID=no", f.files[0])))
	capture("mariadb-binlog", func(port int) {
		cmd := exec.Command("mariadb-binlog", "--read-from-remote-server", "--host=127.0.0.1", "--port="+strconv.Itoa(port),
			"--user=downstream", "--to-last-log", f.files[0])
		cmd.Env = append(os.Environ(), "MYSQL_PWD="+f.pw)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mariadb-binlog: %v\n%s", err, out)
		}
	})
	for _, semi := range []bool{false, true} {
		capture(fmt.Sprintf("binlogsyncer-semisync-%v", semi), func(port int) {
			syncEvents(t, port, "downstream", f.pw, semi, f.files[0], end, func() {
				if semi {
					harness.WaitFor(t, "an ACK", 10*time.Second, func() bool { return f.srv.Stats().Acks > 0 })
				}
			})
		})
	}
}
