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
