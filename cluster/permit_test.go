package cluster

import (
	"strings"
	"testing"
	"time"
)

// TestPermit checks the answer of a standing at chosen instants, without
// etcd: leadership alone never permits, and the deadline measured from when
// a renewal was sent is final.
func TestPermit(t *testing.T) {
	const s = Instant(time.Second)
	ttl, margin := 2*time.Second, 500*time.Millisecond
	leader := standing{lease: 7, leader: true, epoch: 42, key: "k", deadline: 10 * s}
	tests := []struct {
		name   string
		st     standing
		now    Instant
		ok     bool
		reason string
	}{
		{name: "leader before the deadline", st: leader, now: 9 * s, ok: true},
		{name: "leader at the deadline", st: leader, now: 10 * s, reason: "overdue"},
		{name: "leader past the deadline", st: leader, now: 11 * s, reason: "overdue by 1s"},
		{name: "lease alive, not leader", st: standing{lease: 7, deadline: 10 * s}, now: 9 * s, reason: "not the acknowledger"},
		{name: "no lease", st: standing{}, now: 0, reason: "no lease"},
		{name: "closed", st: standing{lease: 7, leader: true, epoch: 42, deadline: 10 * s, closed: true}, now: 9 * s, reason: "closed"},
		{name: "dr", st: standing{dr: true}, now: 9 * s, reason: "role dr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.st.permit(tc.now)
			if p.OK != tc.ok || !strings.Contains(p.Reason, tc.reason) {
				t.Fatalf("permit = %+v, want OK %v with reason containing %q", p, tc.ok, tc.reason)
			}
			if p.OK && (p.Epoch != 42 || p.Remaining != tc.st.deadline.Sub(tc.now)) {
				t.Fatalf("permit = %+v, want epoch 42 and remaining %s", p, tc.st.deadline.Sub(tc.now))
			}
			if !p.OK && (p.Epoch != 0 || p.Remaining != 0) {
				t.Fatalf("refusal carries epoch or time: %+v", p)
			}
		})
	}

	// A renewal moves the deadline to its send time + TTL - margin; a late
	// answer to an older renewal never moves it back; a renewal of another
	// lease never moves it.
	st := standing{lease: 7, leader: true, deadline: 10 * s}
	if !st.renewed(7, 9*s, ttl, margin) || st.deadline != 9*s+Instant(ttl-margin) {
		t.Fatalf("after a renewal sent at 9s: deadline %s, want %s", st.deadline, 9*s+Instant(ttl-margin))
	}
	want := st.deadline
	if st.renewed(7, 8*s, ttl, margin); st.deadline != want {
		t.Fatalf("a late answer to a renewal sent at 8s moved the deadline to %s", st.deadline)
	}
	if st.renewed(8, 20*s, ttl, margin) || st.deadline != want {
		t.Fatalf("a renewal of another lease moved the deadline to %s", st.deadline)
	}
}

func TestBootClock(t *testing.T) {
	a := bootClock()
	time.Sleep(10 * time.Millisecond)
	b := bootClock()
	if !a.Before(b) || b.Sub(a) < 10*time.Millisecond {
		t.Fatalf("CLOCK_BOOTTIME went from %s to %s over a 10ms sleep", a, b)
	}
}
