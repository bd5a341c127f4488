package binlog

import (
	"errors"
	"io"
)

// RelayEvent is one stored event as ScanRelay delivers it.
type RelayEvent struct {
	Segment     Segment
	Offset      int64  // in the segment file
	File        string // the master binlog file it belongs to
	Header      Header
	Raw         []byte // valid during the callback only
	FDE         []byte // the segment's format description
	Checksummed bool
}

// ErrStopScan ends ScanRelay early without an error.
var ErrStopScan = errors.New("stop scan")

// ScanRelay calls fn for every stored event of the relay log in dir, in
// order. It only reads: the end of the live segment (bytes not yet written,
// or its preallocated zeros) ends the scan quietly; damage anywhere else is
// ErrCorruptRelay.
func ScanRelay(dir string, fn func(RelayEvent) error) error {
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
				return errors.Join(ErrCorruptRelay, err)
			}
			h, _ := ParseHeader(ev)
			e := RelayEvent{Segment: seg, Offset: off, File: file, Header: h, Raw: ev, FDE: r.FDE, Checksummed: r.Checksummed()}
			if err := fn(e); err != nil {
				r.Close()
				if errors.Is(err, ErrStopScan) {
					return nil
				}
				return err
			}
			if h.Type == RotateEvent {
				if next, err := RotateTarget(ev, r.Checksummed()); err == nil {
					file = next.File
				}
			}
		}
		r.Close()
	}
	return nil
}
