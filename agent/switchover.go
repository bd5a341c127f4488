package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/ingest"
)

// DefaultSwitchoverTimeout bounds a switchover's wait for the standby when
// the request names none.
const DefaultSwitchoverTimeout = 30 * time.Second

// opSwitchover is the control op "switchover": a planned change of master
// while the master is alive. It freezes the master (read_only, clients
// killed), waits until the standby has applied its last GTID, promotes
// through the recorded state machine, and with Rejoin makes the old master
// a replica of the new one.
func (a *Agent) opSwitchover(ctx context.Context, p control.Peer, req control.Request) (string, error) {
	if a.failover == nil {
		return "", errors.New("switchover: no standby: the agent has no [standby] section")
	}
	end, err := a.roleOps.begin("switchover", p.String())
	if err != nil {
		return "", err
	}
	if err := a.switchoverPreflight(ctx); err != nil {
		end()
		return "", err
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultSwitchoverTimeout
	}
	sw := &failover.Switchover{Master: liveMaster{a}, Follower: agentFollower{a}, Promoter: a.failover.promoter,
		Timeout: timeout, Log: a.log.With("component", "switchover"), Now: time.Now}
	by := p.String()
	type outcome struct {
		res failover.SwitchoverResult
		err error
	}
	done := make(chan outcome, 1)
	// The daemon's context: a client that stops waiting does not leave the
	// master frozen or the promotion half-done.
	go func() {
		var o outcome
		defer func() {
			end() // before the answer: a --rejoin takes the lock next
			done <- o
		}()
		defer a.recoverOp("switchover", &o.err)
		o.res, o.err = sw.Run(a.ctx, by)
	}()
	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		return "", errors.New("the switchover is still running: `hotstandby status` shows the role and the audit log its outcome")
	}
	if o.err != nil {
		a.auditBy("switchover", by, fmt.Sprintf("switchover from %s to %s failed: %v", a.cfg.Master.Addr(), a.cfg.Standby.Addr(), o.err))
		return "", o.err
	}
	res := o.res
	text := fmt.Sprintf("switched over: %s is the master now (epoch %d) at %s; write downtime %s (read_only ON on %s until the new master was writable; %s of it waiting for the standby); %s",
		a.cfg.Standby.Addr(), res.Promoted.Epoch, res.GTID, res.Downtime.Round(time.Millisecond), a.cfg.Master.Addr(), res.Waited.Round(time.Millisecond), res.Freeze)
	a.auditBy("switchover", by, text)
	if !req.Rejoin {
		return text + "; the old master stays read-only: `hotstandby rejoin` makes it a replica", nil
	}
	role, err := a.store.LoadRole()
	if err != nil {
		return text, err
	}
	endRejoin, err := a.roleOps.begin("rejoin", by)
	if err != nil {
		return "", fmt.Errorf("%s; but the rejoin of the old master did not start (it stays read-only): %w", text, err)
	}
	defer endRejoin()
	msg, err := a.rejoin(ctx, role, by, false)
	if err != nil {
		return "", fmt.Errorf("%s; but the rejoin of the old master failed (it stays read-only): %w", text, err)
	}
	return text + "\n" + msg, nil
}

// switchoverPreflight checks, before anything changes, that a switchover
// can happen now: the agent is a standby, the master answers, the stream
// runs and the applier is not stopped.
func (a *Agent) switchoverPreflight(ctx context.Context) error {
	role, err := a.store.LoadRole()
	if err != nil {
		return err
	}
	switch role.Role {
	case checkpoint.RoleMaster:
		return fmt.Errorf("%w: already promoted (epoch %d): the standby is the master; nothing to switch over", failover.ErrRefused, role.Epoch)
	case checkpoint.RolePromoting:
		return fmt.Errorf("%w: the promotion of epoch %d is in progress (step %s): `hotstandby promote` resumes it", failover.ErrRefused, role.Epoch, role.Step)
	}
	if alive, _ := a.masterAlive(ctx); !alive {
		return fmt.Errorf("%w: the master %s does not answer: a switchover needs a live master; if it is dead, use `hotstandby promote`", failover.ErrRefused, a.cfg.Master.Addr())
	}
	if st := a.recv.Status(); st.State != ingest.StateStreaming {
		return fmt.Errorf("%w: the agent is not streaming from the master (%s %s): a switchover waits for the standby to catch up, which needs the stream", failover.ErrRefused, st.State, st.LastError)
	}
	if _, stoppedOn, err := a.mode.applied(); err != nil {
		return fmt.Errorf("%w: the standby's applied position is not known: %v", failover.ErrRefused, err)
	} else if stoppedOn != "" {
		return fmt.Errorf("%w: the applier is stopped on an error (%s): fix or skip it first", failover.ErrRefused, stoppedOn)
	}
	return nil
}

// liveMaster is the master of a switchover, over the agent's [master] user.
type liveMaster struct{ a *Agent }

// Freeze reuses the fence: read_only=ON verified, client connections
// killed, replication kept.
func (m liveMaster) Freeze(ctx context.Context) (failover.FenceResult, error) {
	res := failover.FenceOldMaster(ctx, m.a.cfg.MasterDSN(), 5*time.Second, m.a.log)
	if !res.Fenced() {
		if res.Err != nil {
			return res, res.Err
		}
		return res, errors.New(res.Summary())
	}
	return res, nil
}

func (m liveMaster) Thaw(ctx context.Context) error {
	db, err := sql.Open("mysql", m.a.cfg.MasterDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "SET GLOBAL read_only = OFF"); err != nil {
		return err
	}
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil || ro != 0 {
		return fmt.Errorf("read_only reads back %d (%v)", ro, err)
	}
	return nil
}

func (m liveMaster) LastGTID(ctx context.Context) (string, error) {
	db, err := sql.Open("mysql", m.a.cfg.MasterDSN())
	if err != nil {
		return "", err
	}
	defer db.Close()
	var pos string
	err = db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos)
	return pos, err
}

// agentFollower tells the switchover how far the agent and the standby are.
type agentFollower struct{ a *Agent }

func (f agentFollower) Applied(gtid string) (bool, string, error) {
	want, err := binlog.ParseGTIDSet(binlog.MariaDB, gtid)
	if err != nil {
		return false, "", err
	}
	recv := f.a.recv.Status()
	appliedSet, stoppedOn, err := f.a.mode.applied()
	if err != nil {
		return false, "", err
	}
	if stoppedOn != "" {
		return false, "", fmt.Errorf("the applier stopped on an error: %s", stoppedOn)
	}
	where := fmt.Sprintf("received %s, applied %s", recv.Received.String(), appliedSet.String())
	got, err := recv.Received.GTID.Contains(want)
	if err != nil || !got {
		return false, where, err
	}
	applied, err := appliedSet.Contains(want)
	return applied, where, err
}
