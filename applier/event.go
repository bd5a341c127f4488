package applier

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// event applies one relay event. after is the frontier at its end.
func (s *session) event(ctx context.Context, ev []byte, after relay.Frontier) error {
	h, _ := binlog.ParseHeader(ev)
	checksummed := s.cur.Checksummed()
	boundary, err := s.tr.Feed(ev, checksummed)
	if err != nil {
		return s.fail(after, "relay event", err)
	}
	if h.Type == binlog.MariaGTIDEvent {
		g, standalone, _, err := binlog.MariaGTID(ev, h)
		if err != nil {
			return s.fail(after, "GTID event", err)
		}
		s.gtid, s.table, s.skip = g, "", s.state.has(g)
		if err := s.followCheck(g, s.skip, after.Pos.FilePos); err != nil {
			return err
		}
		if s.skip {
			return nil
		}
		s.tables = s.tables[:0]
		if err := s.queue(ctx, s.gtidStatement(g)); err != nil {
			return s.fail(after, "set GTID", err)
		}
		if !standalone {
			if err := s.queue(ctx, "BEGIN"); err != nil {
				return s.fail(after, "BEGIN", err)
			}
		}
		return nil
	}
	if s.skip {
		if boundary {
			// The frontier moves in order: a COMMIT still held goes first.
			if err := s.flushQueue(ctx); err != nil {
				return s.fail(after, "transaction", err)
			}
			s.skip = false
			s.done(s.gtid, after, h.Timestamp, false)
			s.gtid = binlog.GTID{}
		}
		return nil
	}
	if !s.tr.InTransaction() && !boundary {
		return nil
	}
	switch {
	case binlog.IsRowsEvent(h.Type):
		if h.Type == binlog.TableMapEvent {
			if db, t, err := binlog.TableMapName(ev); err == nil {
				s.table = db + "." + t
				s.noteTable(s.table)
			}
		}
		// A statement's table maps and rows events go to the server in one
		// BINLOG statement, as mariadb-binlog writes them: split across two,
		// the server forgets the table maps and silently drops the rows.
		// The events are base64-encoded as they come (no raw copy kept).
		if err := s.writeRows(ctx, ev); err != nil {
			return s.fail(after, "rows of "+s.table, err)
		}
		// The statements of a small transaction share one BINLOG
		// statement (the server ends each at its STMT_END flag, as its SQL
		// thread does); a large one is applied statement by statement.
		if h.Type != binlog.TableMapEvent && binlog.RowsStmtEnd(ev) && (s.pieces > 0 || s.rows.pending() >= combineLimit) {
			if err := s.flush(ctx, after); err != nil {
				return err
			}
		}
	case h.Type == binlog.XIDEvent:
		// [COMMIT of the previous transaction;] SET GTID; BEGIN; BINLOG ...
		// go in one round trip: a BINLOG statement ends it.
		if err := s.flush(ctx, after); err != nil {
			return err
		}
		// This COMMIT leads the next round trip; the transaction is done
		// once that returns (flushQueue).
		s.held = append(s.held, heldTxn{gtid: s.gtid, after: after, what: s.txnWhat(), ts: h.Timestamp})
		s.gtid = binlog.GTID{}
		if err := s.queue(ctx, "COMMIT"); err != nil {
			return s.fail(after, "transaction", err)
		}
		return nil
	case h.Type == binlog.QueryEvent:
		if err := s.flush(ctx, after); err != nil {
			return err
		}
		if err := s.flushQueue(ctx); err != nil {
			return s.fail(after, s.txnWhat(), err)
		}
		// A Query event is decoded whole or refused: an unknown or cut
		// status variable stops the applier at this event rather than
		// replaying the statement with part of its session context.
		q, err := binlog.ParseQuery(ev, checksummed)
		if err != nil {
			return s.fail(after, "query event", err)
		}
		if err := replayable(q); err != nil {
			return s.fail(after, abbrev(q.Text), err)
		}
		if err := s.query(ctx, q, boundary); err != nil {
			return s.fail(after, abbrev(q.Text), err)
		}
	case h.Type == binlog.IntvarEvent:
		if err := s.flush(ctx, after); err != nil {
			return err
		}
		if err := s.flushQueue(ctx); err != nil {
			return s.fail(after, s.txnWhat(), err)
		}
		if err := s.intvar(ctx, ev); err != nil {
			return s.fail(after, "INTVAR event", err)
		}
	case h.Type == binlog.RandEvent:
		if len(ev) < binlog.HeaderLen+16 {
			return s.fail(after, "RAND event", binlog.ErrShortEvent)
		}
		if err := s.flush(ctx, after); err != nil {
			return err
		}
		b := ev[binlog.HeaderLen:]
		q := fmt.Sprintf("SET @@RAND_SEED1=%d, @@RAND_SEED2=%d", binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]))
		if err := s.queue(ctx, q); err != nil {
			return s.fail(after, "RAND event", err)
		}
	case h.Type == binlog.MariaAnnotateRows, h.Type == binlog.RotateEvent, h.Type == binlog.StopEvent,
		h.Type == binlog.MariaGTIDList, h.Type == binlog.MariaBinlogCheckpoint, h.Type == binlog.FormatDescriptionEvent:
		// nothing to apply
	default:
		return s.fail(after, fmt.Sprintf("event type %d", h.Type), fmt.Errorf("the applier does not support this event (statement-based replication with user variables or XA?); use binlog_format=ROW"))
	}
	if boundary && s.gtid.Seq != 0 {
		s.done(s.gtid, after, h.Timestamp, true)
		s.gtid = binlog.GTID{}
	}
	return nil
}

