package binlogserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// maxAckPacket is the longest semi-sync ACK: the magic byte, the 8-byte
// position and a file name of at most FN_REFLEN (512) bytes.
const maxAckPacket = 1 + 8 + 512

// readAcks reads a semi-sync replica's ACKs (EF, position u64, file name:
// each a packet of its own) until the connection ends, and records each.
// Anything else ends the dump. It runs on its own goroutine: the stream
// never waits for an ACK, so a replica that ACKs slowly or never delays
// nobody (its ACKs are informational; see WaitAcked).
func (st *stream) readAcks(c io.Reader) error {
	var hdr [4]byte
	buf := make([]byte, maxAckPacket)
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		if n < 9 || n > maxAckPacket {
			return fmt.Errorf("the replica sent a %d-byte packet during the dump, not a semi-sync ACK", n)
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return err
		}
		if buf[0] != semiSyncMagic {
			return fmt.Errorf("the replica sent a packet starting 0x%02x during the dump, not a semi-sync ACK", buf[0])
		}
		pos := binary.LittleEndian.Uint64(buf[1:9])
		file := strings.TrimRight(string(buf[9:n]), "\x00")
		st.s.noteAck(st.r, binlog.FilePos{File: file, Pos: pos})
	}
}

// noteAck records one ACK and wakes WaitAcked.
func (s *Server) noteAck(r *replica, at binlog.FilePos) {
	s.acks.Add(1)
	now := time.Now()
	s.mu.Lock()
	r.Acks++
	r.Acked, r.AckedAt = at, now
	close(s.acked)
	s.acked = make(chan struct{})
	s.mu.Unlock()
}

// WaitAcked waits until the connected replica with serverID has ACKed the
// master position at (or a later one), or ctx ends.
func (s *Server) WaitAcked(ctx context.Context, serverID uint32, at binlog.FilePos) error {
	for {
		s.mu.Lock()
		var acked binlog.FilePos
		found := false
		for _, r := range s.replicas {
			if r.ServerID == serverID && r.Acks > 0 {
				if ok, err := r.Acked.AtLeast(at); err == nil && ok {
					s.mu.Unlock()
					return nil
				}
				acked, found = r.Acked, true
			}
		}
		ch := s.acked
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			if found {
				return fmt.Errorf("replica %d ACKed up to %s, not %s: %w", serverID, acked, at, ctx.Err())
			}
			return fmt.Errorf("replica %d sent no ACK (not connected in semi-sync?): %w", serverID, ctx.Err())
		case <-ch:
		}
	}
}
