package applier

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// rollbackTimeout bounds the ROLLBACK of a transaction that failed.
const rollbackTimeout = 10 * time.Second

// session is one connection to the standby and one pass over the relay log.
type session struct {
	a    *Applier
	conn *sql.Conn

	cur    *relay.Cursor
	fdeSeg uint64 // the segment whose format description went to the server

	// the transaction being applied
	tr     *binlog.TxnTracker
	gtid   binlog.GTID
	skip   bool            // already on the standby: read through it
	rows   b64Stream       // the row events of the statement being built
	pieces int             // pieces of it already in @hs_rows on the server
	sent   int64           // characters of it sent there
	queued strings.Builder // statements held for one round trip
	held   []heldTxn       // transactions whose COMMIT is in queued, in order
	state  gtidState       // the standby's GTID state as the session knows it
	tables []string        // tables the current transaction touches
	table  string
	db     string // the session's current default database
	// gtidSrc is the gtid_domain_id and server_id the session last set
	// (known: set and not changed since): a GTID with the same ones needs
	// only gtid_seq_no. Forgotten after anything that may change them.
	gtidSrc struct {
		domain, server uint32
		known          bool
	}

	follow follower // the first applied transaction of each domain follows the standby
	// recheck: the session started while stopped on a StopError; the status
	// keeps that error until the session makes progress (progressed).
	recheck bool
}

// exec runs q on the session's connection. The driver gets a context that
// cannot end: with one that can, go-sql-driver hands it to its watcher
// goroutine around every statement (two wake-ups per round trip). A
// statement still ends when ctx does: Run closes the connection then
// (netConns), and the driver's read and write timeouts bound it otherwise.
func (s *session) exec(ctx context.Context, q string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.conn.ExecContext(context.WithoutCancel(ctx), q)
	return err
}

// setup prepares the session: replica-like behaviour for BINLOG statements,
// and the standby made read-only for everyone without READ_ONLY ADMIN.
func (s *session) setup(ctx context.Context) error {
	// A statement's row events go in one BINLOG statement, which may be
	// large: allow what a native replica's SQL thread allows
	// (slave_max_allowed_packet). A session sees the global value from its
	// next connection on.
	var maxPacket int64
	if err := s.conn.QueryRowContext(ctx, "SELECT @@SESSION.max_allowed_packet").Scan(&maxPacket); err != nil {
		return fmt.Errorf("applier: standby setup: %w", err)
	}
	if maxPacket < maxStatement {
		if err := s.exec(ctx, fmt.Sprintf("SET GLOBAL max_allowed_packet = %d", maxStatement)); err != nil {
			return fmt.Errorf("applier: standby setup: raise max_allowed_packet: %w", err)
		}
		_ = s.conn.Raw(func(any) error { return driver.ErrBadConn }) // reconnect with it
		s.a.log.Info("standby max_allowed_packet raised to 1 GiB (large BINLOG statements); reconnecting")
		return errReconnect
	}
	for _, q := range []string{
		"SET SESSION pseudo_slave_mode = 1",
		"SET @hs_none = ''", // the empty second fragment of BINLOG @hs_rows, @hs_none
		"SET SESSION sql_log_bin = 1",
		"SET GLOBAL read_only = ON",
	} {
		if err := s.exec(ctx, q); err != nil {
			return fmt.Errorf("applier: standby setup (%s): %w", q, err)
		}
	}
	return nil
}