// heldTxn is a transaction whose COMMIT waits in the queue for the next
// round trip: everything else of it is on the standby, uncommitted.
type heldTxn struct {
	gtid  binlog.GTID
	after relay.Frontier // the frontier after its XID event
	what  string         // its tables, for an error
	ts    uint32         // the master's commit timestamp
}

// done records a transaction that is on the standby, committed: g, ending
// at after, committed on the master at ts; applied says the session applied
// it (not found there).
func (s *session) done(g binlog.GTID, after relay.Frontier, ts uint32, applied bool) {
	if k := [2]uint32{g.Domain, g.Server}; g.Seq > s.state[k] {
		s.state[k] = g.Seq // only ever forward: skipped transactions are older
	}
	s.a.update(func(st *Status) {
		// The frontier's GTIDs are the relay log's up to it (applied, or
		// found on the standby), never GTIDs that reached the standby from
		// elsewhere: what the standby must cover at the next session start.
		relayGTIDs := st.Frontier.Pos.GTID.AddMariaDB(g)
		st.Frontier = relay.Frontier{Segment: after.Segment, Offset: after.Offset}
		st.Applied.FilePos = after.Pos.FilePos
		if st.Applied.GTID.Flavor() == "" {
			st.Applied.GTID = binlog.NewGTIDSet(binlog.MariaDB)
		}
		st.Applied.GTID = st.Applied.GTID.AddMariaDB(g)
		st.Frontier.Pos = binlog.Position{FilePos: after.Pos.FilePos, GTID: relayGTIDs}
		if applied {
			st.Transactions++
			st.AppliedAt = time.Now()
			st.AppliedEventTS = ts
		}
	})
	if applied {
		s.progressed()
	}
}

// pieceBytes is how much base64 text of a big statement the agent holds
// before it moves it into the server-side fragment variable.
const pieceBytes = 8 << 20

// writeRows adds a row event to the statement being built. A statement
// whose text outgrows pieceBytes is moved to the server in pieces, into the
// session variable @hs_rows (SET @hs_rows = CONCAT(@hs_rows, '...')), and
// applied at its end with the fragment form BINLOG @hs_rows, @hs_none: the
// agent never holds more than a piece, whatever the statement's size.
func (s *session) writeRows(ctx context.Context, ev []byte) error {
	s.rows.write(ev)
	if s.rows.pending() < pieceBytes {
		return nil
	}
	if err := s.flushQueue(ctx); err != nil {
		return err
	}
	piece := s.rows.take()
	q := "SET @hs_rows = '" + piece + "'"
	if s.pieces > 0 {
		q = "SET @hs_rows = CONCAT(@hs_rows, '" + piece + "')"
	}
	s.pieces++
	s.sent += int64(len(piece))
	return s.exec(ctx, q)
}

// checkFragment makes sure the server holds every character sent: CONCAT
// past max_allowed_packet turns silently into NULL, and BINLOG would then
// apply a truncated statement or nothing.
func (s *session) checkFragment(ctx context.Context) error {
	var n sql.NullInt64
	if err := s.conn.QueryRowContext(ctx, "SELECT LENGTH(@hs_rows)").Scan(&n); err != nil {
		return err
	}
	if !n.Valid || n.Int64 != s.sent {
		return fmt.Errorf("the server holds %d of the %d characters of a large BINLOG statement (max_allowed_packet too small?)", n.Int64, s.sent)
	}
	return nil
}

