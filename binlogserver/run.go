package binlogserver

import (
	"context"
	"errors"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// publishEvery is how many events go between registry updates.
const publishEvery = 512

// run streams from first (the located start; nil: the replica is caught
// up) until ctx ends or a write fails. A refusal found mid-stream goes to
// the replica as an ERR packet, as a master sends one.
func (st *stream) run(ctx context.Context, first []byte) error {
	defer st.publish(false)
	hb := st.h.heartbeat
	var tick <-chan time.Time
	if hb > 0 {
		t := time.NewTimer(hb)
		defer t.Stop()
		tick = t.C
		st.hbTimer = t
	}
	st.lastSend = time.Now()
	if first == nil && st.unknown && !st.nonBlock {
		// No durable frontier yet: wait for it, then locate the start. (A
		// non-blocking dump gets EOF: nothing is known durable.)
		var err error
		if first, err = st.locate(ctx, true); err != nil {
			return st.refuse(err)
		}
	}
	if first != nil {
		if err := st.send(first); err != nil {
			return err
		}
	} else if err := st.preambleAtEnd(); err != nil {
		return err
	}
	// The frontier is read again only when the cursor reaches it: while the
	// replica is behind, serving takes no lock the relay's writer takes.
	d, moved := st.durable()
	for {
		ev, _, err := st.cur.Next(d)
		if errors.Is(err, relay.ErrCaughtUp) {
			if nd, nmoved := st.durable(); nd.Segment != d.Segment || nd.Offset != d.Offset {
				d, moved = nd, nmoved
				continue
			}
			if st.nonBlock {
				// Everything durable went out: a master answers EOF.
				if err := st.pw.eof(); err != nil {
					return err
				}
				return st.flush()
			}
			if err := st.flush(); err != nil {
				return err
			}
			st.publish(true)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-moved:
			case <-tick:
				if err := st.heartbeat(hb); err != nil {
					return err
				}
			}
			d, moved = st.durable()
			continue
		}
		if err != nil {
			return st.refuse(fatal(err.Error()))
		}
		st.noteSegment()
		send, err := st.filter(ev)
		if err != nil {
			return st.refuse(err)
		}
		if send {
			if err := st.send(ev); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// send writes one stored event, after a fake Rotate and the format
// description when the replica enters a master file.
func (st *stream) send(ev []byte) error {
	h, _ := binlog.ParseHeader(ev)
	seg := st.cur.Segment()
	if !st.preambled || seg.MasterFile != st.fdeFile {
		if err := st.preamble(seg.MasterFile, h.Start(), st.cur.FDE()); err != nil {
			return err
		}
	}
	if err := st.writeAck(ev, st.ackNext); err != nil {
		return err
	}
	if h.LogPos != 0 {
		st.pos = h.LogPos
	}
	if h.Type == binlog.RotateEvent {
		// The real Rotate at a file's end: the replica is now at the
		// start of the next file.
		if next, err := binlog.RotateTarget(ev, st.cur.Checksummed()); err == nil {
			st.file, st.pos = next.File, uint32(next.Pos)
		}
	}
	if st.events%publishEvery == 0 {
		st.publish(false)
	}
	return nil
}

// preamble tells the replica the master file and the next event's position
// (a fake Rotate) and sends the file's format description.
//
// The first fake Rotate carries a CRC32 only when the client's
// @master_binlog_checksum is CRC32, as MariaDB sends it; later ones follow
// the format description already sent.
func (st *stream) preamble(file string, pos uint64, fde []byte) error {
	crc := binlog.FDEChecksumAlg(fde) == 1
	rotateCRC := crc
	if !st.preambled && st.h.checksum != "CRC32" {
		rotateCRC = false
	}
	// At the start of a file (pos is where the format description ends) a
	// master names position 4 and sends the format description as stored.
	fdeHdr, _ := binlog.ParseHeader(fde)
	atStart := fdeHdr.LogPos != 0 && pos == uint64(fdeHdr.LogPos)
	rotatePos := pos
	if atStart {
		rotatePos = 4
	}
	if err := st.write(fakeRotate(st.s.cfg.ServerID, file, rotatePos, rotateCRC)); err != nil {
		return err
	}
	if err := st.write(streamFDE(fde, atStart)); err != nil {
		return err
	}
	st.preambled, st.fdeFile, st.file, st.pos = true, file, file, uint32(pos)
	return nil
}

// preambleAtEnd places a caught-up replica at the durable end.
func (st *stream) preambleAtEnd() error {
	fde := st.cur.FDE()
	if fde == nil {
		return nil // an empty relay log: the preamble goes with the first event
	}
	d := st.s.cfg.Source.Durable()
	if d.Segment == 0 || d.Pos.FilePos.File == "" {
		// No durable position to name: a fake Rotate must never name no
		// file. The preamble goes with the first event.
		return nil
	}
	if err := st.preamble(d.Pos.FilePos.File, d.Pos.FilePos.Pos, fde); err != nil {
		return err
	}
	// The FDE is the segment's file's, not necessarily d's (a Rotate ends
	// the relay): the next event from another file sends its own.
	st.fdeFile = st.cur.Segment().MasterFile
	return st.flush()
}

// heartbeat sends a heartbeat if nothing went out for the period.
func (st *stream) heartbeat(period time.Duration) error {
	idle := time.Since(st.lastSend)
	if idle < period || !st.preambled {
		st.hbTimer.Reset(max(period-idle, time.Millisecond))
		return nil
	}
	crc := binlog.FDEChecksumAlg(st.cur.FDE()) == 1
	if err := st.pw.event(heartbeat(st.s.cfg.ServerID, st.file, st.pos, crc)); err != nil {
		return err
	}
	err := st.flush()
	st.lastSend = time.Now()
	st.hbTimer.Reset(period)
	return err
}

// write buffers one event for the replica. The buffer goes out when it is
// full (while the replica is behind) and when the stream reaches the
// durable end (flush).
func (st *stream) write(ev []byte) error { return st.writeAck(ev, false) }

// writeAck is write; with semi-sync, ack asks the replica to ACK ev.
func (st *stream) writeAck(ev []byte, ack bool) error {
	if err := st.pw.eventAck(ev, ack); err != nil {
		return err
	}
	st.bytes += uint64(len(ev))
	st.events++
	st.unflushed++
	return nil
}

// flush sends what is buffered and counts it.
func (st *stream) flush() error {
	err := st.pw.flush()
	if st.unflushed > 0 {
		st.s.bytesSent.Add(st.bytes - st.counted)
		st.s.eventsSent.Add(st.unflushed)
		st.counted, st.unflushed = st.bytes, 0
		st.lastSend = time.Now()
	}
	return err
}

// refuse sends a refusal as an ERR packet in the stream and ends it.
func (st *stream) refuse(err error) error {
	var me *mysql.MyError
	if errors.As(err, &me) {
		st.s.log.Warn("replica refused mid-stream", "addr", st.h.addr, "server_id", st.h.serverID, "err", me.Message)
		_ = st.pw.errPacket(me.Code, me.State, me.Message)
		_ = st.flush()
	}
	return err
}

// publish copies the stream's progress into the registry.
func (st *stream) publish(caughtUp bool) {
	sent := binlog.NewGTIDSet(binlog.MariaDB)
	for _, g := range st.sent {
		sent = sent.AddMariaDB(g)
	}
	st.s.update(st.r, func(r *replica) {
		r.Sent = binlog.FilePos{File: st.file, Pos: uint64(st.pos)}
		r.SentGTID = sent.String()
		r.BytesSent = st.bytes
		r.CaughtUp = caughtUp
	})
}
