package agent

import (
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// dumpProxy forwards MySQL protocol connections to the master. A
// connection that sent a binlog dump request (COM_BINLOG_DUMP or
// COM_BINLOG_DUMP_GTID) is a dump connection: while stall is set, nothing
// the master sends on a dump connection, established or new, reaches the
// agent (the master's socket stays open and drained, so its dump thread
// stays registered); while refuse is set, a dump request closes the
// connection before the master sees it; while mute is set, a dump request
// passes and its connection gets nothing back from then on (a master whose
// dump thread is stuck before its first packet). Other connections (the
// monitor, the probe, the fence) pass.
type dumpProxy struct {
	ln      net.Listener
	target  string
	stall   atomic.Bool
	refuse  atomic.Bool
	mute    atomic.Bool
	stalled atomic.Int64 // packets held back from the agent
	refused atomic.Int64 // dump requests refused
	muted   atomic.Int64 // dump connections muted
}

func newDumpProxy(t *testing.T, target string) *dumpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dumpProxy{ln: ln, target: target}
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
			var dump, muted atomic.Bool
			go func() { p.toMaster(s, c, &dump, &muted); s.Close(); c.Close() }()
			go func() { p.toAgent(c, s, &dump, &muted); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *dumpProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *dumpProxy) toMaster(dst io.Writer, src io.Reader, dump, muted *atomic.Bool) {
	hdr := make([]byte, 4)
	for {
		if _, err := io.ReadFull(src, hdr); err != nil {
			return
		}
		body := make([]byte, int(binary.LittleEndian.Uint32(append(hdr[:3:3], 0))))
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if len(body) > 0 && (body[0] == 0x12 || body[0] == 0x1e) {
			if p.refuse.Load() {
				p.refused.Add(1)
				return
			}
			dump.Store(true)
			if p.mute.Load() && !muted.Swap(true) {
				p.muted.Add(1)
			}
		}
		if _, err := dst.Write(append(hdr, body...)); err != nil {
			return
		}
	}
}

func (p *dumpProxy) toAgent(dst io.Writer, src io.Reader, dump, muted *atomic.Bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if muted.Load() {
				continue
			}
			if dump.Load() && p.stall.Load() {
				p.stalled.Add(1)
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
