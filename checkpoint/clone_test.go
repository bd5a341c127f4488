package checkpoint

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

func TestCloneStateRoundTrip(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "c.db"))
	if c, err := s.LoadClone(); err != nil || c != nil {
		t.Fatalf("new store: clone %+v, %v; want none", c, err)
	}
	now := time.Unix(1700000000, 0).UTC()
	run := CloneState{State: CloneRunning, StartedAt: now, Master: "127.0.0.1:1", Standby: "127.0.0.1:2", Databases: []string{"a", "b"}, RowsDone: 5}
	if err := s.SaveClone(run); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadClone()
	if err != nil || got == nil || got.State != CloneRunning || got.RowsDone != 5 || len(got.Databases) != 2 || !got.Snapshot.FilePos.IsZero() {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	run.State = CloneComplete
	if err := s.SaveClone(run); err == nil {
		t.Fatal("SaveClone accepted a complete clone; only CompleteClone may mark it")
	}
}

func TestCompleteCloneSetsReceivedAndAudits(t *testing.T) {
	tests := []struct {
		name      string
		received  bool // the data dir already received something
		noPos     bool
		wantErr   error
		wantAnyEr bool
	}{
		{name: "fresh data dir"},
		{name: "relay already started", received: true, wantErr: ErrCloneHasRelay},
		{name: "no snapshot position", noPos: true, wantAnyEr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "c.db"))
			now := time.Unix(1700000000, 0).UTC()
			if tc.received {
				if err := s.SaveFrontiers(frontier(t, "mysql-bin.000001", 400, "0-1-3"), binlog.FilePos{}, now); err != nil {
					t.Fatal(err)
				}
			}
			set, _ := binlog.ParseGTIDSet(binlog.MariaDB, "0-1-42")
			c := CloneState{State: CloneRunning, Master: "m:1", Standby: "s:2", GTIDState: "0-1-42", TablesDone: 3}
			if !tc.noPos {
				c.Snapshot = binlog.Position{FilePos: fp("mysql-bin.000002", 1234), GTID: set}
			}
			if err := s.SaveClone(c); err != nil {
				t.Fatal(err)
			}
			err := s.CompleteClone(c, "uid 0 (root) pid 1", now)
			if tc.wantErr != nil || tc.wantAnyEr {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("CompleteClone: %v, want %v", err, tc.wantErr)
				}
				got, _ := s.LoadClone()
				if got.State != CloneRunning {
					t.Fatalf("refused completion left state %s", got.State)
				}
				if log, _ := s.AuditLog(); len(log) != 0 {
					t.Fatalf("refused completion audited: %+v", log)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := s.LoadClone()
			if got.State != CloneComplete || got.Snapshot.String() != c.Snapshot.String() {
				t.Fatalf("clone %+v", got)
			}
			st, _ := s.Load()
			if st.Received.Pos.FilePos != c.Snapshot.FilePos || st.Received.Pos.GTID.String() != "0-1-42" || st.Received.Segment != 0 {
				t.Fatalf("received %+v, want the snapshot position", st.Received)
			}
			log, _ := s.AuditLog()
			if len(log) != 1 || log[0].Kind != "clone" || log[0].By != "uid 0 (root) pid 1" || !strings.Contains(log[0].Text, "mysql-bin.000002:1234") {
				t.Fatalf("audit %+v", log)
			}
		})
	}
}
