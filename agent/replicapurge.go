package agent

import (
	"errors"
	"io"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
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

// purgeHorizon in replica mode: before the segment the checkpointed
// received frontier points into, before what the binlog server's replicas
// read, and at least one segment before the first one whose GTIDs are not
// all in the standby's gtid_slave_pos (so the binlog server still holds the
// transaction that gtid_slave_pos ends with, where a restarted standby asks
// to continue).
func (m *replicaMode) purgeHorizon(stored checkpoint.State) (purgeHorizon, bool) {
	a := m.a
	st, ok := m.status()
	if !ok || st.Applied == "" || stored.Received.Segment == 0 {
		return purgeHorizon{}, false
	}
	applied, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err != nil {
		return purgeHorizon{}, false
	}
	segs, err := relay.ListSegments(a.cfg.RelayDir())
	if err != nil || len(segs) < 2 {
		return purgeHorizon{}, false
	}
	m.purgeMu.Lock()
	defer m.purgeMu.Unlock()
	if m.segGTID == nil {
		m.segGTID = map[uint64]binlog.GTIDSet{}
	}
	present := make(map[uint64]bool, len(segs))
	for _, s := range segs {
		present[s.Seq] = true
	}
	for seq := range m.segGTID {
		if !present[seq] { // purged
			delete(m.segGTID, seq)
		}
	}
	keepFrom := stored.Received.Segment
	for _, s := range segs[:len(segs)-1] {
		if s.Seq >= keepFrom {
			break
		}
		set, ok := m.segGTID[s.Seq]
		if !ok {
			if set, err = segmentGTIDs(s.Path); err != nil {
				a.log.Warn("relay purge: segment not readable, kept", "segment", s.Path, "err", err)
				keepFrom = s.Seq
				break
			}
			m.segGTID[s.Seq] = set
		}
		if in, err := applied.Contains(set); err != nil || !in {
			keepFrom = s.Seq
			break
		}
	}
	if keepFrom > 1 {
		keepFrom-- // the segment holding gtid_slave_pos's own last transaction
	}
	if srv := m.server(); srv != nil {
		if need, ok := srv.OldestNeeded(); ok {
			keepFrom = min(keepFrom, need)
		}
	}
	return purgeHorizon{keepFrom: keepFrom, why: "applied on the standby (gtid_slave_pos) and past retention"}, true
}
