package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/replica"
)

// failoverParts are the daemon's failover machinery; nil without a
// standby.
type failoverParts struct {
	promoter *failover.Promoter
	detector *failover.Detector // nil with failover.mode = off
	prober   *failover.SQLProber
	hooks    *failover.HookRunner

	mu       sync.Mutex // guards retrying
	retrying string     // why the automatic promotion is being retried ("" when it is not)
}

// setRetrying records why the automatic promotion is being retried, for
// status ("" when it is not).
func (fp *failoverParts) setRetrying(why string) {
	fp.mu.Lock()
	fp.retrying = why
	fp.mu.Unlock()
}

// Retrying is why the automatic promotion is being retried, or "".
func (fp *failoverParts) Retrying() string {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return fp.retrying
}

// autoRetryEvery is how long the automatic promotion waits before it tries
// again after a refusal.
const autoRetryEvery = time.Second

// newFailover wires the promoter (and, unless failover.mode is off, the
// detector) over the agent's parts.
func (a *Agent) newFailover() (*failoverParts, error) {
	fp := &failoverParts{hooks: failover.NewHookRunner(a.cfg.HookConfig().Timeout, a.log)}
	st, _ := a.store.Load()
	var old binlog.Identity
	if st.Identity != nil {
		old = *st.Identity
	}
	fp.promoter = &failover.Promoter{
		Store: a.store, Stream: agentStream{a}, Drainer: agentDrainer{a}, Standby: agentStandby{a},
		Fencer: agentFencer{a, fp.hooks}, Hooks: agentHooks{a, fp.hooks},
		Gate:      failover.ProofGate{Store: a.store, Heard: a.heard, Now: time.Now},
		OldMaster: old, OldAddr: a.cfg.Master.Addr(), NewAddr: a.cfg.Standby.Addr(),
		Log: a.log.With("component", "failover"), Now: time.Now,
	}
	if step := os.Getenv(killAfterStepEnv); step != "" {
		fp.promoter.AfterStep = killAfterStep(a, step)
	}
	if a.cfg.Failover.Mode == "off" {
		return fp, nil
	}
	dc := a.cfg.DetectConfig()
	p, err := failover.NewSQLProber(failover.SQLProberConfig{Addr: a.cfg.Master.Addr(), User: a.cfg.Master.User,
		Password: a.cfg.password, ServerID: old.ServerID, Timeout: dc.ProbeTimeout, Logger: a.log,
		TLS: a.cfg.probeTLS(), TLSFallback: a.cfg.probeFallback()})
	if err != nil {
		return nil, err
	}
	fp.prober = p
	fp.detector = failover.NewDetector(dc, p, agentStreamView{a, dc.StreamSilence}, a.log, time.Now)
	fp.detector.LimitGrace(a.graceLimit)
	return fp, nil
}

// killAfterStepEnv names a promotion step after whose record the daemon
// kills itself with SIGKILL, once per data directory: the crash tests'
// injection, never set in production.
const killAfterStepEnv = "HOTSTANDBY_TEST_KILL_AFTER_STEP"

