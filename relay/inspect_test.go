package relay

import (
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

// TestAppliedByGTID: a segment is applied when the applied GTID set holds
// every GTID of it, partly when some, not when none, per domain.
func TestAppliedByGTID(t *testing.T) {
	seg := map[uint32]seqRange{0: {first: 10, last: 20}, 1: {first: 5, last: 5}}
	tests := []struct {
		name    string
		domains map[uint32]seqRange
		set     string
		flavor  binlog.Flavor
		want    string
	}{
		{name: "every GTID", domains: seg, set: "0-1-20,1-2-5", want: "yes"},
		{name: "beyond every GTID", domains: seg, set: "0-1-99,1-2-9", want: "yes"},
		{name: "one domain behind", domains: seg, set: "0-1-20,1-2-4", want: "partly"},
		{name: "middle of a domain", domains: seg, set: "0-1-15,1-2-5", want: "partly"},
		{name: "first GTID only", domains: seg, set: "0-1-10", want: "partly"},
		{name: "before the segment", domains: seg, set: "0-1-9,1-2-4", want: "no"},
		{name: "another domain only", domains: seg, set: "7-1-100", want: "no"},
		{name: "empty set", domains: seg, set: "", want: "no"},
		{name: "segment without transactions", domains: nil, set: "0-1-1", want: "yes"},
		{name: "MySQL set", domains: seg, set: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", flavor: binlog.MySQL, want: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.flavor
			if f == "" {
				f = binlog.MariaDB
			}
			set, err := binlog.ParseGTIDSet(f, tt.set)
			if err != nil {
				t.Fatal(err)
			}
			if got := appliedByGTID(tt.domains, set); got != tt.want {
				t.Errorf("appliedByGTID(%v, %q) = %q, want %q", tt.domains, tt.set, got, tt.want)
			}
		})
	}
}
