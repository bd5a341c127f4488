package cluster

import (
	"fmt"
	"slices"

	"github.com/hotstandby/hotstandby/binlog"
)

// Report is one standby member's fsynced frontier, as it last reported it:
// every event of the master's up to Durable is fsynced in its relay log.
// For a member that replicates from the acknowledger's binlog server it is
// the position of its last semi-sync ACK there (a master file:pos: the relay
// log keeps the master's positions); for the acknowledger itself, its own
// relay log's durable frontier (what semisync.Acker.SetDurable holds).
type Report struct {
	Member  string
	Durable binlog.FilePos // zero: nothing fsynced yet
}

// AckFrontier is the position the acknowledger self may ACK to the master:
// the quorum-th highest durable frontier among the standby members'
// reports (self's included), and never past self's own. Reports from a
// member not in standbys (a DR member, a stranger) are ignored; a member
// without a report, or with a zero one, counts as having nothing. The zero
// FilePos means nothing may be acknowledged yet: fewer than quorum members
// have anything.
//
// Every event up to the result is then fsynced on at least quorum standby
// members, self included. Frontiers that cannot be ordered (files of
// another base name), two reports from one member, self not a standby, or a
// quorum out of 1..len(standbys) are errors: the caller must not ACK.
func AckFrontier(self Report, peers []Report, standbys []string, quorum int) (binlog.FilePos, error) {
	if quorum < 1 || quorum > len(standbys) {
		return binlog.FilePos{}, fmt.Errorf("cluster: ack quorum %d out of 1..%d standbys", quorum, len(standbys))
	}
	if !slices.Contains(standbys, self.Member) {
		return binlog.FilePos{}, fmt.Errorf("cluster: acknowledger %q is not a standby member %q", self.Member, standbys)
	}
	seen := map[string]bool{}
	var have []binlog.FilePos
	for _, r := range append([]Report{self}, peers...) {
		if !slices.Contains(standbys, r.Member) {
			continue
		}
		if seen[r.Member] {
			return binlog.FilePos{}, fmt.Errorf("cluster: two frontier reports from member %q", r.Member)
		}
		seen[r.Member] = true
		if !r.Durable.IsZero() {
			have = append(have, r.Durable)
		}
	}
	if len(have) < quorum {
		return binlog.FilePos{}, nil
	}
	var sortErr error
	slices.SortFunc(have, func(a, b binlog.FilePos) int {
		c, err := b.Compare(a) // highest first
		if err != nil && sortErr == nil {
			sortErr = err
		}
		return c
	})
	if sortErr != nil {
		return binlog.FilePos{}, fmt.Errorf("cluster: frontiers cannot be ordered: %w", sortErr)
	}
	q := have[quorum-1]
	if self.Durable.IsZero() {
		return binlog.FilePos{}, nil
	}
	if c, err := self.Durable.Compare(q); err != nil {
		return binlog.FilePos{}, fmt.Errorf("cluster: frontiers cannot be ordered: %w", err)
	} else if c < 0 {
		return self.Durable, nil
	}
	return q, nil
}
