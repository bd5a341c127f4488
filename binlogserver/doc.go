// Package binlogserver is the master side of the MariaDB replication
// protocol over the agent's relay log: a stock MariaDB replica can
// CHANGE MASTER TO the agent (MASTER_USE_GTID=slave_pos or a file
// position), START SLAVE, and receive the master's events byte for byte as
// the agent stored them (the master's format description, CRC32 kept).
//
// # Model
//
// Each replica connection gets its own goroutine and its own relay.Cursor.
// The cursor never reads past the durable frontier (Source.Durable), so a
// replica never sees an event the agent could still lose in a crash. The
// frontier always stands at a transaction boundary.
//
// A GTID dump (@slave_connect_state set) starts at the first transaction,
// per domain, after the replica's GTID state, so a replica cut off in the
// middle of a transaction gets it again from its GTID event. A file:pos dump
// starts at the event that begins at that position. Before the first event
// the replica gets a fake Rotate naming the master file and the event's
// position and the master's format description with log_pos 0 (so the
// replica's Read_Master_Log_Pos is exact); the same pair announces every
// new master file. When nothing is durable to send for the heartbeat period
// the replica asked for (@master_heartbeat_period), it gets a heartbeat
// naming the current file and end position.
//
// A dump asked before the durable frontier is known (zero: the agent has not
// recovered its relay log yet, or the relay log is empty) waits for it
// before it locates its start, judges the replica's state or sends the
// preamble: a fake Rotate never names no file. (One that named "" at
// position 0 crashed MariaDB 10.11 parallel replicas in compare_log_name.)
// A non-blocking dump gets EOF instead.
//
// A GTID state the relay log cannot continue (purged, never had, diverged,
// ahead) is answered with ERR 1236 naming the GTID and what the relay log
// holds; the replica's IO thread stops with that message in Last_IO_Error.
//
// # Registry and purge
//
// Server.Replicas lists the connected replicas (server_id, address, the
// last position and GTIDs sent, since when). Server.OldestNeeded is the
// oldest relay segment a connected replica still reads: relay purge must
// keep it and everything after it.
//
// # Limits
//
// Events of a domain the replica already has are skipped one whole
// transaction at a time; with several domains interleaved this leaves the
// replica's Read_Master_Log_Pos short of the truth until the next file
// (MariaDB's master sends an artificial Gtid_list there; we do not).
// START SLAVE UNTIL (@slave_until_gtid) is refused. No TLS, no semi-sync
// towards downstream replicas.
//
// # Goroutines
//
// New, Serve and Close are called by the owner; Replicas, OldestNeeded,
// Stats and Addr may be called from any goroutine.
package binlogserver
