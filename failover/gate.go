package failover

import (
	"fmt"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// ProofGate decides whether a promotion now is lossless from the semi-sync
// proof the monitor records (checkpoint.SemiSyncProof, at P) and from B,
// the time up to which the stream has heard the master. The argument is the
// package documentation's "The gate"; in short, a promotion is lossless
// when:
//   - a proof exists and no breach was recorded at or after it;
//   - B is known and less than T (rpl_semi_sync_master_timeout, as read
//     with the proof) after P: the monitor proved until shortly before the
//     stream stopped hearing;
//   - the decision comes less than T after B: no commit written after B can
//     have fallen back to asynchronous replication yet.
//
// P never stands in for B: a proof says nothing about the stream.
type ProofGate struct {
	Store *checkpoint.Store
	// Heard returns B and what bounds it. If nil, LastHeard is used.
	Heard func() Heard
	// LastHeard returns B alone (zero: never in this run).
	LastHeard func() time.Time
	Now       func() time.Time
}

// Heard is B, the moment up to which the stream has heard the master, with
// what sets it, for the refusal's reason ("last packet from the master").
type Heard struct {
	At  time.Time // zero: never in this run
	Why string
}

func (g ProofGate) heard() Heard {
	if g.Heard != nil {
		return g.Heard()
	}
	return Heard{At: g.LastHeard(), Why: "the stream's last word from the master"}
}

// Lossless implements Gate.
func (g ProofGate) Lossless() (bool, string) {
	proof, breach, err := g.Store.SemiSync()
	if err != nil {
		return false, err.Error()
	}
	if proof == nil {
		if breach != nil {
			return false, "never proven lossless; last breach at " + clock(breach.At) + ": " + breach.Reason
		}
		return false, "never proven that the master waited for the agent's ACKs (no semi-sync proof recorded)"
	}
	if breach != nil && !proof.At.After(breach.At) {
		return false, "not proven since " + clock(breach.At) + ": " + breach.Reason
	}
	t := proof.Timeout
	if t <= 0 {
		return false, "the master's rpl_semi_sync_master_timeout is unknown"
	}
	b := g.heard()
	if b.At.IsZero() {
		return false, fmt.Sprintf("the stream has not heard the master in this run (%s): nothing shows what the master committed after the last proof (%s)",
			b.Why, clock(proof.At))
	}
	if gap := b.At.Sub(proof.At); gap >= t {
		return false, fmt.Sprintf("the last proof (%s) is %s older than the last word from the master (%s: %s), longer than its %s semi-sync timeout: commits may have fallen back to async in between",
			clock(proof.At), gap.Round(time.Millisecond), clock(b.At), b.Why, t)
	}
	if since := g.Now().Sub(b.At); since >= t {
		return false, fmt.Sprintf("the master was last heard %s ago (%s: %s), longer than its %s semi-sync timeout: a commit written since may have fallen back to async and returned OK without the agent",
			since.Round(time.Millisecond), clock(b.At), b.Why, t)
	}
	return true, ""
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }
