package agent

import (
	"errors"
	"io"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// segmentGTIDs returns the last GTID of each domain in a closed relay
// segment (GTIDs grow within a domain, so the last one covers the rest).
func segmentGTIDs(path string) (binlog.GTIDSet, error) {
	set := binlog.NewGTIDSet(binlog.MariaDB)
	r, err := relay.OpenSegment(path)
	if err != nil {
		return set, err
	}
	defer r.Close()
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return set, nil
		}
		if err != nil {
			return set, err
		}
		h, err := binlog.ParseHeader(ev)
		if err != nil {
			return set, err
		}
		if h.Type == binlog.MariaGTIDEvent {
			g, _, _, err := binlog.MariaGTID(ev, h)
			if err != nil {
				return set, err
			}
			set = set.AddMariaDB(g)
		}
	}
}

// purge deletes relay segments the standby no longer needs in replica mode:
// closed, past retention, before the segment the checkpointed received
// frontier points into, before what a downstream replica reads, and at least
// one segment before the first one whose GTIDs are not all in the standby's
// gtid_slave_pos (so the binlog server still holds the transaction that
// gtid_slave_pos ends with, where a restarted standby asks to continue).
// cache keeps the GTIDs of closed segments, which never change.
func (m *replicaMode) purge(now time.Time, cache map[uint64]binlog.GTIDSet) {
	a := m.a
	st, ok := m.status()
	if !ok || st.Applied == "" {
		return
	}
	applied, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err != nil {
		return
	}
	stored, err := a.store.Load()
	if err != nil || stored.Received.Segment == 0 {
		return
	}
	segs, err := relay.ListSegments(a.cfg.RelayDir())
	if err != nil || len(segs) < 2 {
		return
	}
	keepFrom := stored.Received.Segment
	for _, s := range segs[:len(segs)-1] {
		if s.Seq >= keepFrom {
			break
		}
		set, ok := cache[s.Seq]
		if !ok {
			if set, err = segmentGTIDs(s.Path); err != nil {
				a.log.Warn("relay purge: segment not readable, kept", "segment", s.Path, "err", err)
				keepFrom = s.Seq
				break
			}
			cache[s.Seq] = set
		}
		if in, err := applied.Contains(set); err != nil || !in {
			keepFrom = s.Seq
			break
		}
	}
	if keepFrom > 1 {
		keepFrom-- // the segment holding gtid_slave_pos's own last transaction
	}
	if need, ok := a.serveKeepFrom(); ok {
		keepFrom = min(keepFrom, need)
	}
	if srv := m.server(); srv != nil {
		if need, ok := srv.OldestNeeded(); ok {
			keepFrom = min(keepFrom, need)
		}
	}
	purged, err := relay.Purge(a.cfg.RelayDir(), keepFrom, now.Add(-a.cfg.Relay.Retention.Duration))
	for _, s := range purged {
		delete(cache, s.Seq)
		a.log.Info("relay segment purged: applied on the standby (gtid_slave_pos) and past retention", "segment", s.Path, "bytes", s.Size)
	}
	if err != nil {
		a.log.Error("relay purge", "err", err)
	}
}
