package relay

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/hotstandby/hotstandby/binlog"
)

// ErrCaughtUp means a Cursor reached the durable frontier: there is nothing
// more to read until the frontier moves.
var ErrCaughtUp = errors.New("relay: caught up with the durable frontier")

// Cursor reads the relay log's events in order, across segments, never past
// the durable frontier it is given: bytes beyond it (not yet fsynced, or the
// live segment's preallocated zeros) are never returned. The applier and the
// binlog server follow the relay log with one each. A Cursor is used by one
// goroutine.
type Cursor struct {
	dir   string
	start Frontier // where the first Next starts (zero: the oldest segment)
	cur   *SegmentReader
	seg   Segment
	// where the first Next started reading: a segment's path and offset
	originPath string
	originOff  int64
}

// Origin is where the cursor started reading: the first segment it opened
// and the offset in it ("" before the first Next found a segment).
func (c *Cursor) Origin() (path string, offset int64) { return c.originPath, c.originOff }

// NewCursor returns a cursor over the relay log in dir that starts at start,
// the end of an event (a frontier saved earlier), or at the oldest segment's
// first event when start is zero or older than every segment.
func NewCursor(dir string, start Frontier) *Cursor {
	return &Cursor{dir: dir, start: start}
}

// Segment is the segment the last event came from (zero before the first).
func (c *Cursor) Segment() Segment { return c.seg }

// FDE is the format description of the current segment (nil before the
// first event).
func (c *Cursor) FDE() []byte {
	if c.cur == nil {
		return nil
	}
	return c.cur.FDE
}

// Checksummed reports whether the current segment's events end in a CRC32.
func (c *Cursor) Checksummed() bool { return c.cur != nil && c.cur.Checksummed() }

// Next returns the next event at or before durable and the frontier after
// it (the master position is the event's end), or ErrCaughtUp.
func (c *Cursor) Next(durable Frontier) ([]byte, Frontier, error) {
	for {
		if c.cur == nil {
			if err := c.open(durable); err != nil {
				return nil, Frontier{}, err
			}
		}
		if c.seg.Seq == durable.Segment && c.cur.Offset() >= durable.Offset {
			// Drop read-ahead past the frontier (preallocated zeros or bytes
			// not yet synced) before waiting.
			if err := c.cur.SeekTo(c.cur.Offset()); err != nil {
				return nil, Frontier{}, err
			}
			return nil, Frontier{}, ErrCaughtUp
		}
		if c.seg.Seq > durable.Segment {
			return nil, Frontier{}, ErrCaughtUp
		}
		if c.seg.Seq == durable.Segment {
			c.cur.SetLimit(durable.Offset)
		} else {
			c.cur.SetLimit(math.MaxInt64) // a closed segment: whole
		}
		ev, err := c.cur.Next()
		if err == io.EOF && c.seg.Seq < durable.Segment {
			c.cur.Close()
			c.cur = nil
			c.seg = Segment{Seq: c.seg.Seq + 1}
			continue
		}
		if err != nil {
			return nil, Frontier{}, fmt.Errorf("relay segment %s at %d: %w", c.seg.Path, c.cur.Offset(), err)
		}
		h, _ := binlog.ParseHeader(ev)
		return ev, Frontier{Segment: c.seg.Seq, Offset: c.cur.Offset(),
			Pos: binlog.Position{FilePos: binlog.FilePos{File: c.seg.MasterFile, Pos: uint64(h.LogPos)}}}, nil
	}
}

// open opens the segment c.seg.Seq (or, before the first one, the segment of
// the start frontier or the oldest one) at its first event or the start.
func (c *Cursor) open(durable Frontier) error {
	segs, err := ListSegments(c.dir)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return ErrCaughtUp
	}
	want := c.seg.Seq
	offset := int64(0)
	if want == 0 {
		want = segs[0].Seq
		if c.start.Segment >= segs[0].Seq {
			want, offset = c.start.Segment, c.start.Offset
		}
	}
	for _, seg := range segs {
		if seg.Seq == want {
			r, err := OpenSegment(seg.Path)
			if err != nil {
				return err
			}
			if offset == 0 {
				offset = r.Offset() // after the header
			}
			// Reset the read-ahead OpenSegment did without a limit.
			if err := r.SeekTo(offset); err != nil {
				r.Close()
				return err
			}
			if c.originPath == "" {
				c.originPath, c.originOff = seg.Path, offset
			}
			c.cur, c.seg = r, seg
			return nil
		}
	}
	if want > durable.Segment {
		return ErrCaughtUp
	}
	return fmt.Errorf("relay segment %d is missing from %s", want, c.dir)
}

// Close releases the open segment.
func (c *Cursor) Close() error {
	if c.cur == nil {
		return nil
	}
	err := c.cur.Close()
	c.cur = nil
	return err
}
