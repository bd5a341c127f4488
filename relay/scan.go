package relay

import (
	"github.com/hotstandby/hotstandby/binlog"

	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// errTorn marks an incomplete or damaged event at the place a reader stopped.
var errTorn = errors.New("torn event")

// errIncomplete marks a torn event that is simply cut short by the end of
// the file (as a crash leaves a tail), as opposed to damaged bytes.
var errIncomplete = fmt.Errorf("%w: cut short by the end of the file", errTorn)

// SegmentReader reads the events of one relay segment in order.
type SegmentReader struct {
	f    *os.File
	lim  *limitedFile
	br   *bufio.Reader
	off  int64
	size int64 // the file's size when opened
	buf  []byte
	// FDE is the segment's header format description event.
	FDE         []byte
	checksummed bool
}

// OpenSegment opens a segment and reads its magic and header.
func OpenSegment(path string) (*SegmentReader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("relay: open segment %s: %w", path, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("relay: stat segment %s: %w", path, err)
	}
	lim := &limitedFile{f: f, limit: math.MaxInt64}
	s := &SegmentReader{f: f, lim: lim, br: bufio.NewReaderSize(lim, 1<<20), size: info.Size()}
	magic := make([]byte, len(binlog.Magic))
	if _, err := io.ReadFull(s.br, magic); err != nil || !bytes.Equal(magic, binlog.Magic) {
		f.Close()
		return nil, fmt.Errorf("%w: segment %s does not start with the binlog magic", ErrCorrupt, path)
	}
	s.off = int64(len(binlog.Magic))
	fde, err := s.Next()
	if err != nil {
		f.Close()
		if errors.Is(err, errIncomplete) || err == io.EOF {
			return nil, fmt.Errorf("%w: segment %s: header format description: %w", ErrCorrupt, path, errIncomplete)
		}
		return nil, fmt.Errorf("%w: segment %s: header format description: %v", ErrCorrupt, path, err)
	}
	s.FDE = append([]byte(nil), fde...)
	s.checksummed = binlog.FDEChecksumAlg(fde) == 1
	return s, nil
}

// Offset returns the offset of the next event.
func (s *SegmentReader) Offset() int64 { return s.off }

// Checksummed reports whether the segment's events carry CRC32.
func (s *SegmentReader) Checksummed() bool { return s.checksummed }

// SeekTo positions the reader at off, which must be an event start.
func (s *SegmentReader) SeekTo(off int64) error {
	if _, err := s.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("relay: seek segment %s: %w", s.f.Name(), err)
	}
	s.lim.pos = off
	s.br.Reset(s.lim) // drop read-ahead: a live segment may have grown
	s.off = off
	if info, err := s.f.Stat(); err == nil {
		s.size = info.Size()
	}
	return nil
}

// SetLimit makes the reader never read (not even ahead into its buffer)
// past offset limit: readers of the live segment set it to the durable
// frontier, so that bytes beyond it (not yet synced, or the preallocated
// zeros they will replace) are never seen. Raising it later is fine.
func (s *SegmentReader) SetLimit(limit int64) { s.lim.limit = limit }

// limitedFile reads f up to limit.
type limitedFile struct {
	f          *os.File
	pos, limit int64
}

func (l *limitedFile) Read(p []byte) (int, error) {
	if l.pos >= l.limit {
		return 0, io.EOF
	}
	if int64(len(p)) > l.limit-l.pos {
		p = p[:l.limit-l.pos]
	}
	n, err := l.f.Read(p)
	l.pos += int64(n)
	return n, err
}

