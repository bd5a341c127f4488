package failover

import (
	"fmt"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// ProofGate decides whether a promotion now is lossless from the semi-sync
// proof the monitor records (checkpoint.SemiSyncProof) and from when the
// stream last heard the master.
//
// A commit can return OK to a client without the agent's ACK only after
// the master fell back to asynchronous replication, and with
// AFTER_SYNC, the agent as the only semi-sync replica and
// rpl_semi_sync_master_wait_no_slave=ON (all part of a proof), it falls back
// only after a commit waited rpl_semi_sync_master_timeout (T) without an
// ACK. So a promotion is lossless when:
//   - a proof exists and no breach was recorded after it;
//   - the stream last heard the master (B) less than T after the proof (P):
//     nothing unproven happened between them;
//   - the decision comes less than T after B: the old master, if it is in
//     fact alive behind a partition, cannot yet have acknowledged a commit
//     without the agent. (After the promotion it is fenced or shot.)
type ProofGate struct {
	Store *checkpoint.Store
	// LastHeard is when the stream last received anything from the master
	// (zero: never in this run).
	LastHeard func() time.Time
	Now       func() time.Time
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
	heard := g.LastHeard()
	if heard.IsZero() || heard.Before(proof.At) {
		heard = proof.At
	}
	if gap := heard.Sub(proof.At); gap >= t {
		return false, fmt.Sprintf("the last proof (%s) is %s older than the last word from the master (%s), longer than its %s semi-sync timeout: commits may have fallen back to async in between",
			clock(proof.At), gap.Round(time.Millisecond), clock(heard), t)
	}
	if since := g.Now().Sub(heard); since >= t {
		return false, fmt.Sprintf("the master was last heard %s ago (%s), longer than its %s semi-sync timeout: if it is alive, it may have committed without the agent",
			since.Round(time.Millisecond), clock(heard), t)
	}
	return true, ""
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }
