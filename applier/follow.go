package applier

import (
	"fmt"
	"sort"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// lastPerDomain returns the standby's last GTID in each domain: of its
// gtid_binlog_state entries (one per domain and server_id), the one with the
// highest sequence number, which under gtid_strict_mode is the domain's
// entry in gtid_binlog_pos.
func (st gtidState) lastPerDomain() map[uint32]binlog.GTID {
	last := map[uint32]binlog.GTID{}
	for k, seq := range st {
		if have, ok := last[k[0]]; !ok || seq > have.Seq {
			last[k[0]] = binlog.GTID{Domain: k[0], Server: k[1], Seq: seq}
		}
	}
	return last
}

// checkCheckpoint refuses a standby that does not cover the applied
// checkpoint, domain by domain: the standby lost transactions the agent
// applied (it was restored from an older backup, rebuilt, or lost commits
// in a crash with non-durable settings). Applying on from there would either
// skip what it lost or, reading from the checkpoint, never bring it back.
func checkCheckpoint(standby string, have map[uint32]binlog.GTID, checkpoint binlog.GTIDSet) error {
	if checkpoint.Flavor() != binlog.MariaDB || checkpoint.IsZero() {
		return nil
	}
	want, err := parseGTIDState(checkpoint.String())
	if err != nil {
		return nil // a set we wrote ourselves; cannot happen
	}
	var lines []string
	for _, w := range sortedDomains(want.lastPerDomain()) {
		h, ok := have[w.Domain]
		if ok && h.Seq >= w.Seq {
			continue
		}
		pos := h.String()
		if !ok {
			pos = fmt.Sprintf("has no GTID in domain %d and", w.Domain)
		}
		lines = append(lines, fmt.Sprintf("standby %s: gtid_binlog_pos %s is behind the agent's applied checkpoint %s (domain %d): "+
			"the standby lost transactions the agent applied (restored from an older backup, or commits lost in a crash or power loss); "+
			"rebuild it from a backup or clone at or after %s", standby, pos, w, w.Domain, w))
	}
	if len(lines) > 0 {
		return &StopError{Reason: ErrStandbyBehind, Lines: lines}
	}
	return nil
}

func sortedDomains(m map[uint32]binlog.GTID) []binlog.GTID {
	out := make([]binlog.GTID, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// follower checks, for one session, that the first transaction the applier
// applies in each domain follows the standby's last transaction there.
type follower struct {
	standby  map[uint32]binlog.GTID // the standby's last GTID per domain at session start
	seen     map[uint32]binlog.GTID // the last GTID read from the relay log in this session, per domain
	followed map[uint32]bool        // domains whose first applied transaction passed
}

func newFollower(standby map[uint32]binlog.GTID) follower {
	return follower{standby: standby, seen: map[uint32]binlog.GTID{}, followed: map[uint32]bool{}}
}

// followCheck is called with every transaction's GTID read from the relay
// log, at its GTID event; skip says the standby already has it. The first
// transaction to apply in a domain must be the standby's last there plus
// one, or the relay log must show the standby's last transaction right
// before it (the master's own sequence jumped: gtid_seq_no set forward). A
// domain the standby has no GTID in has nothing to follow. A sequence
// number at or below the domain's last (another server_id's GTID) is left
// to gtid_strict_mode, which makes the server refuse it.
func (s *session) followCheck(g binlog.GTID, skip bool, at binlog.FilePos) error {
	f := &s.follow
	defer func() { f.seen[g.Domain] = g }()
	if skip || f.followed[g.Domain] {
		return nil
	}
	last, ok := f.standby[g.Domain]
	switch {
	case !ok:
		s.a.log.Info("the standby has no GTID in this domain yet: nothing to follow, applying the domain from the relay log's first transaction of it",
			"domain", g.Domain, "first", g.String(), "at", at.String())
	case g.Seq > last.Seq+1:
		prev, known := f.seen[g.Domain]
		where := "read in this session"
		if !known {
			prev, known = s.lastBeforeOrigin(g.Domain)
			where = "in the relay segment before the session's start point"
		}
		if !known || prev != last {
			return gapError(s.a.standbyAddr(), g, last, at)
		}
		s.a.log.Info("the master's sequence jumped in this domain: the relay log shows the standby's last transaction right before",
			"domain", g.Domain, "standby_at", last.String(), "next", g.String(), "seen", where)
	}
	f.followed[g.Domain] = true
	return nil
}

func gapError(standby string, next, last binlog.GTID, at binlog.FilePos) error {
	missing := fmt.Sprintf("%d transactions (seq %d to %d) are", next.Seq-last.Seq-1, last.Seq+1, next.Seq-1)
	if next.Seq-last.Seq-1 == 1 {
		missing = fmt.Sprintf("1 transaction (seq %d) is", last.Seq+1)
	}
	return &StopError{Reason: ErrRelayGap, Lines: []string{fmt.Sprintf(
		"standby %s: the next transaction in the relay log for domain %d is %s (at %s) but the standby is at %s: "+
			"%s missing from the relay log; apply them to the standby from the master's binary log, or rebuild it; "+
			"only if the master skipped those numbers on purpose (gtid_seq_no set forward), mark it on the standby: "+
			"SET gtid_domain_id=%d, server_id=%d; SET gtid_seq_no=%d; DROP TABLE IF EXISTS mysql.hotstandby_no_such_table",
		standby, next.Domain, next, at, last, missing, next.Domain, next.Server, next.Seq-1)}}
}

// lastBeforeOrigin returns the last GTID of domain in the relay segment the
// session started in, before the point it started reading: the transaction
// right before the session's first one of that domain, if the segment holds
// it.
func (s *session) lastBeforeOrigin(domain uint32) (binlog.GTID, bool) {
	if s.cur == nil {
		return binlog.GTID{}, false
	}
	originPath, originOff := s.cur.Origin()
	if originPath == "" {
		return binlog.GTID{}, false
	}
	r, err := relay.OpenSegment(originPath)
	if err != nil {
		return binlog.GTID{}, false
	}
	defer r.Close()
	r.SetLimit(originOff)
	if err := r.SeekTo(r.Offset()); err != nil { // drop the read-ahead past the limit
		return binlog.GTID{}, false
	}
	var last binlog.GTID
	found := false
	for {
		ev, err := r.Next()
		if err != nil {
			return last, found // io.EOF at the origin
		}
		h, _ := binlog.ParseHeader(ev)
		if h.Type != binlog.MariaGTIDEvent {
			continue
		}
		if g, _, _, err := binlog.MariaGTID(ev, h); err == nil && g.Domain == domain {
			last, found = g, true
		}
	}
}
