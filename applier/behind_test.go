package applier

import (
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// TestStatusBehind: the applier's lag counts the relay log's transactions
// the standby has not applied, never the master's history from before the
// relay log's start (start = "current": the standby's position has none of
// it, and the relay log never will).
func TestStatusBehind(t *testing.T) {
	set := func(s string) binlog.GTIDSet {
		t.Helper()
		g, err := binlog.ParseGTIDSet(binlog.MariaDB, s)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	for _, tc := range []struct {
		name                        string
		standby, caughtUp, received string
		want                        int64
	}{
		{"started at current on an idle master, caught up", "", "0-1-4", "0-1-4", 0},
		{"one commit received since, not applied", "", "0-1-4", "0-1-5", 1},
		{"not caught up yet: the standby's position only", "", "", "0-1-4", 4},
		{"the commit applied", "0-1-5", "0-1-4", "0-1-5", 0},
		{"a standby behind the relay log it caught up with earlier", "0-1-2", "0-1-4", "0-1-9", 5},
		{"two domains, one with history only", "1-1-7", "0-1-4,1-1-7", "0-1-4,1-1-10", 3},
		{"the standby ahead in a domain (errant)", "0-2-9", "0-1-4", "0-1-6", 0},
	} {
		st := Status{Applied: binlog.Position{GTID: set(tc.standby)}, CaughtUp: relay.Frontier{Pos: binlog.Position{GTID: set(tc.caughtUp)}}}
		if got, ok := st.Behind(set(tc.received)); !ok || got != tc.want {
			t.Errorf("%s: standby %q, caught up with %q, received %q: %d behind (%v), want %d", tc.name, tc.standby, tc.caughtUp, tc.received, got, ok, tc.want)
		}
	}
}