// flush applies the statement's row events: one BINLOG statement.
func (s *session) flush(ctx context.Context, after relay.Frontier) error {
	if s.rows.n == 0 {
		return nil
	}
	if s.fdeSeg != s.cur.Segment().Seq {
		var fde b64Stream
		fde.write(s.cur.FDE())
		if err := s.flushQueue(ctx); err != nil {
			return s.fail(after, s.txnWhat(), err)
		}
		s.forgetGTIDSource() // a format description event may set the session's server_id
		if err := s.exec(ctx, "BINLOG '"+fde.final()+"'"); err != nil {
			return s.fail(after, "BINLOG format description", err)
		}
		s.fdeSeg = s.cur.Segment().Seq
	}
	var err error
	if s.pieces == 0 {
		// A BINLOG statement always ends a round trip: its OK packet does
		// not carry "more results", and statements after it in one
		// multi-statement query would leave their answers unread (the
		// next command is out of sync; TestBinlogStatementEndsTheQuery).
		err = s.queue(ctx, "BINLOG '"+s.rows.final()+"'")
		if err == nil {
			err = s.flushQueue(ctx)
		}
	} else {
		if err = s.flushQueue(ctx); err != nil {
			return s.fail(after, s.txnWhat(), err)
		}
		last := s.rows.final()
		s.sent += int64(len(last))
		err = s.exec(ctx, "SET @hs_rows = CONCAT(@hs_rows, '"+last+"')")
		if err == nil {
			err = s.checkFragment(ctx)
		}
		if err == nil {
			err = s.exec(ctx, "BINLOG @hs_rows, @hs_none")
		}
		if err == nil {
			err = s.exec(ctx, "SET @hs_rows = NULL") // free the server's copy
		}
		s.pieces, s.sent = 0, 0
	}
	if err != nil {
		return s.fail(after, s.txnWhat(), err)
	}
	return nil
}

// queueLimit bounds the statements held for one round trip.
const queueLimit = 1 << 20

// combineLimit is how much base64 text of a transaction's row events the
// agent holds in one BINLOG statement: past it, the transaction goes to the
// server statement by statement (each statement's events must stay in one).
const combineLimit = 1 << 20

// queue holds a statement for the next round trip (statements of a small
// transaction go to the server together, as one multi-statement query).
func (s *session) queue(ctx context.Context, q string) error {
	if s.queued.Len() > 0 {
		s.queued.WriteString(";\n")
	}
	s.queued.WriteString(q)
	if s.queued.Len() >= queueLimit {
		return s.flushQueue(ctx)
	}
	return nil
}

// flushQueue sends the queued statements in one round trip. The server
// stops at the first failing one, and the driver returns its error. The
// transactions whose COMMIT was in the queue are done once it returns OK;
// after an error, those the standby's GTID state has are done, and the
// first one it lacks is the one that failed (its COMMIT did).
func (s *session) flushQueue(ctx context.Context) error {
	if s.queued.Len() == 0 {
		return nil
	}
	q := s.queued.String()
	s.queued.Reset()
	err := s.exec(ctx, q)
	held := s.held
	s.held = s.held[:0]
	if err == nil {
		for _, t := range held {
			s.done(t.gtid, t.after, t.ts, true)
		}
		return nil
	}
	if len(held) == 0 || IsConnError(err) {
		// The current transaction's; or the connection is gone, and the
		// next session finds on the standby what committed.
		return err
	}
	state, rerr := s.readState(ctx)
	if rerr != nil {
		// Which COMMIT failed is unknown: a lost connection, retried; the
		// next session reads the standby's state again.
		return fmt.Errorf("applier: after %v: %w", err, rerr)
	}
	for _, t := range held {
		if !state.has(t.gtid) {
			return &ApplyError{GTID: t.gtid.String(), Pos: t.after.Pos.FilePos, What: "COMMIT of " + t.what, Err: err}
		}
		s.done(t.gtid, t.after, t.ts, true)
	}
	return err // every COMMIT passed: the statements after them failed
}

func (s *session) noteTable(t string) {
	for _, have := range s.tables {
		if have == t {
			return
		}
	}
	s.tables = append(s.tables, t)
}

// txnWhat names what the current transaction touches, for error messages.
func (s *session) txnWhat() string {
	if len(s.tables) == 0 {
		return "transaction"
	}
	return "rows of " + strings.Join(s.tables, ", ")
}

