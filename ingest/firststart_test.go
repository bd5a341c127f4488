package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

func TestPlanStart(t *testing.T) {
	set := func(s string) binlog.GTIDSet {
		g, err := binlog.ParseGTIDSet(binlog.MariaDB, s)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	master := masterHistory{state: parseGTIDList("0-1-100")}
	twoServers := masterHistory{state: parseGTIDList("0-2-40,0-1-100")}
	replicaOf := func(slave, binlogState string) StandbyGTIDs {
		return StandbyGTIDs{Addr: "db2:3306", ServerID: 2, ContinuesFrom: SlavePos, SlavePos: set(slave), BinlogState: parseGTIDList(binlogState)}
	}
	direct := func(sb StandbyGTIDs) StandbyGTIDs { sb.ContinuesFrom = BinlogPos; return sb }
	current := binlog.Start{Kind: binlog.StartCurrent}
	tests := []struct {
		name    string
		start   binlog.Start
		sb      StandbyGTIDs
		m       masterHistory
		want    startPlan
		wantErr string // in the refusal, which wraps ErrStandbyCannotContinue
	}{
		{name: "empty standby: the configured start", start: current, sb: replicaOf("", ""), m: master, want: startPlan{empty: true}},
		{name: "the standby's own writes only: empty", start: current, sb: replicaOf("", "0-2-3"), m: master, want: startPlan{empty: true}},
		{name: "another domain only: empty", start: current, sb: replicaOf("7-5-9", "7-5-9"), m: master, want: startPlan{empty: true}},
		{name: "native replica, replica mode: adopted at gtid_slave_pos", start: current, sb: replicaOf("0-1-90", "0-1-90"), m: master,
			want: startPlan{adopt: true, at: set("0-1-90")}},
		{name: "native replica, direct mode: adopted at gtid_binlog_pos", start: current, sb: direct(replicaOf("0-1-90", "0-1-90")), m: master,
			want: startPlan{adopt: true, at: set("0-1-90")}},
		{name: "old domains of another master are left out", start: current, sb: replicaOf("0-1-90,7-5-9", "0-1-90,7-5-9"), m: master,
			want: startPlan{adopt: true, at: set("0-1-90")}},
		{name: "a former master of this one: its own GTIDs are history", start: current, sb: replicaOf("0-1-90", "0-2-40,0-1-90"), m: twoServers,
			want: startPlan{adopt: true, at: set("0-1-90")}},
		{name: "caught up with the master", start: current, sb: replicaOf("0-1-100", "0-1-100"), m: master, want: startPlan{adopt: true, at: set("0-1-100")}},
		{name: "ahead of the master", start: current, sb: replicaOf("0-1-120", "0-1-120"), m: master,
			wantErr: "it is at 0-1-120 (gtid_slave_pos) and the master's binlog is at 0-1-100 (gtid_binlog_state 0-1-100): the standby is ahead of the master"},
		{name: "diverged from the master", start: current, sb: replicaOf("0-3-50", "0-3-50"), m: master,
			wantErr: "it is at 0-3-50 (gtid_slave_pos) and the master's binlog is at 0-1-100 (gtid_binlog_state 0-1-100): the standby has diverged"},
		{name: "replica mode, gtid_slave_pos behind its binlog", start: current, sb: replicaOf("0-1-50", "0-1-90"), m: master,
			wantErr: "it holds the master's transactions up to 0-1-90 (gtid_binlog_pos), but gtid_slave_pos, which replica mode continues from, is at 0-1-50: if it holds exactly the master's transactions up to 0-1-90, SET GLOBAL gtid_slave_pos = '0-1-90'"},
		{name: "replica mode, no gtid_slave_pos but the master's GTIDs in its binlog", start: current, sb: replicaOf("", "0-1-90"), m: master,
			wantErr: "but gtid_slave_pos, which replica mode continues from, is at nothing of domain 0"},
		{name: "direct mode, replicated without log_slave_updates", start: current, sb: direct(replicaOf("0-1-90", "")), m: master,
			wantErr: "it holds the master's transactions up to 0-1-90 (gtid_slave_pos), but gtid_binlog_pos, which direct mode continues from, is at nothing of domain 0: it replicated with log_slave_updates=OFF"},
		{name: "explicit GTID start before the standby", start: binlog.Start{Kind: binlog.StartGTID, GTID: "0-1-80"}, sb: replicaOf("0-1-90", "0-1-90"), m: master},
		{name: "explicit GTID start after the standby", start: binlog.Start{Kind: binlog.StartGTID, GTID: "0-1-95"}, sb: replicaOf("0-1-90", "0-1-90"), m: master,
			wantErr: `start = "gtid:0-1-95" begins after 0-1-95 in domain 0, and the standby is at 0-1-90 (gtid_slave_pos): the transactions in between would never reach it; set start = "current"`},
		{name: "explicit file start after the standby", start: binlog.Start{Kind: binlog.StartFile, File: binlog.FilePos{File: "mysql-bin.000001", Pos: 9000}},
			sb: replicaOf("0-1-90", "0-1-90"), m: masterHistory{state: master.state, startAt: set("0-1-93"), startKnown: true},
			wantErr: `start = "file:mysql-bin.000001:9000" begins after 0-1-93`},
		{name: "explicit file start with an empty standby", start: binlog.Start{Kind: binlog.StartFile, File: binlog.FilePos{File: "mysql-bin.000001", Pos: 4}},
			sb: replicaOf("", ""), m: master, want: startPlan{empty: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := planStart(tt.start, tt.sb, tt.m)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrStandbyCannotContinue) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "standby db2:3306") {
					t.Fatalf("planStart = %+v, %v; want the refusal %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("refusal on more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.empty != tt.want.empty || got.adopt != tt.want.adopt || !got.at.Equal(tt.want.at) {
				t.Fatalf("planStart = %+v (at %s), want %+v (at %s)", got, got.at, tt.want, tt.want.at)
			}
		})
	}
}