// Next returns the next event (valid until the next call), io.EOF at the
// clean end, or an error wrapping errTorn for an incomplete or damaged event.
func (s *SegmentReader) Next() ([]byte, error) {
	hdr, err := s.br.Peek(binlog.HeaderLen)
	if err != nil {
		if len(hdr) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: %d bytes of header at offset %d", errIncomplete, len(hdr), s.off)
	}
	h, _ := binlog.ParseHeader(hdr)
	if h.Size < binlog.HeaderLen || h.Size > 1<<30 {
		return nil, fmt.Errorf("%w: implausible event size %d at offset %d", errTorn, h.Size, s.off)
	}
	if s.off+int64(h.Size) > s.size {
		if info, err := s.f.Stat(); err == nil {
			s.size = info.Size() // a live segment grows
		}
	}
	if s.off+int64(h.Size) > s.size {
		// Don't allocate what a torn header claims.
		return nil, fmt.Errorf("%w: %d-byte event at offset %d, file ends at %d", errIncomplete, h.Size, s.off, s.size)
	}
	if s.FDE != nil && h.Type == binlog.FormatDescriptionEvent {
		// The relay never stores one after a segment's header.
		return nil, fmt.Errorf("%w: format description event inside the segment at offset %d", errTorn, s.off)
	}
	if cap(s.buf) < int(h.Size) {
		s.buf = make([]byte, h.Size)
	}
	ev := s.buf[:h.Size]
	if n, err := io.ReadFull(s.br, ev); err != nil {
		return nil, fmt.Errorf("%w: %d of %d bytes at offset %d", errIncomplete, n, h.Size, s.off)
	}
	if s.checksummed && h.Type != binlog.FormatDescriptionEvent {
		if err := binlog.VerifyChecksum(ev); err != nil {
			return nil, fmt.Errorf("%w: at offset %d: %v", errTorn, s.off, err)
		}
	}
	s.off += int64(h.Size)
	return ev, nil
}

// Close closes the segment.
func (s *SegmentReader) Close() error { return s.f.Close() }

// recovered is what recovery found at the end of the relay log.
type recovered struct {
	seg      Segment          // the last segment (zero if none)
	fde      []byte           // its header
	end      Frontier         // the end of the last whole transaction
	lastType binlog.EventType // the type of the event that ends there
}

// recoverRelay scans the relay log forward from the checkpoint hint and
// cuts the last segment back to its last whole transaction. Damage anywhere
// but the tail of the last segment is ErrCorrupt: those bytes were
// durable, and nothing durable is ever cut.
func recoverRelay(dir string, hint Frontier, acked binlog.FilePos) (recovered, error) {
	segs, err := ListSegments(dir)
	if err != nil {
		return recovered{}, err
	}
	// A last segment holding only a header whose position is unknown (the
	// master's re-sent format description) holds no data: drop it.
	for len(segs) > 0 {
		last := segs[len(segs)-1]
		drop, err := headerOnlyUnplaced(last)
		if err != nil {
			return recovered{}, err
		}
		if !drop {
			break
		}
		if err := os.Remove(last.Path); err != nil {
			return recovered{}, fmt.Errorf("relay: remove empty segment %s: %w", last.Path, err)
		}
		segs = segs[:len(segs)-1]
	}
	if len(segs) == 0 {
		return recovered{end: Frontier{Pos: hint.Pos}}, nil
	}
	first := 0
	for i, s := range segs {
		if s.Seq == hint.Segment {
			first = i
		}
	}
	tr := binlog.NewTxnTracker(hint.Pos.GTID)
	var out recovered
	var carry binlog.FilePos // where the previous segment ended
	for i := first; i < len(segs); i++ {
		sc := segScan{seg: segs[i], carry: carry, tr: tr, last: i == len(segs)-1, acked: acked}
		if segs[i].Seq == hint.Segment {
			sc.from, sc.start = hint.Offset, hint.Pos.FilePos
		}
		end, fde, lastType, err := sc.run()
		if err != nil {
			return recovered{}, err
		}
		out = recovered{seg: segs[i], fde: fde, end: end, lastType: lastType}
		carry = end.Pos.FilePos
	}
	out.end.Pos.GTID = tr.GTIDs()
	return out, nil
}

func headerOnlyUnplaced(seg Segment) (bool, error) {
	s, err := OpenSegment(seg.Path)
	if err != nil {
		// A crash between create and the header's fsync leaves a file cut
		// inside its header; roll syncs the header before any event, so it
		// holds none. Damaged (not cut) headers stay an error.
		if errors.Is(err, errIncomplete) || seg.Size < int64(len(binlog.Magic)) {
			return true, nil
		}
		return false, err
	}
	defer s.Close()
	h, _ := binlog.ParseHeader(s.FDE)
	_, nextErr := s.Next()
	// No whole event after the header: nothing, or a torn or preallocated
	// (zero) tail.
	return h.LogPos == 0 && (nextErr == io.EOF || errors.Is(nextErr, errTorn)), nil
}

// segScan reads one segment during recovery.
type segScan struct {
	seg   Segment
	from  int64          // offset of the checkpoint in this segment; 0: none
	start binlog.FilePos // the checkpoint's master position (with from)
	carry binlog.FilePos // where the previous segment ended (its continuation)
	tr    *binlog.TxnTracker
	last  bool           // the last segment: a torn tail is cut, not an error
	acked binlog.FilePos // acknowledged to the master: never cut back before it
}

