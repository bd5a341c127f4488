package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/applier"
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
}

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
		Gate:      failover.ProofGate{Store: a.store, LastHeard: a.lastHeard, Now: time.Now},
		OldMaster: old, OldAddr: a.cfg.Master.Addr(), NewAddr: a.cfg.Standby.Addr(),
		Log: a.log.With("component", "failover"), Now: time.Now,
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

// runDetector acts on the detector's verdicts until ctx ends: in auto mode
// it promotes (the gate may refuse), in manual mode it alerts.
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
			end, err := a.roleOps.begin("promotion", "detector")
			if err != nil {
				a.log.Error("the master is dead, but the automatic promotion waits", "reason", v.Reason, "err", err)
				continue
			}
			a.log.Error("the master is dead: promoting", "reason", v.Reason)
			// The daemon's context, not ctx: the promotion stops the stream
			// (and with it ctx) on its way.
			_, err = fp.promoter.Promote(a.ctx, failover.Request{Reason: "master dead: " + v.Reason, By: "detector"})
			end()
			if err != nil {
				a.log.Error("automatic promotion did not happen", "err", err)
				continue
			}
			return // promoted: nothing left to detect
		}
	}
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
		if role.Role == checkpoint.RolePromoting && !req.DryRun {
			o.res, o.err = a.failover.promoter.Resume(a.ctx)
		} else {
			o.res, o.err = a.failover.promoter.Promote(a.ctx, failover.Request{Reason: "operator request", By: p.String(), Force: req.Force, DryRun: req.DryRun})
		}
		end()
		done <- o
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

// agentDrainer is the applier, for the promoter.
type agentDrainer struct{ a *Agent }

// Drain waits until the applier caught up with target, then stops it for
// good.
func (d agentDrainer) Drain(ctx context.Context, target relay.Frontier) (binlog.Position, error) {
	if d.a.replica != nil {
		return d.a.replica.drain(ctx, target)
	}
	ap := d.a.applier
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		st := ap.Status()
		if st.State == applier.StateError {
			return binlog.Position{}, fmt.Errorf("the applier is stopped on an error: %s: fix the standby or skip the transaction (hotstandby skip), then run `hotstandby promote` again", st.LastError)
		}
		if atLeast(st.CaughtUp, target) {
			break
		}
		select {
		case <-ctx.Done():
			return binlog.Position{}, ctx.Err()
		case <-t.C:
		}
	}
	d.a.stopApplier()
	select {
	case <-d.a.applierDone:
	case <-ctx.Done():
		return binlog.Position{}, ctx.Err()
	}
	return ap.Status().Applied, nil
}

// atLeast reports whether a is at or past b in the relay log.
func atLeast(a, b relay.Frontier) bool {
	return a.Segment > b.Segment || (a.Segment == b.Segment && a.Offset >= b.Offset)
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

// MakeWritable removes every replication configuration of the standby
// (RESET SLAVE ALL for each connection: no leftover master.info can make it
// replicate from anyone), enables the semi-sync master if configured, and
// sets read_only=OFF, checking it took.
func (s agentStandby) MakeWritable(ctx context.Context) error {
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

func (f agentFencer) Fence(ctx context.Context) string {
	var parts []string
	if f.a.cfg.Failover.Fence {
		res := failover.FenceOldMaster(ctx, f.a.cfg.MasterDSN(), 2*time.Second, f.a.log.With("component", "fence"))
		parts = append(parts, res.Summary())
	}
	if argv := f.a.cfg.Failover.Stonith; len(argv) > 0 {
		res := f.hooks.Run(ctx, failover.HookStonith, argv, failover.HookEvent{Reason: "promotion", OldMaster: f.a.cfg.Master.Addr(), NewMaster: f.a.cfg.Standby.Addr()})
		parts = append(parts, res.Summary())
	}
	if len(parts) == 0 {
		return "not fenced (failover.fence = false and no stonith command)"
	}
	return strings.Join(parts, "; ")
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
	if res := h.hooks.Run(ctx, failover.HookPrePromote, argv, h.event(ev)); !res.OK() {
		return errors.New(res.Summary())
	}
	return nil
}

func (h agentHooks) PostPromote(ctx context.Context, ev failover.Event) string {
	return h.run(ctx, failover.HookPostPromote, h.a.cfg.Failover.PostPromote, ev)
}

func (h agentHooks) Alert(ctx context.Context, ev failover.Event) string {
	return h.run(ctx, failover.HookAlert, h.a.cfg.Failover.Alert, ev)
}

func (h agentHooks) run(ctx context.Context, name string, argv []string, ev failover.Event) string {
	if len(argv) == 0 {
		return ""
	}
	return h.hooks.Run(ctx, name, argv, h.event(ev)).Summary()
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
