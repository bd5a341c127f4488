package binlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// errTorn marks an incomplete or damaged event at the place a reader stopped.
var errTorn = errors.New("torn event")

// SegmentReader reads the events of one relay segment in order.
type SegmentReader struct {
	f   *os.File
	br  *bufio.Reader
	off int64
	buf []byte
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
	s := &SegmentReader{f: f, br: bufio.NewReaderSize(f, 1<<20)}
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(s.br, magic); err != nil || !bytes.Equal(magic, Magic) {
		f.Close()
		return nil, fmt.Errorf("%w: segment %s does not start with the binlog magic", ErrCorruptRelay, path)
	}
	s.off = int64(len(Magic))
	fde, err := s.Next()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: segment %s: header format description: %v", ErrCorruptRelay, path, err)
	}
	s.FDE = append([]byte(nil), fde...)
	s.checksummed = FDEChecksumAlg(fde) == 1
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
	s.br.Reset(s.f)
	s.off = off
	return nil
}

// Next returns the next event (valid until the next call), io.EOF at the
// clean end, or an error wrapping errTorn for an incomplete or damaged event.
func (s *SegmentReader) Next() ([]byte, error) {
	hdr, err := s.br.Peek(HeaderLen)
	if err != nil {
		if len(hdr) == 0 && err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: %d bytes of header at offset %d", errTorn, len(hdr), s.off)
	}
	h, _ := ParseHeader(hdr)
	if h.Size < HeaderLen || h.Size > 1<<30 {
		return nil, fmt.Errorf("%w: implausible event size %d at offset %d", errTorn, h.Size, s.off)
	}
	if cap(s.buf) < int(h.Size) {
		s.buf = make([]byte, h.Size)
	}
	ev := s.buf[:h.Size]
	if n, err := io.ReadFull(s.br, ev); err != nil {
		return nil, fmt.Errorf("%w: %d of %d bytes at offset %d", errTorn, n, h.Size, s.off)
	}
	if s.checksummed && h.Type != FormatDescriptionEvent {
		if err := VerifyChecksum(ev); err != nil {
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
	seg      Segment   // the last segment (zero if none)
	fde      []byte    // its header
	end      Frontier  // the end of the last whole transaction
	lastType EventType // the type of the event that ends there
}

// recoverRelay scans the relay log forward from the checkpoint hint and
// cuts the last segment back to its last whole transaction. Damage anywhere
// but the tail of the last segment is ErrCorruptRelay: those bytes were
// durable, and nothing durable is ever cut.
func recoverRelay(dir string, hint Frontier) (recovered, error) {
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
	tr := newTracker(hint.Pos.GTID)
	var out recovered
	for i := first; i < len(segs); i++ {
		from := int64(0)
		start := FilePos{}
		if segs[i].Seq == hint.Segment {
			from, start = hint.Offset, hint.Pos.FilePos
		}
		end, fde, lastType, err := scanSegment(segs[i], from, start, tr, i == len(segs)-1, hint)
		if err != nil {
			return recovered{}, err
		}
		out = recovered{seg: segs[i], fde: fde, end: end, lastType: lastType}
	}
	out.end.Pos.GTID = tr.gtids()
	return out, nil
}

func headerOnlyUnplaced(seg Segment) (bool, error) {
	s, err := OpenSegment(seg.Path)
	if err != nil {
		// A crash between create and the header's fsync leaves a short file.
		if seg.Size < int64(len(Magic)+HeaderLen) {
			return true, nil
		}
		return false, err
	}
	defer s.Close()
	h, _ := ParseHeader(s.FDE)
	_, nextErr := s.Next()
	return h.LogPos == 0 && nextErr == io.EOF, nil
}

// scanSegment reads one segment from offset from (0: its first event) and
// returns the last boundary in it. In the last segment it truncates a torn or
// unfinished tail back to that boundary.
func scanSegment(seg Segment, from int64, start FilePos, tr *tracker, last bool, hint Frontier) (_ Frontier, _ []byte, lastType EventType, _ error) {
	s, err := OpenSegment(seg.Path)
	if err != nil {
		return Frontier{}, nil, 0, err
	}
	defer s.Close()
	fdeHdr, _ := ParseHeader(s.FDE)
	file, pos := seg.MasterFile, uint64(fdeHdr.LogPos)
	if from > 0 {
		if from > seg.Size {
			return Frontier{}, nil, 0, fmt.Errorf("%w: segment %s is %d bytes, but %d bytes of it were checkpointed as durable", ErrCorruptRelay, seg.Path, seg.Size, from)
		}
		if err := s.SeekTo(from); err != nil {
			return Frontier{}, nil, 0, err
		}
		file, pos = start.File, start.Pos
	}
	boundary := Frontier{Segment: seg.Seq, Offset: s.Offset(), Pos: Position{FilePos: FilePos{File: file, Pos: pos}}}
	for {
		off := s.Offset()
		ev, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !last || (hint.Segment == seg.Seq && off < hint.Offset) {
				return Frontier{}, nil, 0, fmt.Errorf("%w: segment %s: %v", ErrCorruptRelay, seg.Path, err)
			}
			break // torn tail: cut below
		}
		h, _ := ParseHeader(ev)
		if pos == 0 {
			pos = h.Start()
			boundary.Pos.FilePos = FilePos{File: file, Pos: pos}
		}
		pos = uint64(h.LogPos)
		isBoundary, err := tr.feed(ev, h, s.checksummed)
		if err != nil {
			return Frontier{}, nil, 0, fmt.Errorf("%w: segment %s offset %d: %v", ErrCorruptRelay, seg.Path, off, err)
		}
		if h.Type == RotateEvent {
			next, err := RotateTarget(ev, s.checksummed)
			if err != nil {
				return Frontier{}, nil, 0, fmt.Errorf("%w: segment %s offset %d: %v", ErrCorruptRelay, seg.Path, off, err)
			}
			file, pos = next.File, 0
			boundary = Frontier{Segment: seg.Seq, Offset: s.Offset(), Pos: Position{FilePos: next}}
			lastType = h.Type
			continue
		}
		if isBoundary {
			boundary = Frontier{Segment: seg.Seq, Offset: s.Offset(), Pos: Position{FilePos: FilePos{File: file, Pos: pos}}}
			lastType = h.Type
		}
	}
	tr.abort()
	if last {
		if err := truncateTail(seg.Path, boundary.Offset); err != nil {
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
