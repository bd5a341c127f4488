// Package applier applies the relay log to the standby server, exactly once
// and in the master's commit order, carrying the master's GTIDs.
//
// Model. The applier reads whole transactions from the relay log, never past
// the relay writer's durable frontier (which always ends a transaction), and
// applies each one on a single pinned connection to the standby:
//   - row events (table maps and rows) go to the server as BINLOG '<base64>'
//     statements, the way mariadb-binlog output replays them, so every type
//     is applied by the server's own row code, bit for bit;
//   - statements (DDL, statement-format DML) are replayed with the session
//     context the master recorded: default database, sql_mode, character
//     sets, time_zone and timestamp;
//   - before each transaction the session takes the master's GTID
//     (gtid_domain_id, server_id, gtid_seq_no), so the standby's binlog and
//     its gtid_binlog_pos carry the master's GTIDs and no GTID of its own.
//
// Exactly once. The standby's own GTID state (@@gtid_binlog_state) is the
// applied checkpoint: MariaDB commits a transaction's binlog entry, and with
// it its GTID, atomically with its data (DDL included: atomic since 10.6).
// At start, and after any error, the applier reads that state and skips every
// transaction the standby already has; with gtid_strict_mode the server
// itself refuses a GTID that is not after the last one of its domain. The
// bbolt "applied" frontier mirrors the state with its relay position; it is a
// hint for where to start reading, never the truth.
//
// Earlier sessions. An agent killed (or a standby connection lost) in the
// middle of a round trip leaves its session on the standby, which runs the
// statements it received to their end and rolls back an open transaction
// only once it sees the client gone. The standby's GTID state is the
// checkpoint only once no earlier session can still commit: at every session
// start, before it reads that state, the applier waits while another thread
// of its user with an InnoDB transaction that changed rows runs a statement
// (its leading COMMIT may still land; read too early, the state misses that
// transaction, which is then applied again and refused: a duplicate key, a
// lock, gtid_strict_mode: a stop no skip fixes), and kills such a thread that
// sleeps (its client is gone and the server has not noticed: it can only roll
// back, and its row locks would stop the applier at innodb_lock_wait_timeout).
// A transaction is never applied twice in any case: gtid_strict_mode refuses
// a GTID the standby has; this keeps the applier from stopping on it.
// (Needs the PROCESS privilege; without it, a warning, and the check is
// skipped.) A long DDL an earlier session still runs is not waited for.
//
// Visibility. With AFTER_SYNC a commit is in the master's binlog and its
// gtid_binlog_pos before the master makes it visible, and the standby may
// apply it first (the relay log has it durably; the ACK, and the master's
// commit, come after): for that moment the standby shows a transaction the
// master does not show yet. Equal GTID positions mean equal data only once
// the master has finished the commits in flight.
//
// Lag. Status.Behind counts the relay log's transactions the standby has
// not applied: from the standby's position and from the relay log's GTID
// state where the applier last caught up, so that the master's history from
// before the relay log's start (start = "current") is never lag.
//
// Preflight. Exactly-once holds only if the standby keeps its GTID state
// durably and refuses a GTID twice, so at every session start, before
// anything is applied, the applier reads the standby's settings:
//   - fatal (nothing is applied): log_bin=OFF (gtid_binlog_state, the
//     checkpoint, stays empty and a restart applies everything again: rows
//     of key-less tables twice); gtid_strict_mode=OFF (the server accepts a
//     GTID at or below its domain's last one: a double or out-of-order apply
//     is not refused); innodb_flush_log_at_trx_commit=0 (even a crash of
//     mariadbd loses InnoDB commits whose GTIDs the binary log keeps, so they
//     are never applied again); the standby's server_id equal to the
//     master's, once the stream knows it (a write on the standby takes the
//     GTID of the master's next transaction, which is then skipped);
//   - warnings (applied, shown in Status.Warnings, logged once per
//     session): sync_binlog other than 1 (with log_bin), and
//     innodb_flush_log_at_trx_commit=2: a power loss can then lose the
//     last transactions from the binary log or from InnoDB alone (the
//     checkpoint and the data disagree, and nothing can tell), or from both
//     (the start-hint check below refuses that standby).
//
// log_slave_updates does not matter here: the agent's session is a client
// session, always binlogged (sql_log_bin=1). read_only is set by the
// applier itself.
//
// The start hint. Config.Start, bbolt's mirror of the applied frontier,
// says where to read the relay log from, and its GTID set which of the
// relay log's transactions the standby had by then (applied by the agent,
// or found there): the relay log's GTIDs only, never errant ones, so that
// removing an errant GTID from the standby does not look like a loss. At
// every session start the standby's gtid_binlog_pos must cover, domain by
// domain, the applied frontier known (Config.Start, or where this run got
// to): a standby that is behind lost transactions the agent applied (an
// older backup, or commits lost in a power loss with the settings above),
// and reading on from the checkpoint would never bring them back. The
// applier refuses it (ErrStandbyBehind).
//
// The follow check. In each domain, the first transaction a session applies
// (after skipping those the standby has) must follow the standby's last
// transaction there: its sequence number is the standby's last plus one (a
// master's sequence numbers grow by one per event group in a domain), or
// the relay log shows the standby's last GTID right before it (the master
// jumped on purpose, SET gtid_seq_no; the session looks for it among the
// transactions it read and in the relay segment before its start point).
// Otherwise transactions in between are missing from the relay log and the
// applier refuses (ErrRelayGap): applying on would silently skip them. A
// domain the standby has no GTID in has nothing to follow (a fresh
// standby): the applier logs it and applies. A gap the master made on
// purpose right at a session start is refused too, when the relay log no
// longer shows what came before; marking it on the standby is then an
// explicit decision:
//
//	SET gtid_domain_id=D, server_id=S;
//	SET gtid_seq_no=NEXT-1; -- a statement of its own: checked in domain D
//	DROP TABLE IF EXISTS mysql.hotstandby_no_such_table;
//
// (DROP TABLE IF EXISTS of a missing table is always binlogged, with that
// GTID; skip uses the same statement.)
//
// Stopping. A fatal finding, a standby behind the checkpoint and a gap are
// StopErrors: the applier stops in StateError with the lines in
// Status.LastError and no FailedGTID (a skip cannot fix them and is
// refused), logs them once, and checks again every Config.Recheck (10 s by
// default) and after a reconnect, so that fixing the standby (SET GLOBAL, or
// a restart with the right options, or a rebuild) resumes by itself. The
// status stays in error until a re-check applies a transaction or catches
// up.
//
// Round trips. A transaction goes to the standby as one multi-statement
// query, COMMIT; SET GTID; BEGIN; BINLOG '<base64>': the COMMIT of the
// transaction before leads it, and the row events of all its statements
// share one BINLOG statement (the server ends each statement at its
// STMT_END flag, as its SQL thread does; a transaction of more than
// combineLimit bytes of text goes statement by statement). A BINLOG
// statement must end its query: its OK packet does not carry "more
// results" (TestBinlogStatementEndsTheQuery), so the COMMIT cannot follow it
// in the same one, and two transactions never share a round trip. A
// transaction is done (Status.Frontier and Applied move) only when the
// round trip that carries its COMMIT has returned OK; when the relay log has
// nothing more, the held COMMIT is sent alone before the applier waits.
// When a round trip fails, the standby's GTID state tells which COMMITs in
// it passed: the first transaction whose GTID the standby lacks failed at
// its COMMIT, otherwise the error is the next transaction's. Whatever
// stops the session (an error in a later transaction, a StopError), the
// held COMMITs are sent first: a stop never rolls back a transaction that
// only waited for its COMMIT, so a skip of the failing transaction can never
// cover an earlier one that is not on the standby.
//
// Errors stop the applier (the stream keeps receiving and acknowledging)
// with the GTID, the master position, the table or statement and the server's
// error. For row events the position is the end of the transaction (its
// statements share one BINLOG statement) and the tables are all it touches. The open transaction is rolled back: nothing is half-applied. Skip
// applies an empty transaction with the failing GTID, an explicit operator
// decision that the caller records in the audit log.
//
// Memory is bounded: a transaction streams through, one BINLOG statement of
// at most a few MiB at a time.
//
// An Applier is driven by one goroutine (Run); Status and Skip may be called
// from any goroutine.
package applier
