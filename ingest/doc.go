// Package ingest is the path from the master to the relay log and back to
// the master as a semi-sync ACK: the receiver, its queue, the checkpointer,
// the master preflight, the continuity check and the monitor. Promise P1
// (an ACK means durable) lives here.
//
// # The receiver
//
// Receiver.Run connects, checks who the master is and that its binlog
// continues the relay log (checkContinuity: on MariaDB, which has no
// server_uuid, BINLOG_GTID_POS at the relay's end and the master's
// gtid_binlog_state), ends the agent's own earlier dump threads, and dumps
// from the relay's durable end. A reader goroutine reads packets into a
// bounded queue; the single writer takes a batch, places it in the relay
// log, fsyncs once, and then sends one ACK for the newest position the
// master asked about. An ACK is never sent past the durable frontier
// (semisync.Acker refuses; the receiver then stops the daemon). The durable
// frontier of everything already on disk is acknowledged once per
// connection, after the dump's first packet arrived.
//
// A dump that delivers nothing at all within the read timeout is the state
// StateSilent ("connected, master sends nothing"), with the master's view
// of the dump thread, until a dump delivers again. Other failures are
// retried with exponential backoff from the durable position, dropping any
// half-received transaction; permanent ones (wrong password, purged binlog,
// another master, another history) end Run with one line.
//
// Checkpoints go to bbolt from their own goroutine, never between fsync and
// ACK.
//
// # The first run
//
// The very first run (no checkpoint) starts at Config.Start, and its start
// is persisted before anything is streamed. Invariant: the relay log's GTID
// base is the master's GTID state at exactly the relay's first position.
// start = "current" takes both from binlog.(*Conn).MasterStatus, which reads
// them as one fact (a GTID set read a round trip later would claim
// transactions the relay never gets, and the continuity check would then
// refuse a healthy master as rebuilt).
//
// With a standby configured (Config.Standby), the first run reads where it
// is before it starts (the agent stops the standby's own replication from
// another source first, so that the position stays put). Invariant: the
// first run never starts after a transaction of the master that the standby
// lacks, and never streams onto a standby whose history is not the master's:
//   - the standby's position is the variable its apply mode continues from
//     (StandbyGTIDs.ContinuesFrom): gtid_slave_pos in replica mode, which
//     the standby sends with MASTER_USE_GTID=slave_pos; gtid_binlog_pos in
//     direct mode, whose applier takes gtid_binlog_state as its checkpoint.
//     Not gtid_current_pos: it mixes in the standby's own writes. Only the
//     master's domains count (those in its gtid_binlog_state): a domain
//     left from another master is no position in this one;
//   - empty: neither gtid_slave_pos nor gtid_binlog_state holds a GTID of
//     the master's domains that the master wrote (its own writes, of a
//     server_id the master never had, do not count). Only then does the
//     configured start apply as is ("current": from now on; fill the
//     standby with hotstandby clone);
//   - otherwise start = "current" starts after the standby's position (a
//     GTID dump), so an adopted native replica loses nothing; another start
//     must not begin after it in any domain;
//   - refused at once, in one line naming both positions and the fix
//     (ErrStandbyCannotContinue): the other variable ahead of the one the
//     mode continues from (replica mode: its binlog holds the master's
//     transactions past gtid_slave_pos; direct mode: it replicated without
//     log_slave_updates), a position the master's gtid_binlog_state does not
//     hold (the standby is ahead, diverged, or has errant writes last), and
//     a configured start after it. A standby whose next transactions the
//     master purged is refused by the dump (error 1236) with the standby's
//     position. SHOW BINARY LOGS is not asked: it waits out the semi-sync
//     timeout while the adopted replica's commits wait for an ACK;
//   - a standby that does not answer is retried: its position is never
//     guessed.
//
// # The monitor
//
// Monitor polls the master on a connection of its own every 2 s: the
// agent's stream, the semi-sync counters, the master's position, the
// master's processlist entry of the stream's dump connection, the stream
// again, and the master's clock, in that order. Each sample is judged
// against the previous one. Invariant: a sample is a proof only if every
// commit that returned OK on the master before its counters were read is
// durable in the relay log. It is one if the master is ON with AFTER_SYNC
// and wait_no_slave=ON, Rpl_semi_sync_master_no_tx and no_times did not
// move, the one semi-sync replica the master counts is the agent (the
// stream streamed on one dump connection through the sample, the master
// holds that connection as a Binlog Dump, and Rpl_semi_sync_master_get_ack
// moved since a baseline sample by no more than the ACKs the agent sent,
// plus two in flight at the baseline), and
// the stream durably holds the master's position of the previous sample
// (so commits that were waiting then are covered, whatever became of
// them). The master counting one semi-sync replica while the stream is not
// streaming, or without the stream's dump connection, or with ACKs the
// agent did not send, is a breach naming another semi-sync replica. The
// failover package's doc.go gives the whole argument. Proofs and breaches
// go to the checkpoint store. CaughtUpAt tells the gate the latest moment
// by which the master had written nothing the stream does not hold.
//
// The view's Received is read before the master's position, and the
// stream is never ahead of the master: position minus Received is never
// negative. No lock is held across a round trip.
//
// Receiver.Heard is the stream's part of the gate's B: the last packet read
// on a dump connection, and the receipt of the oldest ACK request not yet
// answered.
//
// Status, Durable, Changed, AckStats, Heard, View and CaughtUpAt may be
// called from any goroutine.
package ingest