// run reads the segment and returns its last boundary. Bytes before the
// checkpoint are re-verified (they were durable: damage there is
// ErrCorrupt, never cut) without feeding the tracker, whose state is
// the checkpoint's. In the last segment a torn or unfinished tail is
// truncated back to the last boundary.
func (sc segScan) run() (_ Frontier, _ []byte, lastType binlog.EventType, _ error) {
	s, err := OpenSegment(sc.seg.Path)
	if err != nil {
		return Frontier{}, nil, 0, err
	}
	defer s.Close()
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: segment %s: %s", ErrCorrupt, sc.seg.Path, fmt.Sprintf(format, args...))
	}
	file, pos := sc.seg.MasterFile, uint64(0)
	if sc.carry.File == file {
		pos = sc.carry.Pos // a continuation of the previous segment (size roll)
	}
	if sc.from > 0 {
		if sc.from > sc.seg.Size {
			return Frontier{}, nil, 0, corrupt("%d bytes, but %d bytes of it were checkpointed as durable", sc.seg.Size, sc.from)
		}
		for s.Offset() < sc.from {
			ev, err := s.Next()
			if err != nil {
				return Frontier{}, nil, 0, corrupt("before its checkpoint at offset %d: %v", sc.from, err)
			}
			lastType = binlog.EventType(ev[4])
		}
		if s.Offset() != sc.from {
			return Frontier{}, nil, 0, corrupt("checkpoint offset %d is not an event boundary", sc.from)
		}
		file, pos = sc.start.File, sc.start.Pos
	}
	boundary := Frontier{Segment: sc.seg.Seq, Offset: s.Offset(), Pos: binlog.Position{FilePos: binlog.FilePos{File: file, Pos: pos}}}
	for {
		off := s.Offset()
		ev, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !sc.last {
				return Frontier{}, nil, 0, corrupt("%v", err)
			}
			break // torn tail: cut below
		}
		h, _ := binlog.ParseHeader(ev)
		if pos == 0 {
			pos = h.Start() // a segment that starts mid-file
			boundary.Pos.FilePos = binlog.FilePos{File: file, Pos: pos}
		}
		pos = uint64(h.LogPos)
		isBoundary, err := sc.tr.FeedHeader(ev, h, s.checksummed)
		if err != nil {
			return Frontier{}, nil, 0, corrupt("offset %d: %v", off, err)
		}
		if h.Type == binlog.RotateEvent {
			next, err := binlog.RotateTarget(ev, s.checksummed)
			if err != nil {
				return Frontier{}, nil, 0, corrupt("offset %d: %v", off, err)
			}
			file, pos = next.File, 0
			boundary = Frontier{Segment: sc.seg.Seq, Offset: s.Offset(), Pos: binlog.Position{FilePos: next}}
			lastType = h.Type
			continue
		}
		if isBoundary {
			boundary = Frontier{Segment: sc.seg.Seq, Offset: s.Offset(), Pos: binlog.Position{FilePos: binlog.FilePos{File: file, Pos: pos}}}
			lastType = h.Type
		}
	}
	if boundary.Pos.Pos == 0 {
		// A segment holding only its header: the header says where the
		// master's file stood (0 if it was the master's re-sent copy).
		fdeHdr, _ := binlog.ParseHeader(s.FDE)
		boundary.Pos.Pos = uint64(fdeHdr.LogPos)
	}
	sc.tr.Abort()
	if sc.last {
		if !sc.acked.IsZero() {
			if ok, err := boundary.Pos.FilePos.AtLeast(sc.acked); err == nil && !ok {
				return Frontier{}, nil, 0, corrupt("the relay log's last whole transaction ends at %s (offset %d of %d bytes), "+
					"but %s was acknowledged to the master: acknowledged transactions are damaged or missing; nothing was cut "+
					"(copy the relay directory aside; the master may still hold them: rebuild the relay from it, or restore the segment)",
					boundary.Pos.FilePos, boundary.Offset, sc.seg.Size, sc.acked)
			}
		}
		if err := truncateTail(sc.seg.Path, boundary.Offset); err != nil {
			return Frontier{}, nil, 0, err
		}
	}
	return boundary, s.FDE, lastType, nil
}

func truncateTail(path string, off int64) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("relay: stat %s: %w", path, err)
	}
	if info.Size() == off {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("relay: open %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(off); err != nil {
		return fmt.Errorf("relay: truncate %s to %d: %w", path, off, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("relay: sync %s: %w", path, err)
	}
	return nil
}