func killAfterStep(a *Agent, step string) func(checkpoint.Role) {
	mark := filepath.Join(a.cfg.DataDir, "test-killed-after-"+step)
	return func(r checkpoint.Role) {
		if r.Step != step {
			return
		}
		if _, err := os.Stat(mark); err == nil {
			return
		}
		if err := os.WriteFile(mark, nil, 0o600); err != nil {
			return
		}
		a.log.Warn("test crash injection: kill -9 after the promotion step", "step", step)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// lastHeard is when the stream last received anything from the master.
func (a *Agent) lastHeard() time.Time {
	st := a.recv.Status()
	last := st.LastEventAt
	if st.LastHeartbeat.After(last) {
		last = st.LastHeartbeat
	}
	if st.ConnectedSince.After(last) {
		last = st.ConnectedSince
	}
	return last
}

// heard is the gate's B: the earliest of the last packet the stream
// received, the receipt of the oldest ACK request it has not answered, and
// the latest moment by which the master had written nothing the stream does
// not hold durably (a position the monitor read, at or before the stream's
// durable end). See failover's doc.go, "The gate".
func (a *Agent) heard() failover.Heard {
	h := a.recv.Heard()
	if h.Packet.IsZero() {
		return failover.Heard{Why: "no packet from the master in this run"}
	}
	b := failover.Heard{At: h.Packet, Why: "its last packet"}
	if !h.AckPending.IsZero() && h.AckPending.Before(b.At) {
		b = failover.Heard{At: h.AckPending, Why: "an ACK request received then is still unanswered: the relay log has not stored it, or the ACK could not be sent"}
	}
	received := a.recv.Status().Received
	caught := a.monitor.CaughtUpAt(received.FilePos)
	if caught.IsZero() {
		return failover.Heard{Why: "the stream holds no position of the master's that the monitor read (received " + received.FilePos.String() + ")"}
	}
	if caught.Before(b.At) {
		b = failover.Heard{At: caught, Why: "what the master had written by then is the last the stream holds durably (received " + received.FilePos.String() + ")"}
	}
	return b
}

// runDetector acts on the detector's verdicts until ctx ends: in auto mode
// it promotes (autoPromote), in manual mode it alerts.
func (a *Agent) runDetector(ctx context.Context) {
	fp := a.failover
	defer fp.prober.Close() // no connection to the old master outlives the detector
	verdicts := make(chan failover.Verdict, 1)
	go fp.detector.Run(ctx, verdicts)
	for {
		select {
		case <-ctx.Done():
			return
		case v := <-verdicts:
			if a.cfg.Failover.Mode != "auto" {
				a.log.Error("the master is dead; failover.mode = manual: promote with `hotstandby promote`", "reason", v.Reason)
				agentHooks{a, fp.hooks}.Alert(ctx, failover.Event{Reason: "master dead (manual mode, not promoted): " + v.Reason,
					OldMaster: a.cfg.Master.Addr(), NewMaster: a.cfg.Standby.Addr()})
				continue
			}
			if a.autoPromote(ctx, v) {
				return // promoted, or the promotion started: nothing left to detect
			}
		}
	}
}

// errRoleOpBusy wraps the role lock's refusal: another promote,
// switchover or rejoin (an operator's --dry-run among them) is running.
var errRoleOpBusy = errors.New("another role operation is running")

// autoPromote promotes on a verdict. After a refusal (the role lock held,
// the standby check failed, pre_promote vetoed or timed out) or an abort
// (the old master answered and could not be fenced), it tries again every
// autoRetryEvery while the verdict holds (the detector still says the
// master is dead) and the gate still calls a promotion now lossless, which
// bounds the retries by the master's semi-sync timeout after the stream
// last heard it; status says it is retrying and why. It reports whether
// the promotion started (done, or stopped at a step that resumes).
func (a *Agent) autoPromote(ctx context.Context, v failover.Verdict) bool {
	fp := a.failover
	defer fp.setRetrying("")
	for attempt := 1; ; attempt++ {
		err := a.promoteOnce(v)
		if err == nil {
			return true
		}
		if !errors.Is(err, failover.ErrRefused) && !errors.Is(err, failover.ErrAborted) && !errors.Is(err, errRoleOpBusy) {
			// It started and stopped at a step: it resumes from there
			// (`hotstandby promote`, or the next start), never streams again.
			a.log.Error("the automatic promotion stopped; `hotstandby promote` resumes it", "err", err)
			return true
		}
		if role, rerr := a.store.LoadRole(); rerr != nil || role.Role != checkpoint.RoleStandby {
			a.log.Error("automatic promotion did not happen", "err", err, "role", role.Role)
			return role.Role != checkpoint.RoleStandby
		}
		if !fp.detector.View().Dead {
			a.log.Error("automatic promotion did not happen; the master was seen alive since: not retried", "err", err)
			return false
		}
		if ok, why := fp.promoter.Gate.Lossless(); !ok {
			a.log.Error("automatic promotion did not happen, and a promotion now is no longer proven lossless: not retried", "err", err, "gate", why)
			return false
		}
		fp.setRetrying(fmt.Sprintf("attempt %d at %s: %v", attempt, time.Now().UTC().Format("15:04:05.000"), err))
		a.log.Warn("automatic promotion did not happen; retrying while the master stays dead and the gate holds", "attempt", attempt, "err", err, "retry_in", autoRetryEvery)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(autoRetryEvery):
		}
	}
}

// promoteOnce is one attempt of the automatic promotion.
func (a *Agent) promoteOnce(v failover.Verdict) (err error) {
	end, err := a.roleOps.begin("promotion", "detector")
	if err != nil {
		return fmt.Errorf("%w: %v", errRoleOpBusy, err)
	}
	defer end()
	defer a.recoverOp("automatic promotion", &err)
	a.log.Error("the master is dead: promoting", "reason", v.Reason)
	// The daemon's context, not the detector's: the promotion stops the
	// stream (and with it the detector) on its way.
	_, err = a.failover.promoter.Promote(a.ctx, failover.Request{Reason: "master dead: " + v.Reason, By: "detector"})
	return err
}

// opPromote is the control op "promote" (and, for a promotion that stopped
// halfway, resumes it).
func (a *Agent) opPromote(ctx context.Context, p control.Peer, req control.Request) (string, error) {
	if a.failover == nil {
		return "", errors.New("promote: no standby: the agent has no [standby] section")
	}
	end, err := a.roleOps.begin("promote", p.String())
	if err != nil {
		return "", err
	}
	ended := false
	defer func() {
		if !ended {
			end()
		}
	}()
	role, err := a.store.LoadRole()
	if err != nil {
		return "", err
	}
	if role.Role == checkpoint.RoleStandby && !req.Force {
		if alive, how := a.masterAlive(ctx); alive {
			return "", fmt.Errorf("%w: the master %s is alive (%s): promoting now would make two writable servers; "+
				"stop its writers first (a planned switchover), or use --force if it must be replaced anyway", failover.ErrRefused, a.cfg.Master.Addr(), how)
		}
	}
	// The promotion runs on the daemon's context: a client that gives up
	// waiting does not leave it half-done.
	type outcome struct {
		res failover.Result
		err error
	}
	done := make(chan outcome, 1)
	ended = true // the promotion's goroutine ends the lock
	go func() {
		var o outcome
		defer func() { end(); done <- o }()
		defer a.recoverOp("promote", &o.err)
		if role.Role == checkpoint.RolePromoting && !req.DryRun {
			o.res, o.err = a.failover.promoter.ResumeRequest(a.ctx, failover.Request{By: p.String(), Force: req.Force})
		} else {
			o.res, o.err = a.failover.promoter.Promote(a.ctx, failover.Request{Reason: "operator request", By: p.String(), Force: req.Force, DryRun: req.DryRun})
		}
	}()
	var res failover.Result
	select {
	case o := <-done:
		if o.err != nil {
			return "", o.err
		}
		res = o.res
	case <-ctx.Done():
		return "", errors.New("the promotion is still running: `hotstandby status` shows its step")
	}
	if res.DryRun {
		return fmt.Sprintf("dry run: a promotion now would be lossless (epoch %d would follow); nothing changed", res.Epoch), nil
	}
	msg := fmt.Sprintf("promoted: %s is the master now (epoch %d) at %s, in %s; old master: %s",
		a.cfg.Standby.Addr(), res.Epoch, res.Applied.String(), res.Took.Round(time.Millisecond), res.Fence)
	if !res.Lossless {
		msg += "; FORCED although not proven lossless: " + res.Why
	}
	return msg, nil
}

// masterAlive probes the master once on a connection of its own.
func (a *Agent) masterAlive(ctx context.Context) (bool, string) {
	dc := a.cfg.DetectConfig()
	p, err := failover.NewSQLProber(failover.SQLProberConfig{Addr: a.cfg.Master.Addr(), User: a.cfg.Master.User,
		Password: a.cfg.password, Timeout: dc.ProbeTimeout * 3, Logger: a.log,
		TLS: a.cfg.probeTLS(), TLSFallback: a.cfg.probeFallback()})
	if err != nil {
		return false, ""
	}
	defer p.Close()
	start := time.Now()
	if err := p.Probe(ctx); err != nil && !errors.Is(err, failover.ErrProbeAuth) && !errors.Is(err, failover.ErrProbeServer) {
		return false, ""
	}
	return true, fmt.Sprintf("it answered a probe in %s", time.Since(start).Round(time.Millisecond))
}

// agentStream is the receiver, for the promoter.
type agentStream struct{ a *Agent }

// StopForGood cancels the receiver and waits for it to close the relay
// log. A receiver that never ran in this process (a resumed promotion) has
// nothing to stop; its relay log was recovered at start.
func (s agentStream) StopForGood(ctx context.Context) error {
	s.a.stopStream()
	select {
	case <-s.a.recvDone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s agentStream) Durable() relay.Frontier { return s.a.recv.Durable() }

// agentDrainer is the standby's apply mode, for the promoter.
type agentDrainer struct{ a *Agent }

// Drain waits until the standby applied target, then stops applying for
// good (applyMode.drain).
func (d agentDrainer) Drain(ctx context.Context, target relay.Frontier) (binlog.Position, error) {
	return d.a.mode.drain(ctx, target)
}

// agentStandby is the standby server, for the promoter.
type agentStandby struct{ a *Agent }

// Check connects to the standby and reads read_only: it must answer before
// a promotion starts.
func (s agentStandby) Check(ctx context.Context) error {
	db, err := sql.Open("mysql", s.a.cfg.StandbyDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return fmt.Errorf("standby %s does not answer: %w", s.a.cfg.Standby.Addr(), err)
	}
	return nil
}

// MakeWritable stops the applier for good (a resumed promotion may have
// started it, and its session sets read_only=ON), removes every replication
// configuration of the standby (RESET SLAVE ALL for each connection: no
// leftover master.info can make it replicate from anyone), enables the
// semi-sync master if configured, and sets read_only=OFF, checking it took.
func (s agentStandby) MakeWritable(ctx context.Context) error {
	if err := s.a.mode.stop(ctx); err != nil {
		return fmt.Errorf("stop the standby's apply: %w", err)
	}
	db, err := sql.Open("mysql", s.a.cfg.StandbyDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("standby %s: %w", s.a.cfg.Standby.Addr(), err)
	}
	defer conn.Close()
	names, err := replicationConnections(ctx, conn)
	if err != nil {
		return err
	}
	stmts := []string{"SET SESSION sql_log_bin = 0"}
	for _, n := range names {
		q := "'" + strings.ReplaceAll(n, "'", "''") + "'"
		stmts = append(stmts, "STOP SLAVE "+q, "RESET SLAVE "+q+" ALL")
	}
	if s.a.cfg.Failover.SemiSyncMaster {
		stmts = append(stmts, "SET GLOBAL rpl_semi_sync_master_enabled = ON")
	}
	stmts = append(stmts, "SET GLOBAL read_only = OFF")
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("standby %s: %s: %w", s.a.cfg.Standby.Addr(), q, err)
		}
	}
	var ro int
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil || ro != 0 {
		return fmt.Errorf("standby %s: read_only is still %d after SET GLOBAL read_only = OFF (%v)", s.a.cfg.Standby.Addr(), ro, err)
	}
	return nil
}

