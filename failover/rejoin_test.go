package failover

import (
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
)

func mustState(t *testing.T, s string) []binlog.GTID {
	t.Helper()
	g, err := ParseGTIDState(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestErrantRanges(t *testing.T) {
	tests := []struct {
		name       string
		old, new   string
		want       string
		wantRanges int
	}{
		{name: "same history", old: "0-1-100", new: "0-1-100,0-2-130", want: ""},
		{name: "old master behind", old: "0-1-90", new: "0-1-100,0-2-130", want: ""},
		{name: "tail of two", old: "0-1-102", new: "0-1-100,0-2-130", want: "0-1-101..0-1-102 (2)", wantRanges: 1},
		{name: "one transaction", old: "0-1-101", new: "0-1-100", want: "0-1-101 (1)", wantRanges: 1},
		{name: "another domain", old: "0-1-100,5-1-3", new: "0-1-100", want: "5-1-1..5-1-3 (3)", wantRanges: 1},
		{name: "another server", old: "0-1-100,0-7-4", new: "0-1-100", want: "0-7-1..0-7-4 (4)", wantRanges: 1},
		{name: "empty old", old: "", new: "0-1-1", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ErrantRanges(mustState(t, tt.old), mustState(t, tt.new))
			if len(r) != tt.wantRanges || DescribeErrant(r) != tt.want {
				t.Fatalf("got %d ranges %q, want %d %q", len(r), DescribeErrant(r), tt.wantRanges, tt.want)
			}
		})
	}
}

func TestTailVerdict(t *testing.T) {
	role := checkpoint.Role{Role: checkpoint.RoleMaster, Epoch: 1, OldMaster: binlog.Identity{ServerID: 1},
		Target: "mysql-bin.000001:9000 (gtid 0-1-100)"}
	atEnd := TailFacts{LastFile: "mysql-bin.000002", TailFile: "mysql-bin.000001", TailAtEnd: true}
	forced := role
	forced.Forced = true
	tests := []struct {
		name    string
		role    checkpoint.Role
		old     string
		facts   TailFacts
		wantOK  bool
		wantWhy string
	}{
		{name: "the tail", role: role, old: "0-1-102", facts: atEnd, wantOK: true},
		{name: "forced promotion", role: forced, old: "0-1-102", facts: atEnd, wantWhy: "forced"},
		{name: "another server's writes", role: role, old: "0-1-100,0-9-1", facts: atEnd, wantWhy: "server_id 9"},
		{name: "a gap after the frontier", role: role, old: "0-1-102", facts: atEnd, wantWhy: "does not follow"},
		{name: "written after a restart", role: role, old: "0-1-102", facts: TailFacts{LastFile: "mysql-bin.000002", TailFile: "mysql-bin.000002", TailAtEnd: true}, wantWhy: "writing now"},
		{name: "followed by a rotate", role: role, old: "0-1-102", facts: TailFacts{LastFile: "mysql-bin.000002", TailFile: "mysql-bin.000001"}, wantWhy: "not all at the end"},
		{name: "another domain", role: role, old: "0-1-100,3-1-1", facts: atEnd, wantWhy: "domain 3"},
		{name: "no recorded frontier", role: checkpoint.Role{OldMaster: binlog.Identity{ServerID: 1}}, old: "0-1-102", facts: atEnd, wantWhy: "no GTID safe frontier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newState := "0-1-100,0-2-140"
			if tt.name == "a gap after the frontier" {
				newState = "0-1-99"
			}
			r := ErrantRanges(mustState(t, tt.old), mustState(t, newState))
			ok, why := TailVerdict(tt.role, r, tt.facts)
			if ok != tt.wantOK || !strings.Contains(why, tt.wantWhy) {
				t.Fatalf("TailVerdict = %v %q, want %v %q", ok, why, tt.wantOK, tt.wantWhy)
			}
		})
	}
}

func TestParseBinlogInfo(t *testing.T) {
	for _, tt := range []struct {
		info string
		want string
		ok   bool
	}{
		{"BEGIN GTID 0-1-5", "0-1-5", true},
		{"GTID 2-3-7", "2-3-7", true},
		{"BEGIN GTID 0-1-5 cid=12", "0-1-5", true},
		{"COMMIT /* xid=3 */", "", false},
	} {
		g, ok := ParseGTIDInfo(tt.info)
		if ok != tt.ok || (ok && g.String() != tt.want) {
			t.Errorf("ParseGTIDInfo(%q) = %v %v, want %s %v", tt.info, g, ok, tt.want, tt.ok)
		}
	}
	l, err := ParseGTIDList("[0-1-3,1-1-7]")
	if err != nil || len(l) != 2 || l[1].String() != "1-1-7" {
		t.Fatalf("ParseGTIDList = %v %v", l, err)
	}
	if l, err := ParseGTIDList("[]"); err != nil || len(l) != 0 {
		t.Fatalf("ParseGTIDList([]) = %v %v", l, err)
	}
}

