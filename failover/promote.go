package failover

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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

// Fencer isolates the old master: read_only verified and its clients'
// connections killed where it is reachable (FenceOldMaster, unless the
// SQL fence is off), then the operator's stonith command (if configured).
// It runs before the stream stops and before anything changes on the
// standby.
type Fencer interface {
	Fence(ctx context.Context) Isolation
}

// Isolation is what a Fencer found and did.
type Isolation struct {
	// SQL is the SQL fence's result; nil when the SQL fence is off.
	SQL *FenceResult
	// Stonith is the stonith command's result; nil when none is
	// configured.
	Stonith *HookResult
}

// Isolated reports whether a promotion may make the standby writable
// beside this old master, or says why not. It may when stonith succeeded,
// when the SQL fence verified read_only with the clients killed, when the
// old master answered neither (unreachable: the gate's argument covers a
// master alive behind a partition only until B + T; only stonith isolates
// it for good), or when neither fence nor stonith is configured. It may
// not when the old master answered and is not fenced, or the fence could
// not be attempted, and no stonith succeeded: two writers.
func (i Isolation) Isolated() (ok bool, why string) {
	if i.Stonith != nil && i.Stonith.OK() {
		return true, ""
	}
	var parts []string
	switch {
	case i.SQL == nil && i.Stonith == nil:
		return true, ""
	case i.SQL == nil:
		parts = append(parts, "the SQL fence is off (failover.fence = false)")
	case i.SQL.Fenced():
		return true, ""
	case !i.SQL.Reachable && i.SQL.Err == nil:
		return true, ""
	case i.SQL.Reachable:
		parts = append(parts, "the old master answered and is not fenced: "+i.SQL.Summary())
	default:
		parts = append(parts, "the old master could not be fenced: "+i.SQL.Summary())
	}
	if i.Stonith != nil {
		parts = append(parts, "stonith failed: "+i.Stonith.Summary())
	} else {
		parts = append(parts, "no stonith command is configured")
	}
	return false, strings.Join(parts, "; ")
}

// Summary is one line for the log, the audit log and the operator.
func (i Isolation) Summary() string {
	var parts []string
	if i.SQL != nil {
		parts = append(parts, i.SQL.Summary())
	}
	if i.Stonith != nil {
		parts = append(parts, i.Stonith.Summary())
	}
	if len(parts) == 0 {
		return "not fenced (failover.fence = false and no stonith command)"
	}
	return strings.Join(parts, "; ")
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

// ErrAborted means the promotion started but the old master answered and
// could not be isolated: the record is undone (the role is standby again,
// the stream never stopped, the standby was not touched), the alert hook
// ran, and a later promotion may try again. --force goes past it.
var ErrAborted = errors.New("promotion aborted")

// Promoter runs promotions: a recorded state machine whose every step goes
// to the checkpoint store before the next begins, so that a crash at any
// step resumes there on restart (Resume). The order is: the decision, the
// old master isolated (Fencer, while the stream runs; an answering old
// master that is not isolated aborts the promotion unless forced), the
// stream stopped for good, the drain, the standby writable, the role master
// with the new epoch, post_promote (the package documentation has the
// invariants). Promote and Resume may be called from any goroutine; one
// promotion runs at a time.
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
	// CatchUp bounds the wait, once the fence reached the old master, for
	// the stream to hold durably what that master had written
	// (FenceResult.End) before it stops; zero is DefaultCatchUp.
	CatchUp time.Duration
	// AfterStep, when set, is called after each step is recorded (a test's
	// crash injection; nil in production).
	AfterStep func(r checkpoint.Role)

	mu sync.Mutex // mu serializes promotions
}

