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
// Monitor polls the master on a connection of its own every 2 s: its
// position, its clock, and the semi-sync counters. Each sample is judged
// against the previous one; a sample proves that every commit since the
// previous one waited for the agent's ACK only if the master is ON with
// AFTER_SYNC, the agent is its only semi-sync replica, and neither
// Rpl_semi_sync_master_no_tx nor no_times moved. Proofs and breaches go to
// the checkpoint store. No lock is held across a round trip.
//
// Status, Durable, Changed, AckStats and View may be called from any
// goroutine.
package ingest
