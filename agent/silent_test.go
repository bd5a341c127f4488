package agent

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// muteProxy forwards MySQL protocol connections; while armed, a connection
// that sends COM_BINLOG_DUMP gets nothing back from then on (a master whose
// dump thread is stuck before its first packet).
type muteProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Bool
	muted  atomic.Int64 // dumps muted
}

func newMuteProxy(t *testing.T, target string) *muteProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &muteProxy{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			var mute atomic.Bool
			go func() { p.clientToServer(s, c, &mute); s.Close() }()
			go func() { p.serverToClient(c, s, &mute); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *muteProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// clientToServer copies packets and notes a binlog dump request.
func (p *muteProxy) clientToServer(dst io.Writer, src io.Reader, mute *atomic.Bool) {
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		body := make([]byte, int(binary.LittleEndian.Uint32(append(hdr[:3:3], 0))))
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if len(body) > 0 && body[0] == 0x12 && p.armed.Load() {
			mute.Store(true)
			p.muted.Add(1)
		}
		if _, err := dst.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}

func (p *muteProxy) serverToClient(dst io.Writer, src io.Reader, mute *atomic.Bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !mute.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestSilentDumpIsANamedState: a dump connection on which the master sends
// nothing at all (not even the fake rotate) is the state "silent" with the
// master's view of the dump thread, status --check is CRITICAL, and the
// state ends when a dump delivers again.
func TestSilentDumpIsANamedState(t *testing.T) {
	e := newEnv(t)
	proxy := newMuteProxy(t, e.master.Addr())
	writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), "port = "+strconv.Itoa(e.master.Port()), "port = "+strconv.Itoa(proxy.port()), 1))
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx := context.Background()
	proxy.armed.Store(true)
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
	proxy.armed.Store(false)
	harness.WaitFor(t, "the stream to deliver again", 60*time.Second, func() bool {
		r := p.a.liveReport()
		return r.Stream.State == ingest.StateStreaming && r.Stream.SilentSince == nil
	})
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.waitCaughtUp(func() status.Report { return p.a.liveReport() })
}
