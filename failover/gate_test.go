package failover

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// TestGateCases: one case per condition of the gate's argument (doc.go,
// "The gate").
func TestGateCases(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	proof := &checkpoint.SemiSyncProof{At: t0, Timeout: 10 * time.Second}
	heard := func(d time.Duration, why string) Heard { return Heard{At: t0.Add(d), Why: why} }
	tests := []struct {
		name   string
		proof  *checkpoint.SemiSyncProof
		breach *checkpoint.SemiSyncBreach
		heard  Heard
		now    time.Time
		want   bool
		why    string
	}{
		{name: "never proven", heard: heard(0, "last packet"), now: t0, why: "never proven"},
		{name: "never proven, a breach", breach: &checkpoint.SemiSyncBreach{At: t0, Reason: "master not in semi-sync"},
			heard: heard(0, "last packet"), now: t0, why: "master not in semi-sync"},
		{name: "fresh proof, stream heard since", proof: proof, heard: heard(time.Second, "last packet"), now: t0.Add(2 * time.Second), want: true},
		{name: "fresh proof, stream last heard shortly before it", proof: proof, heard: heard(-time.Second, "last packet"), now: t0.Add(2 * time.Second), want: true},
		// The defect of issue 16: the proof stood in for B.
		{name: "fresh proof, stream silent for an hour", proof: proof, heard: heard(-time.Hour, "last packet from the master"),
			now: t0.Add(time.Second), why: "last heard 1h0m1s ago"},
		{name: "stream never heard", proof: proof, heard: Heard{Why: "no packet from the master in this run"}, now: t0.Add(time.Second),
			why: "has not heard the master"},
		{name: "an ACK request unanswered since before T", proof: proof,
			heard: heard(-9500*time.Millisecond, "an ACK request received then is still unanswered"), now: t0.Add(time.Second),
			why: "still unanswered"},
		{name: "breach after the proof", proof: proof,
			breach: &checkpoint.SemiSyncBreach{At: t0.Add(time.Second), Reason: "another semi-sync replica acknowledged commits for the agent"},
			heard:  heard(2*time.Second, "last packet"), now: t0.Add(3 * time.Second), why: "another semi-sync replica"},
		{name: "breach at the proof's moment", proof: proof,
			breach: &checkpoint.SemiSyncBreach{At: t0, Reason: "the agent's stream is silent"},
			heard:  heard(0, "last packet"), now: t0.Add(time.Second), why: "stream is silent"},
		{name: "breach before the proof", proof: proof,
			breach: &checkpoint.SemiSyncBreach{At: t0.Add(-time.Minute), Reason: "fell back"},
			heard:  heard(time.Second, "last packet"), now: t0.Add(2 * time.Second), want: true},
		{name: "proof too old for the last word", proof: proof, heard: heard(11*time.Second, "last packet"), now: t0.Add(12 * time.Second),
			why: "older than the last word"},
		{name: "decided too late", proof: proof, heard: heard(time.Second, "last packet"), now: t0.Add(12 * time.Second), why: "last heard"},
		{name: "decided exactly T after B", proof: proof, heard: heard(time.Second, "last packet"), now: t0.Add(11 * time.Second), why: "last heard"},
		{name: "timeout unknown", proof: &checkpoint.SemiSyncProof{At: t0}, heard: heard(0, "last packet"), now: t0, why: "timeout is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := checkpoint.Open(filepath.Join(t.TempDir(), "c.db"), false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tt.proof != nil {
				must(t, s.SaveSemiSyncProof(*tt.proof))
			}
			if tt.breach != nil {
				must(t, s.SaveSemiSyncBreach(*tt.breach))
			}
			g := ProofGate{Store: s, Heard: func() Heard { return tt.heard }, Now: func() time.Time { return tt.now }}
			ok, why := g.Lossless()
			if ok != tt.want || !strings.Contains(why, tt.why) || (!ok && tt.heard.Why != "" && tt.proof != nil && tt.breach == nil && tt.proof.Timeout > 0 && !strings.Contains(why, tt.heard.Why)) {
				t.Fatalf("Lossless = %v %q, want %v %q (naming %q)", ok, why, tt.want, tt.why, tt.heard.Why)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
