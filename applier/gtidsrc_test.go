package applier

import (
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

// TestGTIDStatementSetsOnlyWhatChanged: the session sets gtid_domain_id and
// server_id only when they differ from what it set last, and sets all three
// again after it forgot them (a replayed statement, an error).
func TestGTIDStatementSetsOnlyWhatChanged(t *testing.T) {
	s := &session{}
	for i, c := range []struct {
		g      binlog.GTID
		forget bool
		want   string
	}{
		{binlog.GTID{Domain: 0, Server: 1, Seq: 5}, false, "SET SESSION gtid_domain_id = 0, SESSION server_id = 1; SET SESSION gtid_seq_no = 5"},
		{binlog.GTID{Domain: 0, Server: 1, Seq: 6}, false, "SET SESSION gtid_seq_no = 6"},
		{binlog.GTID{Domain: 0, Server: 7, Seq: 7}, false, "SET SESSION gtid_domain_id = 0, SESSION server_id = 7; SET SESSION gtid_seq_no = 7"},
		{binlog.GTID{Domain: 2, Server: 7, Seq: 1}, false, "SET SESSION gtid_domain_id = 2, SESSION server_id = 7; SET SESSION gtid_seq_no = 1"},
		{binlog.GTID{Domain: 2, Server: 7, Seq: 2}, false, "SET SESSION gtid_seq_no = 2"},
		{binlog.GTID{Domain: 2, Server: 7, Seq: 3}, true, "SET SESSION gtid_domain_id = 2, SESSION server_id = 7; SET SESSION gtid_seq_no = 3"},
	} {
		if c.forget {
			s.forgetGTIDSource()
		}
		if got := s.gtidStatement(c.g); got != c.want {
			t.Errorf("%d: GTID %s: %q; want %q", i, c.g, got, c.want)
		}
	}
}
