package cluster

import (
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

func fp(file string, pos uint64) binlog.FilePos { return binlog.FilePos{File: file, Pos: pos} }

func TestAckFrontier(t *testing.T) {
	three := []string{"a", "b", "c"}
	five := []string{"a", "b", "c", "d", "e"}
	tests := []struct {
		name     string
		self     Report
		peers    []Report
		standbys []string
		quorum   int
		want     binlog.FilePos
		wantErr  bool
	}{
		{name: "majority of 3: the second highest", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000002", 900)}, peers: []Report{{"b", fp("bin.000002", 500)}, {"c", fp("bin.000001", 4000)}},
			want: fp("bin.000002", 500)},
		{name: "file numbers, not strings: 000010 is after 000009", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000010", 300)}, peers: []Report{{"b", fp("bin.000009", 9000)}, {"c", fp("bin.000010", 200)}},
			want: fp("bin.000010", 200)},
		{name: "one peer silent: the other and self make the quorum", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"b", fp("bin.000001", 700)}},
			want: fp("bin.000001", 700)},
		{name: "both peers silent: nothing may be ACKed", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000001", 900)}, want: binlog.FilePos{}},
		{name: "a zero report counts as nothing", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"b", binlog.FilePos{}}}, want: binlog.FilePos{}},
		{name: "never past self, even when peers claim more", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000001", 100)}, peers: []Report{{"b", fp("bin.000001", 700)}, {"c", fp("bin.000001", 800)}},
			want: fp("bin.000001", 100)},
		{name: "self has nothing: nothing", standbys: three, quorum: 2,
			self: Report{"a", binlog.FilePos{}}, peers: []Report{{"b", fp("bin.000001", 700)}, {"c", fp("bin.000001", 800)}},
			want: binlog.FilePos{}},
		{name: "a DR member's or stranger's report does not count", standbys: three, quorum: 2,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"dr", fp("bin.000001", 900)}, {"x", fp("bin.000001", 900)}},
			want: binlog.FilePos{}},
		{name: "quorum 3 of 3: the lowest", standbys: three, quorum: 3,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"b", fp("bin.000001", 500)}, {"c", fp("bin.000001", 700)}},
			want: fp("bin.000001", 500)},
		{name: "3 of 5", standbys: five, quorum: 3,
			self: Report{"c", fp("bin.000001", 50)}, peers: []Report{{"a", fp("bin.000001", 10)}, {"b", fp("bin.000001", 40)}, {"d", fp("bin.000001", 30)}, {"e", fp("bin.000001", 20)}},
			want: fp("bin.000001", 30)},
		{name: "two reports from one member", standbys: three, quorum: 2, wantErr: true,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"b", fp("bin.000001", 1)}, {"b", fp("bin.000001", 900)}}},
		{name: "a member reporting as self is a duplicate", standbys: three, quorum: 2, wantErr: true,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"a", fp("bin.000001", 900)}}},
		{name: "frontiers of another base name", standbys: three, quorum: 2, wantErr: true,
			self: Report{"a", fp("bin.000001", 900)}, peers: []Report{{"b", fp("other.000001", 900)}, {"c", fp("bin.000001", 800)}}},
		{name: "self not a standby", standbys: three, quorum: 2, wantErr: true,
			self: Report{"dr", fp("bin.000001", 900)}},
		{name: "quorum 0", standbys: three, quorum: 0, wantErr: true, self: Report{"a", fp("bin.000001", 1)}},
		{name: "quorum above the members", standbys: three, quorum: 4, wantErr: true, self: Report{"a", fp("bin.000001", 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AckFrontier(tc.self, tc.peers, tc.standbys, tc.quorum)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestAckFrontierHeldByQuorum checks the property the rule exists for, over
// many frontier combinations: every member counted at or past the result
// numbers at least quorum, self among them.
func TestAckFrontierHeldByQuorum(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e"}
	for quorum := 3; quorum <= 5; quorum++ {
		for combo := range 6 * 6 * 6 * 6 * 6 {
			var rs []Report
			c := combo
			for _, n := range names {
				v := uint64(c % 6) // 0: no report
				c /= 6
				if v > 0 {
					rs = append(rs, Report{n, fp("bin.000001", v)})
				} else {
					rs = append(rs, Report{Member: n})
				}
			}
			got, err := AckFrontier(rs[0], rs[1:], names, quorum)
			if err != nil {
				t.Fatal(err)
			}
			if got.IsZero() {
				continue
			}
			holders := 0
			for _, r := range rs {
				if !r.Durable.IsZero() && r.Durable.Pos >= got.Pos {
					holders++
				}
			}
			if holders < quorum || rs[0].Durable.Pos < got.Pos {
				t.Fatalf("quorum %d, reports %v: ACK %v held by %d", quorum, rs, got, holders)
			}
			// And it is the highest such position: nothing later is held by
			// quorum members with self among them.
			for _, r := range rs {
				if r.Durable.Pos <= got.Pos || r.Durable.Pos > rs[0].Durable.Pos {
					continue
				}
				n := 0
				for _, x := range rs {
					if x.Durable.Pos >= r.Durable.Pos {
						n++
					}
				}
				if n >= quorum {
					t.Fatalf("quorum %d, reports %v: ACK %v, but %v is held by %d", quorum, rs, got, r.Durable, n)
				}
			}
		}
	}
}