// earlierSessions settles what an earlier session of the applier left on
// the standby before this one reads the standby's GTID state: a thread of
// the applier's user, other than this one, in an InnoDB transaction that
// changed rows. Its agent was killed or its connection lost, and the server
// is not done with it yet:
//   - running a statement: its last round trip, whose leading COMMIT may
//     still land. Reading the state before then misses that transaction,
//     applies it again, and stops on what refuses the second copy (its row
//     lock, then a duplicate key; gtid_strict_mode), an error no skip fixes.
//     The session waits until the statement has ended;
//   - sleeping: the server has not seen its client go (a host that died, a
//     cut network). Its COMMIT never comes, it can only roll back, and its
//     row locks would hold this session's statements until
//     innodb_lock_wait_timeout and stop the applier. The session kills it.
//
// Other threads of the user (verify's reads) change no rows and are left
// alone. Without the PROCESS privilege the check cannot see other threads'
// transactions; it is skipped with a warning.
func (s *session) earlierSessions(ctx context.Context) error {
	const q = "SELECT p.id, p.command, IFNULL(p.state, ''), p.time, LEFT(IFNULL(p.info, ''), 80) " +
		"FROM information_schema.processlist p JOIN information_schema.innodb_trx x ON x.trx_mysql_thread_id = p.id " +
		"WHERE p.user = SUBSTRING_INDEX(USER(), '@', 1) AND p.id <> CONNECTION_ID() AND x.trx_rows_modified > 0"
	logged := map[int64]bool{}
	for {
		rows, err := s.conn.QueryContext(ctx, q)
		if err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1142 || me.Number == 1044) {
				s.a.log.Warn("cannot look for an earlier session's transaction on the standby (the applier's user lacks PROCESS): a restart of the agent during a round trip may stop the applier on a duplicate", "err", err)
				return nil
			}
			return fmt.Errorf("applier: look for earlier sessions on the standby: %w", err)
		}
		running := 0
		var kill []int64
		for rows.Next() {
			var id, secs int64
			var command, state, info string
			if err := rows.Scan(&id, &command, &state, &secs, &info); err != nil {
				rows.Close()
				return fmt.Errorf("applier: look for earlier sessions on the standby: %w", err)
			}
			if command == "Sleep" {
				kill = append(kill, id)
				s.a.log.Warn("ending an abandoned transaction of an earlier session on the standby (its client is gone; it can only roll back)", "thread", id, "idle_seconds", secs)
				continue
			}
			running++
			if !logged[id] {
				logged[id] = true
				s.a.log.Info("waiting for an earlier session's statement on the standby to end before reading its GTID state", "thread", id, "command", command, "state", state, "seconds", secs, "statement", info)
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("applier: look for earlier sessions on the standby: %w", err)
		}
		for _, id := range kill {
			var me *mysql.MySQLError
			// 1094: gone meanwhile.
			if err := s.exec(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil && !(errors.As(err, &me) && me.Number == 1094) {
				return fmt.Errorf("applier: end an earlier session's transaction on the standby (thread %d): %w", id, err)
			}
		}
		if running == 0 && len(kill) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *session) readState(ctx context.Context) (gtidState, error) {
	var v string
	if err := s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state").Scan(&v); err != nil {
		return nil, fmt.Errorf("applier: read standby gtid_binlog_state: %w", err)
	}
	st, err := parseGTIDState(v)
	if err != nil {
		return nil, fmt.Errorf("applier: standby gtid_binlog_state %q: %w", v, err)
	}
	var pos string
	if err := s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return nil, fmt.Errorf("applier: read standby gtid_binlog_pos: %w", err)
	}
	set, err := binlog.ParseGTIDSet(binlog.MariaDB, pos)
	if err != nil {
		return nil, fmt.Errorf("applier: standby gtid_binlog_pos %q: %w", pos, err)
	}
	s.a.update(func(st *Status) { st.Applied.GTID = set })
	return st, nil
}

// setGTID makes the next transaction of the session carry g.
func (s *session) setGTID(ctx context.Context, g binlog.GTID) error {
	return s.exec(ctx, s.gtidStatement(g))
}

// gtidStatement returns the statement that gives the session's next
// transaction g: only gtid_seq_no when the session's gtid_domain_id and
// server_id are g's already.
func (s *session) gtidStatement(g binlog.GTID) string {
	if s.gtidSrc.known && s.gtidSrc.domain == g.Domain && s.gtidSrc.server == g.Server {
		return "SET SESSION gtid_seq_no = " + itoa(g.Seq)
	}
	s.gtidSrc.domain, s.gtidSrc.server, s.gtidSrc.known = g.Domain, g.Server, true
	return gtidStatement(g)
}

