package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
)

func TestJudgeSemiSync(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	at := func(pos uint64) binlog.Position {
		return binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000001", Pos: pos}}
	}
	stream := StreamView{State: StateStreaming, DumpID: 42, Received: at(1000), Transactions: 10, AckRequests: 9, AcksSent: 7}
	good := sample{at: t0, posAt: t0, pos: at(1000), status: "ON", clients: 1, waitPoint: "AFTER_SYNC", noTx: 5, noTimes: 1, known: true,
		getAck: 100, before: stream, after: stream, haveStream: true, dumpCommand: "Binlog Dump", dumpChecked: true}
	next := func(f func(*sample)) sample {
		s := good
		s.at, s.posAt = t0.Add(2*time.Second), t0.Add(2*time.Second)
		s.pos = at(2000)
		s.before.Transactions, s.before.AckRequests, s.before.AcksSent = 20, 15, 12
		s.after = s.before
		s.after.Received, s.after.AcksSent = at(1900), 13
		s.getAck = 106
		s.ackBase = ackBase{at: t0, getAck: 100, sent: 7}
		f(&s)
		return s
	}
	tests := []struct {
		name       string
		prev       *sample
		s          sample
		wantProven bool
		wantBreach string
	}{
		{name: "all waited", prev: &good, s: next(func(*sample) {}), wantProven: true},
		{name: "first sample proves nothing", prev: nil, s: good},
		{name: "fell back and recovered between samples", prev: &good, s: next(func(s *sample) { s.noTx, s.noTimes = 42, 2 }),
			wantBreach: "37 commits without ACK"},
		{name: "semi-sync off", prev: &good, s: next(func(s *sample) { s.status = "OFF" }), wantBreach: "not in semi-sync"},
		{name: "two semi-sync replicas", prev: &good, s: next(func(s *sample) { s.clients = 2 }), wantBreach: "2 semi-sync replicas"},
		{name: "AFTER_COMMIT", prev: &good, s: next(func(s *sample) { s.waitPoint = "AFTER_COMMIT" }), wantBreach: "not AFTER_SYNC"},
		{name: "transactions without ACK requests", prev: &good, s: next(func(s *sample) { s.before.AckRequests = good.before.AckRequests }), wantBreach: "asked for no ACK"},
		{name: "counters went backwards", prev: &good, s: next(func(s *sample) { s.noTx = 0 }), wantBreach: "went backwards"},
		{name: "ACK counter went backwards", prev: &good, s: next(func(s *sample) { s.getAck = 3 }), wantBreach: "went backwards"},
		{name: "no semi-sync plugin", prev: &good, s: sample{at: t0}},
		{name: "does not wait without a replica", prev: &good, s: next(func(s *sample) { s.waitNoSlave = "OFF" }), wantBreach: "wait_no_slave=OFF"},

		// The one semi-sync replica the master counts must be the agent.
		{name: "stream down while the master counts one replica", prev: &good,
			s: next(func(s *sample) {
				s.before.State, s.after.State, s.before.DumpID, s.after.DumpID = StateRetrying, StateRetrying, 0, 0
			}),
			wantBreach: "the agent's stream is retrying"},
		{name: "stream silent while the master counts one replica", prev: &good,
			s:          next(func(s *sample) { s.before.State, s.after.State = StateSilent, StateSilent }),
			wantBreach: "the agent's stream is silent"},
		{name: "even the first sample: stream down", prev: nil,
			s:          next(func(s *sample) { s.before.State = StateConnecting }),
			wantBreach: "the agent's stream is connecting"},
		{name: "stream reconnected during the sample", prev: &good,
			s:          next(func(s *sample) { s.after.DumpID = 43 }),
			wantBreach: "the agent's stream is reconnecting"},
		{name: "the agent's dump connection is not on the master", prev: &good,
			s:          next(func(s *sample) { s.dumpCommand = "" }),
			wantBreach: "dump connection 42 is not on the master"},
		{name: "the agent's dump connection is killed on the master", prev: &good,
			s:          next(func(s *sample) { s.dumpCommand = "Killed" }),
			wantBreach: `is "Killed" on the master`},
		{name: "the processlist could not be read", prev: &good, s: next(func(s *sample) { s.dumpChecked, s.dumpCommand = false, "" })},
		{name: "another replica acknowledged", prev: &good, s: next(func(s *sample) { s.getAck = 100 + 6 + 5 }),
			wantBreach: "another semi-sync replica acknowledged"},
		{name: "one ACK of the agent's in flight at the baseline", prev: &good, s: next(func(s *sample) { s.getAck = 100 + 6 + 1 }), wantProven: true},
		{name: "two ACKs of the agent's in flight at the baseline", prev: &good, s: next(func(s *sample) { s.getAck = 100 + 6 + 2 }), wantProven: true},
		{name: "another replica's ACKs add up since the baseline", prev: &good,
			s: next(func(s *sample) {
				s.ackBase = ackBase{at: t0.Add(-time.Minute), getAck: 90, sent: 3}
				s.getAck = 90 + 10 + 3
			}),
			wantBreach: "the master received 13 ACKs (Rpl_semi_sync_master_get_ack), the agent sent 10"},
		{name: "ACKs while the agent sent none", prev: &good,
			s:          next(func(s *sample) { s.before.AcksSent, s.after.AcksSent, s.getAck = 7, 7, 103 }),
			wantBreach: "the agent sent 0"},

		// A commit waiting at the previous sample is covered only once the
		// stream holds everything the master had written then.
		{name: "waiting at the previous sample, not yet received", prev: func() *sample { p := good; p.waitSessions = 3; return &p }(),
			s: next(func(s *sample) { s.after.Received = at(999) })},
		{name: "waiting at the previous sample, received since", prev: func() *sample { p := good; p.waitSessions = 3; return &p }(),
			s: next(func(s *sample) { s.after.Received = at(1000) }), wantProven: true},
		{name: "the stream behind in an older binlog file", prev: &good,
			s: next(func(s *sample) {
				s.after.Received = binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000000", Pos: 9999}}
			})},
		{name: "the previous position unknown", prev: func() *sample { p := good; p.pos = binlog.Position{}; return &p }(), s: next(func(*sample) {})},
		{name: "the stream not read", prev: &good, s: next(func(s *sample) { s.haveStream = false })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proven, breach := judge(tt.prev, tt.s)
			if proven != tt.wantProven || (tt.wantBreach == "") != (breach == "") || !strings.Contains(breach, tt.wantBreach) {
				t.Fatalf("judge = %v, %q; want %v, %q", proven, breach, tt.wantProven, tt.wantBreach)
			}
		})
	}
}