// gtidStatement sets all of g for the next transaction, in two statements:
// MariaDB checks every assignment of one SET before it makes
// any, so `SET gtid_domain_id = D, server_id = S, gtid_seq_no = N` checks N
// under strict mode against the session's OLD domain and server_id and
// refuses the first transaction of a new domain (error 1950, "an attempt
// was made to binlog GTID <old domain>-...").
func gtidStatement(g binlog.GTID) string {
	return "SET SESSION gtid_domain_id = " + itoa(uint64(g.Domain)) +
		", SESSION server_id = " + itoa(uint64(g.Server)) + "; SET SESSION gtid_seq_no = " + itoa(g.Seq)
}

// replayable refuses the statements the applier must not replay as they
// come.
//
// A non-zero error code means the statement failed on the master. MariaDB
// logs a failed statement that it logs as a statement at all (DDL, or DML
// from a session with binlog_format=STATEMENT or MIXED) when it changed a
// non-transactional table before failing (a multi-row INSERT into MyISAM
// that hit a duplicate key after its first row is logged with 1062, see
// binlog/testdata/query/25-*), or when it was killed or timed out part way
// (ER_QUERY_INTERRUPTED, ER_STATEMENT_TIMEOUT, ER_CONNECTION_KILLED,
// ER_SERVER_SHUTDOWN); and it writes the ROLLBACK ALTER of a failed
// two-phase ALTER with the error that failed it. None of these is an
// error code MariaDB sets on purpose for a statement that succeeded. MariaDB's own replica runs
// such a statement and accepts the same error from it, or stops with "Query
// partially completed on the master" for the killed ones. Whether the
// standby then matches the master depends on how far the statement got on
// each, which nobody can tell from the event: the applier stops, the safe
// default, and the operator decides (skip is the explicit command).
//
// A two-phase ALTER (binlog_alter_two_phase=ON on the master) is logged
// twice with the same text, at its start and at its commit or rollback;
// replaying both would run it twice, and replaying the start of one that
// rolled back would run an ALTER the master undid.
func replayable(q binlog.Query) error {
	if err := q.MasterError(); err != nil {
		return fmt.Errorf("%w; it may have changed some tables there before it failed, so replaying it is not safe: "+
			"make the standby match the master by hand, then skip the transaction", err)
	}
	if q.AlterFlags != nil {
		return fmt.Errorf("a two-phase ALTER (binlog_alter_two_phase=ON on the master, flags %#x) is not supported: "+
			"turn binlog_alter_two_phase off on the master; apply the ALTER by hand, then skip its transactions", *q.AlterFlags)
	}
	return nil
}

// flags2Vars maps the option bits of a Query event's flags2 to the session
// variables they stand for: set says whether the variable is 1 when the bit
// is set.
var flags2Vars = []struct {
	bit uint32
	set bool
	v   string
}{
	{binlog.OptionNoForeignKeyChecks, false, "foreign_key_checks"},
	{binlog.OptionAutoIsNull, true, "sql_auto_is_null"},
	{binlog.OptionRelaxedUniqueChecks, false, "unique_checks"},
	{binlog.OptionNoCheckConstraintChecks, false, "check_constraint_checks"},
	{binlog.OptionIfExists, true, "sql_if_exists"},
	{binlog.OptionExplicitDefTimestamp, true, "explicit_defaults_for_timestamp"},
	{binlog.OptionInsertHistory, true, "system_versioning_insert_history"},
}

