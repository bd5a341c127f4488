package replica

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// drainWait is how long one MASTER_GTID_WAIT of Drain waits before the
// replication threads are read again.
const drainWait = time.Second

// Drain is the promotion's drain: it waits until the standby has applied
// every transaction up to frontier (a MariaDB GTID set, gtid_slave_pos
// form; "" means nothing to wait for), with MASTER_GTID_WAIT, then ends
// replication for good with STOP SLAVE; RESET SLAVE ALL, so that no
// replication configuration survives the promotion. Run returns ErrDrained
// afterwards. A SQL thread stopped with an error fails the drain
// (ErrSQLThread, naming the GTID): the frontier cannot be reached until the
// transaction is skipped or the standby fixed. ctx bounds the wait.
func (r *Replica) Drain(ctx context.Context, frontier string) error {
	if _, err := binlog.ParseGTIDSet(binlog.MariaDB, frontier); err != nil {
		return fmt.Errorf("replica: drain: frontier %q: %w", frontier, err)
	}
	r.ctl.Lock()
	defer r.ctl.Unlock()
	if r.Status().State == StateDrained {
		return nil
	}
	for {
		var res int
		err := r.db.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, ?)", frontier, drainWait.Seconds()).Scan(&res)
		if err != nil {
			return fmt.Errorf("replica: drain to %s: MASTER_GTID_WAIT: %w", frontier, err)
		}
		if res == 0 {
			break
		}
		if err := r.watch(ctx, true); err != nil { // true: an IO thread that stopped is started again
			return fmt.Errorf("replica: drain to %s: %w", frontier, err)
		}
		st := r.Status()
		if st.SQLRunning == "No" && st.LastSQLErrno != 0 {
			return fmt.Errorf("%w: drain to %s: %s", ErrSQLThread, frontier, st.Error())
		}
		r.log.Info("draining: waiting for the standby to apply the safe frontier", "frontier", frontier,
			"applied", st.Applied, "received", st.Received)
		if ctx.Err() != nil {
			return fmt.Errorf("replica: drain to %s: applied %s: %w", frontier, st.Applied, ctx.Err())
		}
	}
	for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL"} {
		if _, err := r.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replica: drain: standby %s: %s: %w", r.standbyAddr(), q, r.scrubErr(err))
		}
	}
	var applied string
	if err := r.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&applied); err != nil {
		return fmt.Errorf("replica: drain: read gtid_slave_pos: %w", err)
	}
	r.update(func(s *Status) {
		s.State, s.Applied, s.IORunning, s.SQLRunning = StateDrained, applied, "No", "No"
		s.BehindTransactions, s.BehindSeconds = 0, 0
	})
	r.log.Info("drained: every transaction up to the frontier is applied; replication ended (STOP SLAVE; RESET SLAVE ALL)",
		"frontier", frontier, "applied", applied)
	return nil
}

// Skip skips the transaction gtid that the SQL thread is stopped on, and
// only that one: STOP SLAVE; it checks the failing GTID is gtid; it puts
// gtid on the standby with a statement that changes nothing (so its
// gtid_binlog_pos carries it, as in direct mode); it sets gtid_slave_pos
// past exactly gtid; START SLAVE. Never SQL_SLAVE_SKIP_COUNTER. The caller
// records the skip in the audit log once Skip returns nil.
func (r *Replica) Skip(ctx context.Context, gtid string) error {
	g, err := binlog.ParseGTID(gtid)
	if err != nil {
		return fmt.Errorf("replica: skip: %w", err)
	}
	r.ctl.Lock()
	defer r.ctl.Unlock()
	if r.Status().State == StateDrained {
		return fmt.Errorf("%w: skip %s refused", ErrDrained, gtid)
	}
	if err := r.watch(ctx, false); err != nil {
		return fmt.Errorf("replica: skip %s: %w", gtid, err)
	}
	if err := r.checkFailing(gtid); err != nil {
		return err
	}
	if _, err := r.db.ExecContext(ctx, "STOP SLAVE"); err != nil {
		return fmt.Errorf("replica: skip %s: STOP SLAVE: %w", gtid, r.scrubErr(err))
	}
	if err := r.watch(ctx, false); err != nil {
		return fmt.Errorf("replica: skip %s: %w", gtid, err)
	}
	if err := r.checkFailing(gtid); err != nil {
		return err
	}
	st := r.Status()
	applied, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err != nil {
		return fmt.Errorf("replica: skip %s: gtid_slave_pos: %w", gtid, err)
	}
	for _, have := range applied.MariaDBGTIDs() {
		if have.Domain == g.Domain && have.Seq >= g.Seq {
			return fmt.Errorf("%w: %s: gtid_slave_pos %s already covers it", ErrNotFailing, gtid, st.Applied)
		}
	}
	if err := r.putEmpty(ctx, g); err != nil {
		return err
	}
	next := applied.AddMariaDB(g).String()
	for _, q := range []string{"SET GLOBAL gtid_slave_pos = " + quote(next), "START SLAVE"} {
		if _, err := r.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replica: skip %s: %s: %w", gtid, q, r.scrubErr(err))
		}
	}
	r.log.Warn("skipped transaction by operator request: gtid_slave_pos moved past it, replication started again",
		"gtid", gtid, "gtid_slave_pos", next, "error", st.Error())
	if err := r.watch(ctx, false); err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("standby replication after the skip: "+r.scrub(err.Error()), "gtid", gtid)
	}
	return nil
}

// checkFailing returns ErrNotFailing unless the SQL thread is stopped with
// an error on gtid.
func (r *Replica) checkFailing(gtid string) error {
	st := r.Status()
	if st.SQLRunning == "No" && st.LastSQLErrno != 0 && st.FailedGTID == gtid {
		return nil
	}
	if st.SQLRunning == "No" && st.LastSQLErrno != 0 {
		return fmt.Errorf("%w: %s: it is stopped on GTID %q: %s", ErrNotFailing, gtid, st.FailedGTID, st.Error())
	}
	return fmt.Errorf("%w: %s (SQL thread running: %s, no error)", ErrNotFailing, gtid, st.SQLRunning)
}

// putEmpty commits, on one session of the standby, a statement that changes
// nothing with the GTID g, so that the standby's binary log carries it.
// (MariaDB does not binlog an empty BEGIN/COMMIT; DROP TABLE IF EXISTS of a
// table that does not exist is always binlogged.)
func (r *Replica) putEmpty(ctx context.Context, g binlog.GTID) error {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("replica: skip %s: %w", g, err)
	}
	defer func() {
		// The pooled session gets its own identity back.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION gtid_domain_id=@@GLOBAL.gtid_domain_id, SESSION server_id=@@GLOBAL.server_id")
		conn.Close()
	}()
	for _, q := range []string{
		fmt.Sprintf("SET SESSION gtid_domain_id=%d, SESSION server_id=%d", g.Domain, g.Server),
		fmt.Sprintf("SET SESSION gtid_seq_no=%d", g.Seq), // its own statement: checked under the new domain
		"DROP TABLE IF EXISTS mysql.hotstandby_no_such_table /* hotstandby: skipped transaction " + g.String() + " by operator request */",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("replica: skip %s: %s: %w", g, q, err)
		}
	}
	return nil
}
