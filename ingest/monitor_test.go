package ingest

import (
	"strings"
	"testing"
	"time"
)

func TestJudgeSemiSync(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	good := sample{at: t0, status: "ON", clients: 1, waitPoint: "AFTER_SYNC", noTx: 5, noTimes: 1, known: true, txns: 10, ackReqs: 9}
	next := func(f func(*sample)) sample {
		s := good
		s.at = t0.Add(2 * time.Second)
		s.txns, s.ackReqs = 20, 15
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
		{name: "transactions without ACK requests", prev: &good, s: next(func(s *sample) { s.ackReqs = good.ackReqs }), wantBreach: "asked for no ACK"},
		{name: "counters went backwards", prev: &good, s: next(func(s *sample) { s.noTx = 0 }), wantBreach: "went backwards"},
		{name: "no semi-sync plugin", prev: &good, s: sample{at: t0}},
		{name: "does not wait without a replica", prev: &good, s: next(func(s *sample) { s.waitNoSlave = "OFF" }), wantBreach: "wait_no_slave=OFF"},
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
