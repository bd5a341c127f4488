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
// The start is found without reading the relay log from its oldest
// segment: a file:pos dump opens the segment of that master file that
// holds the position and goes straight to the event there (its offset is
// the distance from the segment's first event, confirmed by the event's
// checksum and position; else the segment is read from its start). A GTID
// dump opens the newest segment whose master file's own Gtid_list (the
// master's GTID state before the file) the replica's state covers.
//
// While a replica is behind, events go out in 256 KiB writes (one write
// deadline each); what is buffered is flushed when the dump reaches the
// durable frontier. The frontier is read again only then, so a dump that
// streams takes no lock that the relay's writer or the ACK path takes; the
// frontier is polled (Config.Poll) while replicas are caught up, which
// wakes each caught-up dump at most once per poll, however many groups
// were fsynced meanwhile.
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