// replicationConnections lists the standby's replication connections
// (SHOW ALL SLAVES STATUS), the default one as "".
func replicationConnections(ctx context.Context, conn *sql.Conn) ([]string, error) {
	rows, err := replica.QueryRows(ctx, conn, "SHOW ALL SLAVES STATUS")
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(rows))
	for _, r := range rows {
		names = append(names, r["Connection_name"])
	}
	return names, nil
}

// agentFencer fences the old master over SQL (if configured and reachable)
// and runs the STONITH command.
type agentFencer struct {
	a     *Agent
	hooks *failover.HookRunner
}

// Fence runs the SQL fence (failover.fence) and then the stonith command,
// both whatever the other did: stonith is the way left when the fence
// fails, and isolates for good a master the fence found unreachable.
func (f agentFencer) Fence(ctx context.Context) failover.Isolation {
	var iso failover.Isolation
	if f.a.cfg.Failover.Fence {
		res := failover.FenceOldMaster(ctx, f.a.cfg.MasterDSN(), 2*time.Second, f.a.log)
		iso.SQL = &res
	}
	if argv := f.a.cfg.Failover.Stonith; len(argv) > 0 {
		res := f.hooks.Run(ctx, failover.HookStonith, argv, failover.HookEvent{Reason: "promotion", OldMaster: f.a.cfg.Master.Addr(), NewMaster: f.a.cfg.Standby.Addr()})
		iso.Stonith = &res
	}
	return iso
}