// Result is what a promotion did.
type Result struct {
	Epoch   uint64
	Applied binlog.Position // the standby's position when it became writable
	Fence   string          // what isolating the old master did (Isolation.Summary)
	// Isolation is the fencer's result, when it ran in this call.
	Isolation *Isolation
	Hooks     []HookResult // the post_promote and alert hooks that ran
	DryRun    bool
	Lossless  bool   // the gate's verdict (Forced when it said no)
	Why       string // the gate's reason when not lossless
	Took      time.Duration
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
	// The decision is what gets recorded next: the gate must still hold
	// then (pre_promote may have taken up to its timeout, past B + T).
	if req.Proof == "" && ok {
		if ok, why = p.Gate.Lossless(); !ok {
			res.Lossless, res.Why = false, why
			if !req.Force {
				p.alert(ctx, Event{Reason: "automatic promotion refused: " + why, Epoch: role.Epoch, OldMaster: p.OldAddr, NewMaster: p.NewAddr}, &res)
				p.audit("promotion-refused", req, fmt.Sprintf("promotion refused after pre_promote (%s): %s; `hotstandby promote --force` promotes anyway", req.Reason, why))
				return res, fmt.Errorf("%w: after pre_promote, a promotion now may lose committed transactions: %s (`hotstandby promote --force` promotes anyway and records it)", ErrRefused, why)
			}
		}
	}
	old := p.OldMaster
	if st, err := p.Store.Load(); err == nil && st.Identity != nil {
		old = *st.Identity // the master the relay log's positions belong to
	}
	r := checkpoint.Role{Role: checkpoint.RolePromoting, Epoch: res.Epoch, Step: checkpoint.StepStarted, StartedAt: start,
		Reason: req.Reason, Forced: req.Force && !ok, ForceAsked: req.Force, By: req.By, OldMaster: old, OldAddr: p.OldAddr}
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
// again from the last one recorded, except that a promotion still at
// StepStarted whose fence fails is aborted as Promote aborts it.
func (p *Promoter) Resume(ctx context.Context) (Result, error) {
	return p.ResumeRequest(ctx, Request{By: "restart"})
}

// ResumeRequest is Resume on an operator's request: req.Force goes past a
// fence that failed (recorded in the audit log), req.By is who asked.
func (p *Promoter) ResumeRequest(ctx context.Context, req Request) (Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, err := p.Store.LoadRole()
	if err != nil || r.Role != checkpoint.RolePromoting {
		return Result{Epoch: r.Epoch}, err
	}
	if req.Force && !r.ForceAsked {
		r.ForceAsked = true
		if err := p.save(&r); err != nil {
			return Result{Epoch: r.Epoch}, err
		}
	}
	p.Log.Warn("resuming an interrupted promotion", "epoch", r.Epoch, "step", r.Step, "reason", r.Reason, "force", r.ForceAsked)
	text := fmt.Sprintf("promotion to epoch %d resumed after step %s", r.Epoch, r.Step)
	if req.Force {
		text += " (--force)"
	}
	p.audit("promotion", req, text)
	return p.run(ctx, r, Result{Epoch: r.Epoch, Lossless: !r.Forced}, p.Now())
}

// run does the steps after the one r records.
func (p *Promoter) run(ctx context.Context, r checkpoint.Role, res Result, start time.Time) (Result, error) {
	fail := func(step string, err error) (Result, error) {
		p.Log.Error("promotion stopped; it resumes from here when the daemon restarts or promote is asked again", "step", step, "err", err)
		p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promotion to epoch %d stopped at %s: %v", r.Epoch, step, err))
		return res, fmt.Errorf("promotion to epoch %d: %s: %w", r.Epoch, step, err)
	}
	writable := false // MakeWritable ran in this call
	// The old master first, while the stream still runs: its clients'
	// commits are acknowledged until it stops taking them.
	if r.Step == checkpoint.StepStarted {
		iso, ok, why := p.isolate(ctx, &r, &res)
		if !ok && !r.ForceAsked {
			return p.abort(ctx, r, res, why)
		}
		p.isolated(&r, iso, ok, why)
		if ok {
			if err := p.catchUp(ctx, r, iso); err != nil {
				if !r.ForceAsked {
					return p.abort(ctx, r, res, err.Error())
				}
				r.Fence += "; " + err.Error() + " (FORCED past it)"
				p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promotion to epoch %d FORCED past a stream that does not hold the fenced old master's end: %v", r.Epoch, err))
			}
		}
		r.Step = checkpoint.StepIsolated
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	// A promotion recorded by an older version, which drained before it
	// fenced: the stream is stopped, the fence still to do. It cannot be
	// aborted (the stream stopped for good); it waits for a fence that
	// works, or for --force.
	if r.Step == checkpoint.StepStreamEnd || r.Step == checkpoint.StepDrained {
		iso, ok, why := p.isolate(ctx, &r, &res)
		if !ok && !r.ForceAsked {
			p.alert(ctx, Event{Reason: "promotion blocked: " + why, Epoch: r.Epoch, OldMaster: r.OldAddr, NewMaster: p.NewAddr}, &res)
			return fail("isolate the old master", fmt.Errorf("%s: fix the fence (or stonith) and run `hotstandby promote` again, or `hotstandby promote --force`", why))
		}
		p.isolated(&r, iso, ok, why)
		if r.Step == checkpoint.StepStreamEnd {
			r.Step = checkpoint.StepStreamStopped
		} else {
			r.Step = checkpoint.StepApplied
		}
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	if r.Step == checkpoint.StepFenced { // older order: drained and fenced
		r.Step = checkpoint.StepApplied
	}
	if r.Step == checkpoint.StepIsolated {
		if err := p.Stream.StopForGood(ctx); err != nil {
			return fail("stop the stream", err)
		}
		r.Step = checkpoint.StepStreamStopped
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	if r.Step == checkpoint.StepStreamStopped {
		target := p.Stream.Durable()
		applied, err := p.Drainer.Drain(ctx, target)
		if err != nil {
			return fail("drain", err)
		}
		res.Applied = applied
		r.Step, r.Target = checkpoint.StepApplied, applied.String()
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
		p.Log.Info("drained: every durable transaction is applied", "applied", applied.String(), "relay_end", target.Pos.String())
	}
	if r.Step == checkpoint.StepApplied {
		if err := p.recheck(ctx, &r, &res); err != nil {
			return fail("fence the old master again", err)
		}
		if err := p.Standby.MakeWritable(ctx); err != nil {
			return fail("make the standby writable", err)
		}
		writable = true
		r.Step = checkpoint.StepWritable
		if err := p.save(&r); err != nil {
			return fail("record", err)
		}
	}
	if r.Step == checkpoint.StepWritable && !writable {
		// Resumed after the standby was made writable: make sure it still
		// is (idempotent; nothing may have set read_only since).
		if err := p.Standby.MakeWritable(ctx); err != nil {
			return fail("make the standby writable", err)
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
		res.Fence = cmp.Or(r.Fence, "fenced before a restart")
		p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promoted to epoch %d at %s (old master %s: %s)", r.Epoch, r.Target, r.OldAddr, res.Fence))
		ev := Event{Reason: r.Reason, Epoch: r.Epoch, OldMaster: r.OldAddr, NewMaster: p.NewAddr, GTID: r.Target}
		if hr := p.Hooks.PostPromote(ctx, ev); hr.Ran() {
			res.Hooks = append(res.Hooks, hr)
			p.audit("hook", Request{By: r.By}, hr.Summary())
		}
	}
	return res, nil
}

// Rechecker is a Fencer that can fence the old master again over SQL
// alone (no stonith), just before the standby is made writable.
type Rechecker interface {
	// Recheck runs the SQL fence once more; nil when the SQL fence is off.
	Recheck(ctx context.Context) *FenceResult
}

// recheck fences the old master once more right before the standby is
// made writable: one that did not answer at the isolation (frozen: a
// paused VM, SIGSTOP, a stall; its TCP port accepts and nothing answers)
// may have woken up during the drain, writable. One that answers now must
// be fenced and hold nothing the relay log lacks (a commit it returned OK
// for after its semi-sync timeout, async, while the stream was stopped);
// otherwise the standby stays read-only, the alert hook runs, and only
// --force goes on.
func (p *Promoter) recheck(ctx context.Context, r *checkpoint.Role, res *Result) error {
	rc, ok := p.Fencer.(Rechecker)
	if !ok {
		return nil
	}
	fr := rc.Recheck(ctx)
	if fr == nil || (!fr.Reachable && fr.Err == nil) {
		return nil // off, or still not answering: the isolation's verdict stands
	}
	var why string
	switch {
	case !fr.Fenced():
		why = "the old master answers again and is not fenced: " + fr.Summary()
	case fr.EndErr != nil:
		why = "the old master answers again; it is fenced but its binlog end is unknown: " + fr.EndErr.Error()
	case fr.End != "":
		held := p.Stream.Durable().Pos
		flavor := cmp.Or(held.GTID.Flavor(), r.OldMaster.Flavor, p.OldMaster.Flavor, binlog.MariaDB)
		end, err := binlog.ParseGTIDSet(flavor, fr.End)
		if err != nil {
			why = fmt.Sprintf("the fenced old master's GTID state %q: %v", fr.End, err)
		} else if in, err := held.GTID.Contains(end); held.GTID.IsZero() || err != nil || !in {
			why = fmt.Sprintf("the old master answered again after the stream stopped and holds %s, beyond the relay log's %s: it returned OK for commits the standby lacks", end, held.String())
		}
	}
	if why == "" {
		p.Log.Warn("the old master answers again: fenced before the standby is made writable", "epoch", r.Epoch, "result", fr.Summary())
		r.Fence += "; again before writable: " + fr.Summary()
		return nil
	}
	if r.ForceAsked {
		p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promotion to epoch %d FORCED past it: %s", r.Epoch, why))
		r.Fence += "; " + why + " (FORCED past it)"
		return nil
	}
	p.alert(ctx, Event{Reason: "promotion blocked before the standby is made writable: " + why, Epoch: r.Epoch, OldMaster: r.OldAddr, NewMaster: p.NewAddr}, res)
	return fmt.Errorf("%s: the standby stays read-only; fix it and run `hotstandby promote` again, or `hotstandby promote --force`", why)
}

// DefaultCatchUp is Promoter.CatchUp's default.
const DefaultCatchUp = 30 * time.Second

// catchUp waits until the stream durably holds the binlog end of an old
// master the fence reached (FenceResult.End), so that stopping the stream
// loses nothing that master committed: the commits it returned OK for
// while it fell back to async (the agent was down, or the fence came more
// than T after the stream last heard it) are in its binlog, not yet in the
// relay log. It fails, saying what is missing, after CatchUp.
func (p *Promoter) catchUp(ctx context.Context, r checkpoint.Role, iso Isolation) error {
	if iso.SQL == nil || !iso.SQL.Fenced() {
		return nil // unreachable (the gate's argument), or stonith: nothing to read
	}
	if iso.SQL.EndErr != nil {
		return fmt.Errorf("the old master is fenced but its binlog end is unknown, so the stream cannot be shown to hold it: %w", iso.SQL.EndErr)
	}
	if iso.SQL.End == "" {
		return nil // no GTID written there, ever
	}
	flavor := cmp.Or(p.Stream.Durable().Pos.GTID.Flavor(), r.OldMaster.Flavor, p.OldMaster.Flavor, binlog.MariaDB)
	end, err := binlog.ParseGTIDSet(flavor, iso.SQL.End)
	if err != nil {
		return fmt.Errorf("the fenced old master's GTID state %q: %w", iso.SQL.End, err)
	}
	wait := cmp.Or(p.CatchUp, DefaultCatchUp)
	deadline := time.Now().Add(wait)
	logged := false
	for {
		held := p.Stream.Durable().Pos
		if held.GTID.IsZero() {
			// Not known yet (a resumed promotion: the stream is recovering
			// its relay log), or nothing held: keep waiting.
		} else if ok, err := held.GTID.Contains(end); err != nil {
			return fmt.Errorf("compare the fenced old master's end %s with the relay log's %s: %w", end, held.GTID, err)
		} else if ok {
			if logged {
				p.Log.Info("the stream holds the fenced old master's end", "epoch", r.Epoch, "end", end.String())
			}
			return nil
		}
		if !logged {
			p.Log.Warn("the fenced old master wrote past what the stream holds: waiting for the stream before stopping it",
				"epoch", r.Epoch, "old_master_end", end.String(), "relay_durable", held.String(), "wait", wait)
			logged = true
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the old master is fenced, but the stream does not hold what it wrote: its binlog ends at %s, the relay log durably at %s after %s (stopping the stream now would lose what it committed since)",
				end, held.String(), wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// isolate runs the fencer and logs what it did.
func (p *Promoter) isolate(ctx context.Context, r *checkpoint.Role, res *Result) (Isolation, bool, string) {
	iso := p.Fencer.Fence(ctx)
	res.Isolation, res.Fence = &iso, iso.Summary()
	ok, why := iso.Isolated()
	if ok {
		p.Log.Info("old master isolated", "epoch", r.Epoch, "result", res.Fence)
	} else {
		p.Log.Error("the old master is not isolated", "epoch", r.Epoch, "why", why, "force", r.ForceAsked)
	}
	return iso, ok, why
}

// isolated records the isolation in r, and audits a --force past a fence
// that failed.
func (p *Promoter) isolated(r *checkpoint.Role, iso Isolation, ok bool, why string) {
	r.Fence = iso.Summary()
	if !ok {
		r.Fence += " (FORCED past it)"
		p.audit("promotion", Request{By: r.By}, fmt.Sprintf("promotion to epoch %d FORCED past an old master that is not fenced: %s", r.Epoch, why))
		p.Log.Warn("promote --force: going on beside an old master that is not fenced; it may still take writes", "why", why)
	}
}

// abort undoes the record of a promotion at StepStarted whose old master
// could not be isolated: nothing else was changed (the stream runs, the
// standby is read-only), so the agent is simply a standby again. It alerts
// and audits with the reason.
func (p *Promoter) abort(ctx context.Context, r checkpoint.Role, res Result, why string) (Result, error) {
	if err := p.Store.AbortPromotion(r.Epoch, why, p.Now()); err != nil {
		p.Log.Error("the promotion could not be aborted; it stays at its first step and resumes (with the fence) when asked again", "err", err)
		return res, fmt.Errorf("promotion to epoch %d: %s; and the abort was not recorded: %w", r.Epoch, why, err)
	}
	text := fmt.Sprintf("promotion to epoch %d aborted: %s; the standby stays read-only and streams from the old master again (`hotstandby promote --force` promotes anyway and records it)", r.Epoch, why)
	p.Log.Error("promotion aborted: the old master answered and is not isolated; the standby stays read-only", "epoch", r.Epoch, "why", why)
	p.audit("promotion-aborted", Request{By: r.By}, text)
	p.alert(ctx, Event{Reason: "promotion aborted: " + why, Epoch: r.Epoch - 1, OldMaster: r.OldAddr, NewMaster: p.NewAddr}, &res)
	res.Epoch = r.Epoch - 1
	return res, fmt.Errorf("%w: %s (the standby stays read-only; `hotstandby promote --force` promotes anyway and records it)", ErrAborted, why)
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
	if p.AfterStep != nil {
		p.AfterStep(*r)
	}
	return nil
}

func (p *Promoter) audit(kind string, req Request, text string) {
	if err := p.Store.AuditBy(kind, req.By, text, p.Now()); err != nil {
		p.Log.Error("audit log not written", "err", err, "text", text)
	}
}
