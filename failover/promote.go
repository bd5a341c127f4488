package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// Stream is the replication stream from the master, as a promotion needs it.
type Stream interface {
	// StopForGood ends the stream and keeps it from ever reconnecting; it
	// returns once the relay log is closed (nothing more will be written).
	StopForGood(ctx context.Context) error
	// Durable is the relay log's durable frontier: the end of the last whole
	// transaction received and fsynced (an incomplete tail is never part of
	// it). It is the safe frontier of a promotion.
	Durable() relay.Frontier
}

// Drainer applies the relay log to the standby.
type Drainer interface {
	// Drain applies every transaction up to target and stops the applier
	// for good; it returns the standby's applied position. It fails when the
	// applier is stopped on an error (the operator must fix or skip first).
	Drain(ctx context.Context, target relay.Frontier) (binlog.Position, error)
}

// Standby is the server being promoted.
type Standby interface {
	// Check fails when the standby cannot be promoted now (unreachable),
	// before anything is changed.
	Check(ctx context.Context) error
	// MakeWritable removes every replication configuration the server holds
	// (RESET SLAVE ALL), enables the semi-sync master if asked, and sets
	// read_only=OFF. It is idempotent.
	MakeWritable(ctx context.Context) error
}

// Fencer fences the old master: read_only and its clients' connections
// killed where it is reachable, then the operator's STONITH command.
type Fencer interface {
	Fence(ctx context.Context) (summary string)
}

// Gate says whether a promotion now loses nothing a client was told was
// committed.
type Gate interface {
	// Lossless is true with an empty reason, or false with one line that
	// says what may be lost.
	Lossless() (ok bool, why string)
}

// Hooks runs the operator's commands around a promotion.
type Hooks interface {
	// PrePromote may veto (an error says why).
	PrePromote(ctx context.Context, ev Event) error
	// PostPromote and Alert report what their hook did; a zero HookResult
	// (Ran false) means none is configured. Their failures are logged and
	// audited, and do not undo the promotion.
	PostPromote(ctx context.Context, ev Event) HookResult
	Alert(ctx context.Context, ev Event) HookResult
}

// Event describes a promotion to the hooks.
type Event struct {
	Reason    string
	Epoch     uint64
	OldMaster string // host:port
	NewMaster string // host:port
	GTID      string // the promoted position (after the drain)
}

// Request is one promotion request.
type Request struct {
	Reason string // why: the detector's verdict, or "operator request"
	By     string // who: "detector", or the control socket's peer
	Force  bool   // promote even when the gate says it may lose data
	DryRun bool   // check everything, change nothing
	// Proof, when set, says how the caller proved the promotion lossless
	// (a switchover: the standby applied the read-only master's last
	// GTID); the gate is not asked.
	Proof string
}

// ErrRefused means the promotion was not started (nothing changed): the
// gate, a veto, or the agent's role refused it.
var ErrRefused = errors.New("promotion refused")

// Promoter runs promotions: a recorded state machine whose every step goes
// to the checkpoint store before the next begins, so that a crash at any
// step resumes there on restart (Resume). Promote and Resume may be called
// from any goroutine; one promotion runs at a time.
type Promoter struct {
	Store     *checkpoint.Store
	Stream    Stream
	Drainer   Drainer
	Standby   Standby
	Fencer    Fencer
	Gate      Gate
	Hooks     Hooks
	OldMaster binlog.Identity // as last seen (zero if never)
	OldAddr   string
	NewAddr   string
	Log       *slog.Logger
	Now       func() time.Time

	mu sync.Mutex // mu serializes promotions
}

// Result is what a promotion did.
type Result struct {
	Epoch    uint64
	Applied  binlog.Position // the standby's position when it became writable
	Fence    string
	Hooks    []HookResult // the post_promote and alert hooks that ran
	DryRun   bool
	Lossless bool   // the gate's verdict (Forced when it said no)
	Why      string // the gate's reason when not lossless
	Took     time.Duration
}

// Promote checks the gate and the pre-promote hook and, unless it is a dry
// run, promotes the standby.
func (p *Promoter) Promote(ctx context.Context, req Request) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := p.Now()
	role, err := p.Store.LoadRole()
	if err != nil {
		return Result{}, err
	}
	switch role.Role {
	case checkpoint.RoleMaster:
		return Result{Epoch: role.Epoch}, fmt.Errorf("%w: already promoted (epoch %d, %s)", ErrRefused, role.Epoch, role.UpdatedAt.Format(time.RFC3339))
	case checkpoint.RolePromoting:
		return Result{Epoch: role.Epoch}, fmt.Errorf("%w: the promotion of epoch %d is in progress (step %s)", ErrRefused, role.Epoch, role.Step)
	}
	ok, why := p.Gate.Lossless()
	if req.Proof != "" {
		ok, why = true, ""
	}
	res := Result{Epoch: role.Epoch + 1, DryRun: req.DryRun, Lossless: ok, Why: why}
	ev := Event{Reason: req.Reason, Epoch: res.Epoch, OldMaster: p.OldAddr, NewMaster: p.NewAddr}
	if !ok && !req.Force {
		if !req.DryRun {
			p.alert(ctx, Event{Reason: "automatic promotion refused: " + why, Epoch: role.Epoch, OldMaster: p.OldAddr, NewMaster: p.NewAddr}, &res)
			p.audit("promotion-refused", req, fmt.Sprintf("promotion refused (%s): %s; `hotstandby promote --force` promotes anyway", req.Reason, why))
		}
		return res, fmt.Errorf("%w: a promotion now may lose committed transactions: %s (`hotstandby promote --force` promotes anyway and records it)", ErrRefused, why)
	}
	if err := p.Standby.Check(ctx); err != nil {
		return res, fmt.Errorf("%w: the standby cannot be promoted now: %v", ErrRefused, err)
	}
	if req.DryRun {
		res.Took = p.Now().Sub(start)
		return res, nil
	}
	if err := p.Hooks.PrePromote(ctx, ev); err != nil {
		p.audit("promotion-refused", req, "pre_promote vetoed: "+err.Error())
		return res, fmt.Errorf("%w: pre_promote hook vetoed it: %v", ErrRefused, err)
	}
	old := p.OldMaster
	if st, err := p.Store.Load(); err == nil && st.Identity != nil {
		old = *st.Identity // the master the relay log's positions belong to
	}
	r := checkpoint.Role{Role: checkpoint.RolePromoting, Epoch: res.Epoch, Step: checkpoint.StepStarted, StartedAt: start,
		Reason: req.Reason, Forced: req.Force && !ok, By: req.By, OldMaster: old, OldAddr: p.OldAddr}
	if err := p.save(&r); err != nil {
		return res, err
	}
	text := fmt.Sprintf("promotion to epoch %d started by %s: %s", r.Epoch, req.By, req.Reason)
	if r.Forced {
		text += "; FORCED although not proven lossless: " + why
	}
	p.audit("promotion", req, text)
	p.Log.Warn("promoting the standby", "epoch", r.Epoch, "reason", req.Reason, "by", req.By, "forced", r.Forced)
	return p.run(ctx, r, res, start)
}