// Recheck runs the SQL fence again (failover.Rechecker), within a second:
// an old master that still does not answer costs the promotion no more.
func (f agentFencer) Recheck(ctx context.Context) *failover.FenceResult {
	if !f.a.cfg.Failover.Fence {
		return nil
	}
	res := failover.FenceOldMaster(ctx, f.a.cfg.MasterDSN(), time.Second, f.a.log)
	return &res
}

// agentHooks runs the operator's hooks.
type agentHooks struct {
	a     *Agent
	hooks *failover.HookRunner
}

func (h agentHooks) event(ev failover.Event) failover.HookEvent {
	return failover.HookEvent{Reason: ev.Reason, Epoch: ev.Epoch, OldMaster: ev.OldMaster, NewMaster: ev.NewMaster, GTID: ev.GTID}
}

func (h agentHooks) PrePromote(ctx context.Context, ev failover.Event) error {
	argv := h.a.cfg.Failover.PrePromote
	if len(argv) == 0 {
		return nil
	}
	return h.hooks.Run(ctx, failover.HookPrePromote, argv, h.event(ev)).AsError()
}

func (h agentHooks) PostPromote(ctx context.Context, ev failover.Event) failover.HookResult {
	return h.run(ctx, failover.HookPostPromote, h.a.cfg.Failover.PostPromote, ev)
}

func (h agentHooks) Alert(ctx context.Context, ev failover.Event) failover.HookResult {
	return h.run(ctx, failover.HookAlert, h.a.cfg.Failover.Alert, ev)
}

func (h agentHooks) run(ctx context.Context, name string, argv []string, ev failover.Event) failover.HookResult {
	if len(argv) == 0 {
		return failover.HookResult{} // none configured
	}
	return h.hooks.Run(ctx, name, argv, h.event(ev))
}

// agentStreamView tells the detector whether the stream is down.
type agentStreamView struct {
	a       *Agent
	silence time.Duration
}

func (v agentStreamView) StreamDown(now time.Time) (bool, string) {
	st := v.a.recv.Status()
	if st.State != ingest.StateStreaming {
		why := st.State
		if st.LastError != "" {
			why += ": " + st.LastError
		}
		return true, why
	}
	if last := v.a.lastHeard(); now.Sub(last) > v.silence {
		return true, fmt.Sprintf("no packet for %s", now.Sub(last).Round(time.Millisecond))
	}
	return false, ""
}
