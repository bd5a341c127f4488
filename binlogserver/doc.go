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
// streams takes no lock that the relay's writer or the ACK path takes.
//
// Invariant (durable only): the server never sends a replica an event past
// the durable (fsynced) frontier its Source last published; every read of
// the relay log is bounded by a frontier read from the Source
// (TestDumpBehindThenCaughtUp, watched and polled).
//
// Wake-ups: a caught-up dump sleeps until the frontier moves. When the
// Source is a Watcher (the agent's receiver: the relay writer publishes
// each new durable frontier into a relay.Notifier after its fsync), the
// dump takes the frontier and the channel of that same publication in one
// atomic load (DurableWatch), and the next publication closes that
// channel. Invariant (no lost wake-up): a move between a dump's check and
// its wait is never missed, since the channel it then waits on is already
// closed (TestNotifierCheckThenWait, TestNotifierStress in relay,
// TestWakeupEveryCommit here). The frontier is read once per move by the
// writer and shared by every dump through the notice; no dump polls and
// an idle server with caught-up replicas does nothing but heartbeats. A
// Source that is not a Watcher is polled every Config.Poll (2 ms) by one
// goroutine while dumps are registered, as before.
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
// # Semi-sync towards replicas
//
// A replica that sets @rpl_semi_sync_slave=1 (a MariaDB replica with
// rpl_semi_sync_slave_enabled=ON, go-mysql's BinlogSyncer with
// SemiSyncEnabled) gets the semi-sync protocol: every event packet carries
// the 0xEF header, the event that ends each transaction (its XID or COMMIT,
// or a DDL's Query) asks for an ACK, and the packet after such an event is
// numbered 1, as a MariaDB master numbers it after flush_net.
// rpl_semi_sync_master_enabled answers ON (a MariaDB replica asks for
// semi-sync whenever the row exists, even OFF). Invariant: the ACKs are
// read on the connection's own goroutine and never waited for by the
// stream, the relay writer or the agent: a replica that ACKs slowly or
// never delays nobody. They are counted (Replica.Acks, Stats.Acks) with the
// last position ACKed; WaitAcked waits for one. An ACK's position is the
// replica's own claim (nothing checks it against what was sent): nothing
// here relies on it.
//
// KILL <id> ends the dump on that connection (a semi-sync replica's STOP
// SLAVE and BinlogSyncer's reconnect send it); an unknown id is ERR 1094.
//
// # Hostile clients
//
// Invariants, each covered by a test or FuzzServeSession:
//   - A panic in a connection's handler ends that connection only (logged
//     with its stack, counted in Stats.Panics); the commands are dispatched
//     here, not by go-mysql, and an empty or oversized command packet is
//     answered ER_MALFORMED_PACKET and ends the connection.
//   - Before login a client costs at most: packets of 64 KiB (a larger
//     packet header is refused before any buffer is reserved for it), 256
//     KiB in all, the login timeout; at most 64 connections log in at once,
//     16 from one address (with TLS offered 16, and 4 from one address);
//     more get ERR 1040 at once.
//   - A wrong user and a wrong password get the same answer (1045, the
//     same check against a decoy credential). Past 3 failed logins from an
//     address, each failure is answered after a wait that doubles from 50
//     ms up to 5 s (a good login is never held back and clears the count);
//     failed logins are logged at most once a minute per address, with the
//     count of those not logged.
//   - @master_heartbeat_period is clamped as MariaDB bounds
//     MASTER_HEARTBEAT_PERIOD: 0 (none) or 1 ms to 4294967 s.
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
// START SLAVE UNTIL (@slave_until_gtid) is refused. With TLS the packet
// framing is inside TLS records before login: there only the 256 KiB
// budget and the login timeout bound a client, so one connection can make
// go-mysql reserve one 16 MiB buffer until it is cut off (hence the lower
// connection caps with TLS: 256 MiB at most). An ACK request
// goes with every transaction (a MariaDB master asks only while a commit
// waits), and buffered events are not flushed per ACK request.
//
// # Goroutines
//
// New, Serve and Close are called by the owner; Replicas, OldestNeeded,
// Stats and Addr may be called from any goroutine.
package binlogserver
