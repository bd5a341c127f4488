package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// ErrSwitchoverAborted means a switchover stopped before the promotion and
// was undone: the master is writable again (unless the error says it
// could not be).
var ErrSwitchoverAborted = errors.New("switchover aborted")

// LiveMaster is the master of a planned switchover, alive and answering.
type LiveMaster interface {
	// Freeze makes the master stop taking writes: read_only=ON, verified,
	// and every client connection killed (replication ones kept). It
	// returns what the fence found and did (also when it fails).
	Freeze(ctx context.Context) (FenceResult, error)
	// Thaw undoes Freeze (read_only=OFF) after an aborted switchover, when
	// Freeze may have set read_only (FenceResult.MayHaveSetReadOnly).
	Thaw(ctx context.Context) error
	// LastGTID is the master's @@gtid_binlog_pos: what the standby must
	// hold before it may take over.
	LastGTID(ctx context.Context) (string, error)
}

// Follower is the agent's view of how far the standby is.
type Follower interface {
	// Applied reports whether the agent has received and the standby has
	// applied every transaction of gtid (a gtid_binlog_pos), with one line
	// saying where both are.
	Applied(gtid string) (bool, string, error)
}

// Switchover is one planned switchover: freeze the live master, wait
// until the standby has applied its last transaction, promote (the
// recorded state machine), and report the write downtime. It is not
// safe for concurrent use; the daemon runs one at a time.
type Switchover struct {
	Master   LiveMaster
	Follower Follower
	Promoter *Promoter
	// Timeout bounds the wait for the standby; past it the master is
	// thawed and the switchover aborted.
	Timeout time.Duration
	Log     *slog.Logger
	Now     func() time.Time
	// Poll is how often the wait looks again (default 10ms).
	Poll time.Duration
}

// SwitchoverResult is what a switchover did.
type SwitchoverResult struct {
	GTID     string        // the master's last GTID, applied on the standby
	Freeze   string        // what Freeze did
	Promoted Result        // the promotion's result
	Downtime time.Duration // read_only ON on the master → the promotion returned (the standby writable)
	Waited   time.Duration // of which the wait for the standby
}

// Run does the switchover; by names who asked, for the audit log.
func (s *Switchover) Run(ctx context.Context, by string) (SwitchoverResult, error) {
	var res SwitchoverResult
	poll := s.Poll
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	if err := s.catchUp(ctx, poll); err != nil {
		return res, err
	}
	frozenAt := s.Now()
	freeze, err := s.Master.Freeze(ctx)
	res.Freeze = freeze.Summary()
	if err != nil {
		return res, s.abort(ctx, frozenAt, freeze, fmt.Errorf("the master could not be frozen: %w", err))
	}
	gtid, err := s.Master.LastGTID(ctx)
	if err != nil {
		return res, s.abort(ctx, frozenAt, freeze, fmt.Errorf("read the master's gtid_binlog_pos: %w", err))
	}
	res.GTID = gtid
	s.Log.Warn("master frozen for a switchover; waiting for the standby", "gtid", gtid, "freeze", freeze, "timeout", s.Timeout)
	wctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	for {
		ok, where, err := s.Follower.Applied(gtid)
		if err != nil {
			return res, s.abort(ctx, frozenAt, freeze, err)
		}
		if ok {
			break
		}
		select {
		case <-wctx.Done():
			return res, s.abort(ctx, frozenAt, freeze, fmt.Errorf("the standby has not applied the master's last GTID %s within %s (%s)", gtid, s.Timeout, where))
		case <-time.After(poll):
		}
	}
	res.Waited = s.Now().Sub(frozenAt)
	pr, err := s.Promoter.Promote(ctx, Request{Reason: fmt.Sprintf("planned switchover: the master was read-only with its clients killed and the standby applied its last GTID %s", gtid),
		By: by, Proof: "switchover: standby applied " + gtid + " of the read-only master"})
	res.Promoted = pr
	res.Downtime = s.Now().Sub(frozenAt)
	if err != nil {
		if errors.Is(err, ErrRefused) || errors.Is(err, ErrAborted) {
			return res, s.abort(ctx, frozenAt, freeze, err)
		}
		// The promotion started: it resumes, never undoes; the master
		// stays read-only.
		return res, fmt.Errorf("switchover: %w (the old master stays read-only; `hotstandby promote` resumes the promotion)", err)
	}
	return res, nil
}

// catchUpRounds bounds the rounds of catchUp.
const catchUpRounds = 10

// catchUp waits, before anything changes, until the standby is close to
// the master, so that the master stays read-only only for a small
// remaining lag: in rounds, it reads the master's gtid_binlog_pos and waits
// until the standby has applied it, until a round finds it applied within
// a few polls (or after catchUpRounds; under a load the applier cannot keep
// up with, the downtime is then the applier's lag). It refuses (nothing
// changed) when the standby does not get there within the timeout.
func (s *Switchover) catchUp(ctx context.Context, poll time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	for round := 0; round < catchUpRounds; round++ {
		gtid, err := s.Master.LastGTID(ctx)
		if err != nil {
			return fmt.Errorf("%w: read the master's gtid_binlog_pos: %v", ErrRefused, err)
		}
		start := s.Now()
		for {
			ok, where, err := s.Follower.Applied(gtid)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrRefused, err)
			}
			if ok {
				break
			}
			select {
			case <-wctx.Done():
				return fmt.Errorf("%w: the standby did not catch up with the master's %s within %s (%s): the master would stay read-only that long; nothing changed", ErrRefused, gtid, s.Timeout, where)
			case <-time.After(poll):
			}
		}
		if s.Now().Sub(start) < 5*poll {
			return nil
		}
	}
	return nil
}

// abort thaws the master, if the freeze may have made it read-only, and
// says how long writes were stopped. A master that was read-only before the
// switchover stays read-only.
func (s *Switchover) abort(ctx context.Context, frozenAt time.Time, freeze FenceResult, cause error) error {
	// Never thaw once anything promoted the standby (another switchover,
	// an operator's promote): the old master would be a second writer.
	if r, err := s.Promoter.Store.LoadRole(); err != nil || r.Role != checkpoint.RoleStandby {
		s.Log.Error("switchover aborted; the master stays read-only: the standby is promoted or its role is unknown", "cause", cause, "role", r.Role, "err", err)
		return fmt.Errorf("%w: %v; the master stays read-only (the agent's role is %q, not standby: %v)", ErrSwitchoverAborted, cause, r.Role, err)
	}
	if !freeze.MayHaveSetReadOnly() {
		why := "it was read-only before the switchover (read_only=ON when the freeze connected)"
		if !freeze.WasReadOnly {
			why = "the freeze did not get as far as reading read_only, so it set nothing"
		}
		s.Log.Warn("switchover aborted; the master's read_only is left as it was", "cause", cause, "why", why)
		return fmt.Errorf("%w: %v; the master's read_only is left as it was: %s", ErrSwitchoverAborted, cause, why)
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := s.Master.Thaw(tctx); err != nil {
		s.Log.Error("switchover aborted and the master could NOT be made writable again", "cause", cause, "err", err)
		return fmt.Errorf("%w: %v; the master is still read_only (SET GLOBAL read_only = OFF failed: %v): set it yourself", ErrSwitchoverAborted, cause, err)
	}
	took := s.Now().Sub(frozenAt)
	s.Log.Warn("switchover aborted; the master is writable again", "cause", cause, "writes_stopped_for", took.Round(time.Millisecond))
	return fmt.Errorf("%w: %v; the master is writable again (read_only=OFF; writes were stopped for %s)", ErrSwitchoverAborted, cause, took.Round(time.Millisecond))
}