func TestCaughtUpAt(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	m := &Monitor{}
	pos := func(file string, p uint64) binlog.FilePos { return binlog.FilePos{File: file, Pos: p} }
	if got := m.CaughtUpAt(pos("mysql-bin.000001", 100)); !got.IsZero() {
		t.Fatalf("no marks: %v", got)
	}
	m.marks = []mark{{t0, pos("mysql-bin.000001", 100)}, {t0.Add(2 * time.Second), pos("mysql-bin.000001", 500)}, {t0.Add(4 * time.Second), pos("mysql-bin.000002", 4)}}
	for _, c := range []struct {
		recv binlog.FilePos
		want time.Time
	}{
		{pos("mysql-bin.000001", 99), time.Time{}},
		{pos("mysql-bin.000001", 100), t0},
		{pos("mysql-bin.000001", 499), t0},
		{pos("mysql-bin.000001", 900), t0.Add(2 * time.Second)},
		{pos("mysql-bin.000002", 4), t0.Add(4 * time.Second)},
		{binlog.FilePos{}, time.Time{}},
	} {
		if got := m.CaughtUpAt(c.recv); !got.Equal(c.want) {
			t.Errorf("CaughtUpAt(%s) = %v, want %v", c.recv, got, c.want)
		}
	}
}

func TestSinceProof(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	proof := checkpoint.SemiSyncProof{At: t0, NoTx: 5, NoTimes: 1, Timeout: 10 * time.Second}
	s := sample{at: t0.Add(time.Minute), known: true, noTx: 5, noTimes: 1}
	for _, c := range []struct {
		name          string
		noTx, noTimes uint64
		known         bool
		want          string
	}{
		{"unchanged", 5, 1, true, ""},
		{"fell back while the agent was down", 12, 2, true, "7 commits without ACK"},
		{"master restarted", 0, 0, true, "went backwards"},
		{"not a semi-sync master", 0, 0, false, ""},
	} {
		s.noTx, s.noTimes, s.known = c.noTx, c.noTimes, c.known
		if got := sinceProof(proof, s); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
