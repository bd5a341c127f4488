package binlogserver

import (
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// fileModeStart returns where a file-mode dump's cursor begins: at the event
// that starts at want when the relay says so without a scan, else at the
// first event of the latest segment of want's master file that begins at
// or before want, else the zero frontier (the oldest segment: the scan
// then finds the start or the reason to refuse, as before).
//
// Skipping the segments before the returned one changes nothing that the
// dump decides: they hold only events before want. Within a segment the
// master's events are stored back to back, so the event at want is
// normally at the segment's first event plus the distance in the master
// file; that guess is used only when the event found there is whole,
// checksummed, starts at want and ends at or before durable.
func fileModeStart(dir string, want binlog.FilePos, durable relay.Frontier) relay.Frontier {
	segs, err := relay.ListSegments(dir)
	if err != nil {
		return relay.Frontier{}
	}
	for i := len(segs) - 1; i >= 0; i-- {
		seg := segs[i]
		if seg.MasterFile != want.File || seg.Seq > durable.Segment {
			continue
		}
		if want.Pos <= 4 {
			// The file's first event: in its first segment.
			if i > 0 && segs[i-1].MasterFile == want.File {
				continue
			}
			return relay.Frontier{Segment: seg.Seq}
		}
		f, ok := seekInSegment(seg, want.Pos, durable)
		if ok {
			return f
		}
	}
	return relay.Frontier{}
}

// seekInSegment places want in seg: false when seg begins after it (or
// cannot be read); else the frontier of the event at want, or of seg's
// first event when that event cannot be confirmed.
func seekInSegment(seg relay.Segment, want uint64, durable relay.Frontier) (relay.Frontier, bool) {
	r, err := relay.OpenSegment(seg.Path)
	if err != nil {
		return relay.Frontier{}, false
	}
	defer r.Close()
	limit := int64(-1) // a closed segment: whole
	if seg.Seq == durable.Segment {
		limit = durable.Offset
	}
	off0 := r.Offset()
	if limit >= 0 && off0 >= limit {
		return relay.Frontier{}, false // nothing durable in it yet
	}
	if limit >= 0 {
		r.SetLimit(limit)
	}
	ev, err := r.Next()
	if err != nil {
		return relay.Frontier{}, false
	}
	h, _ := binlog.ParseHeader(ev)
	if h.LogPos == 0 || h.Start() > want {
		return relay.Frontier{}, false
	}
	start := relay.Frontier{Segment: seg.Seq, Offset: off0}
	if h.Start() == want {
		return start, true
	}
	if !r.Checksummed() {
		return start, true
	}
	at := off0 + int64(want-h.Start())
	if limit >= 0 && at >= limit {
		if at == limit && durable.Pos.FilePos.Pos == want && durable.Pos.FilePos.File == seg.MasterFile {
			return relay.Frontier{Segment: seg.Seq, Offset: at}, true // the durable end
		}
		return start, true
	}
	if err := r.SeekTo(at); err != nil {
		return start, true
	}
	ev, err = r.Next()
	if err != nil {
		return start, true
	}
	if h, _ = binlog.ParseHeader(ev); h.LogPos == 0 || h.Start() != want {
		return start, true
	}
	return relay.Frontier{Segment: seg.Seq, Offset: at}, true
}