// sessionContext returns the SET statement that gives the standby session
// the master's context for q, after a USE of q's database when afterUse;
// written is the mask of flags2 bits the master records. Every variable that a Query event can carry is
// set on every statement, to the event's value or to what its absence means
// (auto_increment 1/1, lc_time_names en_US, the database's collation): the
// session is shared by all statements, and a value left over from an
// earlier one must not apply to the next. time_zone is the exception: the
// master writes it only when the statement used it.
//
// Not replayed: Q_INVOKER (the statement runs as the applier's user, so a
// GRANT's grantor and the implicit WITH ADMIN of CREATE ROLE name that user;
// the definer of views, routines, triggers and events is written out in the
// statement text), the catalog, table_map_for_update and Q_XID (used by the
// master's own crash recovery), none of which changes what the statement does.
func sessionContext(q binlog.Query, written uint32, afterUse bool) string {
	var set []string
	if q.Microseconds != nil {
		set = append(set, fmt.Sprintf("TIMESTAMP = %d.%06d", q.Timestamp, *q.Microseconds))
	} else {
		set = append(set, fmt.Sprintf("TIMESTAMP = %d", q.Timestamp))
	}
	if q.SQLMode != nil {
		set = append(set, fmt.Sprintf("SESSION sql_mode = %d", *q.SQLMode))
	}
	if q.CharsetClient != nil {
		set = append(set, fmt.Sprintf("SESSION character_set_client = %d, SESSION collation_connection = %d, SESSION collation_server = %d",
			*q.CharsetClient, *q.CollationConn, *q.CollationSrv))
	}
	switch {
	case q.CharsetDB != nil:
		set = append(set, fmt.Sprintf("SESSION collation_database = %d", *q.CharsetDB))
	case !afterUse: // USE has set it otherwise
		set = append(set, "SESSION collation_database = DEFAULT")
	}
	if q.TimeZone != nil {
		set = append(set, "SESSION time_zone = '"+strings.ReplaceAll(*q.TimeZone, "'", "''")+"'")
	}
	lc := uint16(0) // en_US
	if q.LCTimeNames != nil {
		lc = *q.LCTimeNames
	}
	set = append(set, fmt.Sprintf("SESSION lc_time_names = %d", lc))
	inc := [2]uint16{1, 1}
	if q.AutoIncrement != nil {
		inc = *q.AutoIncrement
	}
	set = append(set, fmt.Sprintf("SESSION auto_increment_increment = %d, SESSION auto_increment_offset = %d", inc[0], inc[1]))
	if q.FlagsTwo != nil {
		for _, o := range flags2Vars {
			if written&o.bit != 0 {
				set = append(set, fmt.Sprintf("SESSION %s = %d", o.v, b2i((*q.FlagsTwo&o.bit != 0) == o.set)))
			}
		}
	}
	return "SET " + strings.Join(set, ", ")
}

// query replays a statement with the master's session context.
func (s *session) query(ctx context.Context, q binlog.Query, boundary bool) error {
	text := strings.TrimSpace(q.Text)
	switch strings.ToUpper(text) {
	case "BEGIN":
		return nil
	case "COMMIT", "ROLLBACK":
		return s.exec(ctx, text)
	}
	// A replayed statement runs with a session context of its own: the
	// next GTID sets every variable again.
	s.forgetGTIDSource()
	var stmts []string
	useDB := q.DB != "" && !q.SuppressUse && !dbStatement.MatchString(text)
	if useDB {
		// USE even when the session is in that database already: it
		// resets collation_database to the database's collation, which
		// is what an event without Q_CHARSET_DATABASE_CODE means; the SET
		// after it applies the event's own value.
		stmts = append(stmts, "USE "+quoteIdent(q.DB))
	}
	stmts = append(stmts, sessionContext(q, binlog.Flags2Written(s.cur.FDE()), useDB))
	if err := s.exec(ctx, strings.Join(stmts, ";\n")); err != nil {
		return fmt.Errorf("session context: %w", err)
	}
	// The master logs CREATE/DROP/ALTER DATABASE with that database as the
	// default one, which may not exist (yet, or any more), and flags it
	// LOG_EVENT_SUPPRESS_USE_F: it runs without USE, and the session's
	// database is forgotten afterwards.
	s.db = ""
	if useDB {
		s.db = q.DB
	}
	return s.exec(ctx, q.Text)
}

// dbStatement matches statements about a whole database.
var dbStatement = regexp.MustCompile(`(?is)^\s*(CREATE|DROP|ALTER)\s+(DATABASE|SCHEMA)\b`)

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *session) intvar(ctx context.Context, ev []byte) error {
	if len(ev) < binlog.HeaderLen+9 {
		return binlog.ErrShortEvent
	}
	b := ev[binlog.HeaderLen:]
	v := binary.LittleEndian.Uint64(b[1:])
	switch b[0] {
	case 1:
		return s.exec(ctx, fmt.Sprintf("SET LAST_INSERT_ID = %d", v))
	case 2:
		return s.exec(ctx, fmt.Sprintf("SET INSERT_ID = %d", v))
	}
	return fmt.Errorf("unknown INTVAR type %d", b[0])
}

// fail wraps an error with the transaction it happened in.
func (s *session) fail(at relay.Frontier, what string, err error) error {
	if ae, ok := err.(*ApplyError); ok {
		return ae
	}
	if IsConnError(err) {
		return fmt.Errorf("applier: %s at %s: %w", what, at.Pos.FilePos, err)
	}
	return &ApplyError{GTID: s.gtid.String(), Pos: at.Pos.FilePos, What: what, Err: err}
}

func abbrev(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 120 {
		q = q[:120] + "…"
	}
	return q
}