// Resume finishes a promotion that a crash interrupted; it does nothing in
// the standby role. It never goes back: each step is idempotent and runs
// again from the last one recorded.
func (p *Promoter) Resume(ctx context.Context) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, err := p.Store.LoadRole()
	if err != nil || r.Role != checkpoint.RolePromoting {
		return Result{Epoch: r.Epoch}, err
	}
	p.Log.Warn("resuming an interrupted promotion", "epoch", r.Epoch, "step", r.Step, "reason", r.Reason)
	p.audit("promotion", Request{By: "restart"}, fmt.Sprintf("promotion to epoch %d resumed after step %s", r.Epoch, r.Step))
	return p.run(ctx, r, Result{Epoch: r.Epoch, Lossless: !r.Forced}, p.Now())
}

// run does the steps after the one r records.
func (p *Promoter) run(ctx context.Context, r checkpoint.Role, res Result, start time.Time) (Result, error) {
	fail := func(step string, err error) (Result, error) {
		p.Log.Error("promotion stopped; it resumes from here when the daemon restarts or promote is asked again", "step", step, "err", err)
		p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promotion to epoch %d stopped at %s: %v", r.Epoch, step, err))
		return res, fmt.Errorf("promotion to epoch %d: %s: %w", r.Epoch, step, err)
	}
	if r.Step == checkpoint.StepStarted {
		if err := p.Stream.StopForGood(ctx); err != nil {
			return fail("stop the stream", err)
		}
		r.Step = checkpoint.StepStreamEnd
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	if r.Step == checkpoint.StepStreamEnd {
		target := p.Stream.Durable()
		applied, err := p.Drainer.Drain(ctx, target)
		if err != nil {
			return fail("drain", err)
		}
		res.Applied = applied
		r.Step, r.Target = checkpoint.StepDrained, applied.String()
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
		p.Log.Info("drained: every durable transaction is applied", "applied", applied.String(), "relay_end", target.Pos.String())
	}
	if r.Step == checkpoint.StepDrained {
		res.Fence = p.Fencer.Fence(ctx)
		p.Log.Info("old master fenced", "result", res.Fence)
		r.Step = checkpoint.StepFenced
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	if r.Step == checkpoint.StepFenced {
		if err := p.Standby.MakeWritable(ctx); err != nil {
			return fail("make the standby writable", err)
		}
		r.Step = checkpoint.StepWritable
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	if r.Step == checkpoint.StepWritable {
		r.Role, r.Step = checkpoint.RoleMaster, checkpoint.StepDone
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
		res.Took = p.Now().Sub(start)
		p.Log.Warn("promoted: the standby is the master now; the agent never streams from the old master again",
			"epoch", r.Epoch, "applied", r.Target, "took", res.Took.Round(time.Millisecond))
		p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promoted to epoch %d at %s (old master %s fenced: %s)", r.Epoch, r.Target, r.OldAddr, res.Fence))
		ev := Event{Reason: r.Reason, Epoch: r.Epoch, OldMaster: r.OldAddr, NewMaster: p.NewAddr, GTID: r.Target}
		if hr := p.Hooks.PostPromote(ctx, ev); hr.Ran() {
			res.Hooks = append(res.Hooks, hr)
			p.audit("hook", Request{By: r.By}, hr.Summary())
		}
	}
	return res, nil
}

func (p *Promoter) alert(ctx context.Context, ev Event, res *Result) {
	if hr := p.Hooks.Alert(ctx, ev); hr.Ran() {
		res.Hooks = append(res.Hooks, hr)
		p.audit("hook", Request{By: "detector"}, hr.Summary())
	}
}

func (p *Promoter) save(r *checkpoint.Role) error {
	r.UpdatedAt = p.Now()
	if err := p.Store.SaveRole(*r); err != nil {
		return fmt.Errorf("record promotion step %s: %w", r.Step, err)
	}
	return nil
}

func (p *Promoter) audit(kind string, req Request, text string) {
	if err := p.Store.AuditBy(kind, req.By, text, p.Now()); err != nil {
		p.Log.Error("audit log not written", "err", err, "text", text)
	}
}
