package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

// fakeMaster answers the continuity queries with fixed values.
type fakeMaster struct {
	state  string            // @@gtid_binlog_state
	gtidAt map[string]string // "file:pos" -> BINLOG_GTID_POS ("" = NULL)
	logs   []string          // SHOW BINARY LOGS names
}

func (f fakeMaster) Query(q string) ([][]string, error) {
	switch {
	case strings.Contains(q, "gtid_binlog_state"):
		return [][]string{{f.state}}, nil
	case strings.HasPrefix(q, "SELECT BINLOG_GTID_POS"):
		args := strings.TrimSuffix(strings.TrimPrefix(q, "SELECT BINLOG_GTID_POS("), ")")
		file, pos, _ := strings.Cut(args, ", ")
		v, ok := f.gtidAt[strings.Trim(file, "'")+":"+pos]
		if !ok {
			v = ""
		}
		return [][]string{{v}}, nil
	case q == "SHOW BINARY LOGS":
		var out [][]string
		for _, l := range f.logs {
			out = append(out, []string{l, "1000"})
		}
		return out, nil
	}
	return nil, errors.New("unexpected query " + q)
}

func TestCheckContinuity(t *testing.T) {
	maria := func(id uint32) binlog.Identity { return binlog.Identity{Flavor: binlog.MariaDB, ServerID: id} }
	end := binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000002", Pos: 1580}}
	var err error
	if end.GTID, err = binlog.ParseGTIDSet(binlog.MariaDB, "0-1-7,1-1-3"); err != nil {
		t.Fatal(err)
	}
	same := maria(1)
	tests := []struct {
		name    string
		master  fakeMaster
		stored  *binlog.Identity
		id      binlog.Identity
		wantErr error
		want    string // in the message
	}{
		{name: "the same history", stored: &same, id: maria(1),
			master: fakeMaster{state: "0-1-9,1-1-3", gtidAt: map[string]string{"mysql-bin.000002:1580": "0-1-7,1-1-3"}, logs: []string{"mysql-bin.000002"}}},
		{name: "rebuilt master, fewer transactions", stored: &same, id: maria(1), wantErr: ErrOtherHistory, want: "lacks 0-1-7",
			master: fakeMaster{state: "0-1-2", logs: []string{"mysql-bin.000001"}}},
		{name: "rebuilt master, no boundary at our end", stored: &same, id: maria(1), wantErr: ErrOtherHistory, want: "no event boundary at offset 1580",
			master: fakeMaster{state: "0-1-50,1-1-9", logs: []string{"mysql-bin.000001", "mysql-bin.000002"}}},
		{name: "rebuilt master, other GTID at our end", stored: &same, id: maria(1), wantErr: ErrOtherHistory, want: "the master's binlog is at 0-1-6,1-1-3",
			master: fakeMaster{state: "0-1-50,1-1-9", gtidAt: map[string]string{"mysql-bin.000002:1580": "0-1-6,1-1-3"}, logs: []string{"mysql-bin.000002"}}},
		{name: "our file purged: the dump says so", stored: &same, id: maria(1),
			master: fakeMaster{state: "0-1-50,1-1-9", logs: []string{"mysql-bin.000009"}}},
		{name: "new master that holds our history", stored: &same, id: maria(2), wantErr: ErrMasterChanged, want: "a new master after a failover",
			master: fakeMaster{state: "0-1-7,1-1-3,0-2-12"}},
		{name: "new master without our history", stored: &same, id: maria(2), wantErr: ErrOtherHistory, want: "it lacks 0-1-7",
			master: fakeMaster{state: "0-1-5,1-1-3,0-2-12"}},
		{name: "nothing streamed yet", stored: nil, id: maria(1), master: fakeMaster{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := end
			if tt.name == "nothing streamed yet" {
				e = binlog.Position{}
			}
			err := checkContinuity(tt.master, tt.stored, tt.id, e)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("checkContinuity: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkContinuity = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
		})
	}
}