func TestReplicationPrivileged(t *testing.T) {
	for _, tt := range []struct {
		grants []string
		want   bool
	}{
		{[]string{"GRANT REPLICATION SLAVE ON *.* TO `repl`@`%` IDENTIFIED BY PASSWORD '*AB'"}, true},
		{[]string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"}, true},
		{[]string{"GRANT USAGE ON *.* TO `u`@`%`", "GRANT ALL PRIVILEGES ON `db`.* TO `u`@`%`"}, false},
		{[]string{"GRANT SELECT, REPLICATION CLIENT ON *.* TO `u`@`%`"}, false},
	} {
		if got := ReplicationPrivileged(tt.grants); got != tt.want {
			t.Errorf("ReplicationPrivileged(%q) = %v, want %v", tt.grants, got, tt.want)
		}
	}
}

func TestSQLStringAndScrub(t *testing.T) {
	if got := SQLString(`a'b\c`); got != `'a\'b\\c'` {
		t.Fatalf("SQLString = %s", got)
	}
	if got := Scrub("Access denied (pw s3cret)", "s3cret"); strings.Contains(got, "s3cret") {
		t.Fatalf("Scrub left the secret: %s", got)
	}
}

func TestOwnHole(t *testing.T) {
	for _, tt := range []struct {
		name, newState, oldState string
		want                     string
	}{
		{name: "truncated tail", newState: "0-1-135,0-2-140", oldState: "0-1-120", want: "0-1-121..0-1-135 (15)"},
		{name: "nothing lost", newState: "0-1-120,0-2-140", oldState: "0-1-120", want: ""},
		{name: "only other servers behind", newState: "0-1-120,0-2-140,0-3-9", oldState: "0-1-120", want: ""},
		{name: "two domains", newState: "0-1-10,5-1-7", oldState: "0-1-8,5-1-7", want: "0-1-9..0-1-10 (2)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := OwnHole(mustState(t, tt.newState), mustState(t, tt.oldState), 1)
			if DescribeErrant(got) != tt.want {
				t.Fatalf("OwnHole = %q, want %q", DescribeErrant(got), tt.want)
			}
			filled := HoleFilled(mustState(t, tt.oldState), got)
			if filled != (len(got) == 0) {
				t.Fatalf("HoleFilled before = %v", filled)
			}
			if len(got) > 0 && !HoleFilled(mustState(t, tt.newState), got) {
				t.Fatal("HoleFilled(the new master's state) = false")
			}
		})
	}
}

func TestHoleUnreachable(t *testing.T) {
	hole := OwnHole(mustState(t, "0-1-135,0-2-140"), mustState(t, "0-1-120"), 1)
	if got := HoleUnreachable(mustState(t, "0-1-120"), hole); len(got) != 0 {
		t.Fatalf("from its own last GTID the hole is reachable, got %v", DescribeErrant(got))
	}
	// An earlier rejoin replicated past the hole: the domain's position
	// is the new master's.
	if got := HoleUnreachable(mustState(t, "0-2-140"), hole); DescribeErrant(got) != "0-1-121..0-1-135 (15)" {
		t.Fatalf("behind the position: got %q", DescribeErrant(got))
	}
}

func TestTempServerIDs(t *testing.T) {
	for _, own := range []uint32{1, 2, 0x48530000, 1<<32 - 1} {
		ids := TempServerIDs(own)
		seen := map[uint32]bool{}
		for _, id := range ids {
			if id == 0 || id == own || seen[id] || !IsTempServerID(id, own) {
				t.Fatalf("TempServerIDs(%d) = %v: want distinct non-zero ids other than %d", own, ids, own)
			}
			seen[id] = true
		}
		if IsTempServerID(own, own) || IsTempServerID(own+1, own) && !seen[own+1] {
			t.Fatalf("IsTempServerID(%d)", own)
		}
		if got, ok := PickTempServerID(own, map[uint32]bool{ids[0]: true, ids[1]: true}); !ok || got != ids[2] {
			t.Fatalf("PickTempServerID skipping two = %d %v, want %d", got, ok, ids[2])
		}
		if _, ok := PickTempServerID(own, seen); ok {
			t.Fatal("PickTempServerID with every candidate used")
		}
	}
	if FormatGTIDs(mustState(t, "0-1-5,1-2-7")) != "0-1-5,1-2-7" {
		t.Fatal("FormatGTIDs")
	}
}
