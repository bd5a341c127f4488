package binlogserver

import (
	"bufio"
	"fmt"
	"net"
	"runtime"
	"time"
)

// maxPayload is the largest payload of one protocol packet; a longer one is
// split, and a payload of exactly a multiple of it ends with an empty packet.
const maxPayload = 1<<24 - 1

// packetWriter frames events as protocol packets (00 + event) into a
// buffer, so that a run of small events costs one write, not one each.
type packetWriter struct {
	w   *bufio.Writer
	seq uint8
	// semi: the replica asked for semi-sync; every event packet starts
	// 00 EF <flag> (flag 01: ACK this event).
	semi bool
}

// Semi-sync packet header: the magic byte and the ACK-request flag.
const (
	semiSyncMagic   = 0xef
	semiSyncNeedAck = 0x01
)

func newPacketWriter(c net.Conn, seq uint8, timeout time.Duration) *packetWriter {
	// The timeout bounds every write: a replica that stops reading ends its
	// own dump, never the agent's ingest.
	return &packetWriter{w: bufio.NewWriterSize(deadlineWriter{c: c, timeout: timeout}, 256<<10), seq: seq}
}

// deadlineWriter bounds each write to the connection by timeout: one
// deadline per system call, not per event. After each write it yields its
// P: on a small machine a dump catching up could otherwise hold a P while
// the relay writer, back from its fsync and about to send the semi-sync
// ACK, waits in the run queue.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	if w.timeout > 0 {
		_ = w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	n, err := w.c.Write(b)
	runtime.Gosched()
	return n, err
}

// event writes one event packet that asks for no ACK.
func (p *packetWriter) event(ev []byte) error { return p.eventAck(ev, false) }

// eventAck writes one event packet; with semi-sync, ack asks the replica
// to ACK it.
func (p *packetWriter) eventAck(ev []byte, ack bool) error {
	prefix := []byte{0x00}
	if p.semi {
		flag := byte(0)
		if ack {
			flag = semiSyncNeedAck
		}
		prefix = []byte{0x00, semiSyncMagic, flag}
	}
	total := len(ev) + len(prefix)
	first := true
	rest := ev
	for {
		n := min(total, maxPayload)
		if err := p.header(n); err != nil {
			return err
		}
		chunk := n
		if first {
			if _, err := p.w.Write(prefix); err != nil {
				return p.wrap(err)
			}
			chunk -= len(prefix)
			first = false
		}
		if _, err := p.w.Write(rest[:chunk]); err != nil {
			return p.wrap(err)
		}
		rest = rest[chunk:]
		total -= n
		if n < maxPayload {
			if p.semi && ack {
				// The replica answers with its ACK as packet 0 of its own
				// sequence; a MariaDB master (flush_net: net_clear, then
				// pkt_nr++) goes on with 1, and go-mysql's BinlogSyncer
				// checks it.
				p.seq = 1
			}
			return nil
		}
	}
}

func (p *packetWriter) header(n int) error {
	if p.w.Available() < 4 && p.w.Buffered() > 0 {
		if err := p.flush(); err != nil {
			return err
		}
	}
	_, err := p.w.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), p.seq})
	p.seq++
	return p.wrap(err)
}

// flush sends what is buffered.
func (p *packetWriter) flush() error {
	if p.w.Buffered() == 0 {
		return nil
	}
	return p.wrap(p.w.Flush())
}

func (p *packetWriter) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("write to replica: %w", err)
}

// errPacket writes an ERR packet (code, SQL state, message).
func (p *packetWriter) errPacket(code uint16, state, msg string) error {
	if len(state) != 5 {
		state = "HY000"
	}
	body := append([]byte{0xff, byte(code), byte(code >> 8), '#'}, state...)
	body = append(body, msg...)
	if err := p.header(len(body)); err != nil {
		return err
	}
	_, err := p.w.Write(body)
	return p.wrap(err)
}

// eof writes an EOF packet (no warnings, no status flags).
func (p *packetWriter) eof() error {
	if err := p.header(5); err != nil {
		return err
	}
	_, err := p.w.Write([]byte{0xfe, 0, 0, 0, 0})
	return p.wrap(err)
}
