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
// Errors stop the applier (the stream keeps receiving and acknowledging)
// with the GTID, the master position, the table or statement and the server's
// error. The open transaction is rolled back: nothing is half-applied. Skip
// applies an empty transaction with the failing GTID, an explicit operator
// decision that the caller records in the audit log.
//
// Memory is bounded: a transaction streams through, one BINLOG statement of
// at most a few MiB at a time.
//
// An Applier is driven by one goroutine (Run); Status and Skip may be called
// from any goroutine.
package applier