// forgetGTIDSource makes the next GTID statement set all three variables.
func (s *session) forgetGTIDSource() { s.gtidSrc.known = false }

// applyEmpty puts the given GTID on the standby with a statement that changes
// nothing: the recorded way to skip a transaction. (MariaDB does not binlog
// an empty BEGIN/COMMIT, so it would leave no GTID; DROP TABLE IF EXISTS of
// a table that does not exist is always binlogged.)
func (s *session) applyEmpty(ctx context.Context, gtid string) error {
	g, err := binlog.ParseGTID(gtid)
	if err != nil {
		return err
	}
	for _, f := range []func() error{
		func() error { return s.setGTID(ctx, g) },
		func() error {
			return s.exec(ctx, "DROP TABLE IF EXISTS mysql.hotstandby_no_such_table /* hotstandby: skipped transaction "+g.String()+" by operator request */")
		},
	} {
		if err := f(); err != nil {
			return fmt.Errorf("applier: skip %s: %w", gtid, err)
		}
	}
	return nil
}

// apply reads and applies durable transactions until an error.
func (s *session) apply(ctx context.Context, state gtidState) error {
	s.state = state
	s.cur = relay.NewCursor(s.a.cfg.RelayDir, s.a.Status().Frontier)
	defer s.cur.Close()
	s.tr = binlog.NewTxnTracker(binlog.NewGTIDSet(binlog.MariaDB))
	lastErrantCheck := time.Now()
	for {
		durable := s.a.src.Durable()
		ev, after, err := s.cur.Next(durable)
		if errors.Is(err, relay.ErrCaughtUp) {
			if err := s.flushQueue(ctx); err != nil { // never wait with statements held
				s.abort()
				return s.fail(s.a.Status().Frontier, "transaction", err)
			}
			s.progressed()
			s.a.update(func(st *Status) { st.State, st.CaughtUp = StateWaiting, durable })
			if time.Since(lastErrantCheck) > 2*time.Second {
				// Between transactions: look for writes that reached the
				// standby from anywhere but the agent.
				if now, err := s.readState(ctx); err == nil {
					s.a.checkErrant(now)
				}
				lastErrantCheck = time.Now()
			}
			select {
			case <-s.a.src.Changed():
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			s.a.update(func(st *Status) { st.State = StateApplying })
			continue
		}
		if err != nil {
			return fmt.Errorf("applier: %w", err)
		}
		if err := s.event(ctx, ev, after); err != nil {
			err = s.settle(ctx, err)
			s.abort()
			return err
		}
	}
}

// abort forgets what the session holds and rolls back the open
// transaction, after an error.
func (s *session) abort() {
	s.rows, s.pieces, s.sent = b64Stream{}, 0, 0
	s.queued.Reset()
	s.held = s.held[:0]
	// Not the session's ctx: it may be what ended. A deadline of its own,
	// so that a standby that stopped answering cannot hold the applier past
	// the connection's (long) read timeout.
	s.forgetGTIDSource()
	rctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
	_, _ = s.conn.ExecContext(rctx, "ROLLBACK")
	cancel()
}

// settle sends the COMMITs still held before the session stops on err, an
// error of a later transaction (or of the standby's state): the frontier
// must never stop behind a transaction that only waited for its COMMIT, and
// a skip of the failing transaction must never leave an earlier one
// rolled back (the skip's GTID would then cover it). A held COMMIT that
// fails now is the earlier, and so the reported, error.
func (s *session) settle(ctx context.Context, err error) error {
	if len(s.held) == 0 {
		return err
	}
	ferr := s.flushQueue(ctx)
	var ae *ApplyError
	if ferr != nil && (errors.As(ferr, &ae) || IsConnError(ferr)) {
		return ferr
	}
	return err
}
