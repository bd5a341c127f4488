package relay

import (
	"github.com/hotstandby/hotstandby/binlog"

	"errors"
	"io"
)

// Event is one stored event as Scan delivers it.
type Event struct {
	Segment     Segment
	Offset      int64  // in the segment file
	File        string // the master binlog file it belongs to
	Header      binlog.Header
	Raw         []byte // valid during the callback only
	FDE         []byte // the segment's format description
	Checksummed bool
}

// ErrStopScan ends Scan early without an error.
var ErrStopScan = errors.New("stop scan")

// Scan calls fn for every stored event of the relay log in dir, in
// order. It only reads: the end of the live segment (bytes not yet written,
// or its preallocated zeros) ends the scan quietly; damage anywhere else is
// ErrCorrupt.
func Scan(dir string, fn func(Event) error) error {
	segs, err := ListSegments(dir)
	if err != nil {
		return err
	}
	for i, seg := range segs {
		r, err := OpenSegment(seg.Path)
		if err != nil {
			if i == len(segs)-1 && errors.Is(err, errIncomplete) {
				return nil
			}
			return err
		}
		file := seg.MasterFile
		for {
			off := r.Offset()
			ev, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				r.Close()
				if i == len(segs)-1 {
					return nil // the live or crashed tail
				}
				return errors.Join(ErrCorrupt, err)
			}
			h, _ := binlog.ParseHeader(ev)
			e := Event{Segment: seg, Offset: off, File: file, Header: h, Raw: ev, FDE: r.FDE, Checksummed: r.Checksummed()}
			if err := fn(e); err != nil {
				r.Close()
				if errors.Is(err, ErrStopScan) {
					return nil
				}
				return err
			}
			if h.Type == binlog.RotateEvent {
				if next, err := binlog.RotateTarget(ev, r.Checksummed()); err == nil {
					file = next.File
				}
			}
		}
		r.Close()
	}
	return nil
}
