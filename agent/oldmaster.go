package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/failover"
)

// oldMasterWatch is the promoted agent's watch of the old master, set once
// the role is master (nil before, and without failover.watch_old_master).
type oldMasterWatch struct {
	w atomic.Pointer[failover.OldMasterWatch]
}

// startOldMasterWatch starts, in every role, the goroutine that waits for
// the master role (a promotion in this run, or a promoted agent's start) and
// then keeps the old master fenced until it rejoins (failover.OldMasterWatch).
func (a *Agent) startOldMasterWatch(ctx context.Context, wg *sync.WaitGroup) {
	if a.failover == nil || !a.cfg.Failover.WatchOldMaster {
		return
	}
	// What the watch needs of the configuration, read now: Config's
	// methods copy it whole.
	dsn, sameAddr := a.cfg.MasterDSN(), a.cfg.Master.Addr() == a.cfg.Standby.Addr()
	timeout := max(time.Second, 3*a.cfg.Failover.ProbeTimeout.Duration)
	wg.Add(1)
	go func() { defer wg.Done(); a.watchOldMaster(ctx, dsn, sameAddr, timeout) }()
}

// watchOldMaster waits for the master role, then runs the watch.
func (a *Agent) watchOldMaster(ctx context.Context, dsn string, sameAddr bool, timeout time.Duration) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	var role checkpoint.Role
	for {
		r, err := a.store.LoadRole()
		if err == nil && r.Role == checkpoint.RoleMaster {
			role = r
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	if role.Rejoined != "" {
		return // the old master is a replica of this one
	}
	if sameAddr {
		a.log.Warn("old master watch not started: [master] and [standby] name the same address")
		return
	}
	id := role.OldMaster.ServerID
	if st, err := a.store.Load(); id == 0 && err == nil && st.Identity != nil {
		id = st.Identity.ServerID
	}
	w := &failover.OldMasterWatch{
		DSN: dsn, ServerID: id, Timeout: timeout,
		Done: func() (bool, string) {
			r, err := a.store.LoadRole()
			if err != nil || r.Epoch != role.Epoch || r.Role != checkpoint.RoleMaster {
				return true, fmt.Sprintf("the role changed (%v)", err)
			}
			if r.Rejoined != "" {
				return true, "the old master rejoined: " + r.Rejoined
			}
			return false, ""
		},
		Paused: a.rejoinRunning,
		Lock: func() (func(), bool) {
			end, err := a.roleOps.begin("fence of the returning old master", "old-master watch")
			return end, err == nil
		},
		OnEvent: func(ev failover.OldMasterEvent) { a.oldMasterEvent(ctx, role.Epoch, ev) },
		Log:     a.log,
	}
	a.oldWatch.w.Store(w)
	w.Run(ctx)
}

// rejoinRunning reports that a rejoin holds the role lock: it fences the
// old master itself, and the watch must not kill its connection.
func (a *Agent) rejoinRunning() bool {
	a.roleOps.mu.Lock()
	defer a.roleOps.mu.Unlock()
	return a.roleOps.name == "rejoin"
}

// oldMasterEvent audits and alerts what the watch did.
func (a *Agent) oldMasterEvent(ctx context.Context, epoch uint64, ev failover.OldMasterEvent) {
	text := ev.Summary()
	if err := a.store.AuditBy("old-master", "old-master watch", text, time.Now()); err != nil {
		a.log.Error("audit log not written", "err", err, "text", text)
	}
	if ev.Attempt > 1 {
		return // alerted at the first failure
	}
	agentHooks{a, a.failover.hooks}.Alert(ctx, failover.Event{Reason: text, Epoch: epoch,
		OldMaster: a.cfg.Master.Addr(), NewMaster: a.cfg.Standby.Addr()})
}

// oldMasterLine is the watch's line for status, "" without a watch.
func (a *Agent) oldMasterLine() string {
	w := a.oldWatch.w.Load()
	if w == nil {
		return ""
	}
	v := w.View()
	line := "old master watch: " + v.State
	if v.Last != "" {
		line += "; last: " + v.Last + " at " + v.LastAt.Local().Format("15:04:05.000")
	}
	return line
}

// graceLimit caps the detector's restart grace where the gate stops
// proving a promotion lossless: the master's semi-sync timeout after its
// last word (as the gate reckons it), less a margin for the promotion's
// start (a fifth of the timeout, at least 1 s).
func (a *Agent) graceLimit() (time.Time, string) {
	proof, _, err := a.store.SemiSync()
	if err != nil || proof == nil || proof.Timeout <= 0 {
		return time.Time{}, "" // the gate refuses anyway; nothing to keep
	}
	heard := a.lastHeard()
	if heard.Before(proof.At) {
		heard = proof.At
	}
	margin := min(max(proof.Timeout/5, time.Second), proof.Timeout)
	return heard.Add(proof.Timeout - margin), fmt.Sprintf("the master's %s semi-sync timeout after its last word, less %s for the promotion",
		proof.Timeout, margin)
}
