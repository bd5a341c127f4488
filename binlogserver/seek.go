package binlogserver

import (
	"encoding/binary"

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

// gtidModeStart returns where a GTID dump's cursor may begin: the newest
// segment that opens with its master file's own Gtid_list event (the
// master's GTID state before the file) when the replica's state covers that
// list, so that every group before the segment is one the replica has; else
// the zero frontier (the oldest segment). exact names the domains whose
// last GTID before the segment is the replica's own, as if the scan had met
// it.
//
// A domain in the list and not in the replica's state, or a GTID there
// with a higher sequence number than the replica's, or the replica's
// number with another server id (a divergence the scan must see and
// refuse), makes the segment unfit: an older one is tried.
func gtidModeStart(dir string, state map[uint32]binlog.GTID, durable relay.Frontier) (start relay.Frontier, exact map[uint32]bool) {
	segs, err := relay.ListSegments(dir)
	if err != nil {
		return relay.Frontier{}, nil
	}
	for i := len(segs) - 1; i > 0; i-- {
		seg := segs[i]
		if seg.Seq > durable.Segment {
			continue
		}
		list, ok := segmentGTIDList(seg, durable)
		if !ok {
			continue
		}
		exact, fits := map[uint32]bool{}, true
		for _, g := range list {
			w, has := state[g.Domain]
			switch {
			case !has || w.Seq < g.Seq || (w.Seq == g.Seq && w.Server != g.Server):
				fits = false
			case w == g:
				exact[g.Domain] = true
			}
		}
		if fits {
			return relay.Frontier{Segment: seg.Seq}, exact
		}
	}
	return relay.Frontier{}, nil
}

// segmentGTIDList returns the GTIDs of the master's Gtid_list event that
// opens seg (false when seg opens with anything else, or it is not
// durable yet).
func segmentGTIDList(seg relay.Segment, durable relay.Frontier) ([]binlog.GTID, bool) {
	r, err := relay.OpenSegment(seg.Path)
	if err != nil {
		return nil, false
	}
	defer r.Close()
	if seg.Seq == durable.Segment {
		if r.Offset() >= durable.Offset {
			return nil, false
		}
		r.SetLimit(durable.Offset)
	}
	ev, err := r.Next()
	if err != nil {
		return nil, false
	}
	h, _ := binlog.ParseHeader(ev)
	if h.Type != binlog.MariaGTIDList || h.LogPos == 0 || h.Flags&binlog.FlagArtificial != 0 {
		return nil, false
	}
	return parseGTIDList(ev, r.Checksummed())
}

// parseGTIDList decodes a MariaDB Gtid_list event: a count (its low 28
// bits; the high 4 are flags), then per GTID domain u32, server_id u32,
// seq_no u64.
func parseGTIDList(ev []byte, checksummed bool) ([]binlog.GTID, bool) {
	body := ev[binlog.HeaderLen:]
	if checksummed {
		if len(body) < 4 {
			return nil, false
		}
		body = body[:len(body)-4]
	}
	if len(body) < 4 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint32(body) & 0x0fffffff)
	body = body[4:]
	if len(body) != n*16 {
		return nil, false
	}
	out := make([]binlog.GTID, 0, n)
	for i := range n {
		b := body[i*16:]
		out = append(out, binlog.GTID{Domain: binary.LittleEndian.Uint32(b), Server: binary.LittleEndian.Uint32(b[4:]), Seq: binary.LittleEndian.Uint64(b[8:])})
	}
	return out, true
}
