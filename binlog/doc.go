// Package binlog is the vocabulary of replication: positions and GTIDs, the
// framing of binlog events (header, CRC32, the few fields the agent reads),
// the decoding of Query events with their session context, and the client
// side of the dump protocol.
//
// # Positions
//
// A FilePos is a place in the master's binlog (SHOW MASTER STATUS,
// Exec_Master_Log_Pos); file names compare by their numeric suffix, never as
// strings. A GTIDSet is MariaDB's gtid_binlog_pos (the last GTID of each
// domain) or MySQL's gtid_executed (a set of intervals); sets of different
// flavors never compare. A Position is both. All are immutable values:
// methods return new values and never change their receiver. They are
// stored self-describing (Encode/DecodePosition).
//
// # Events
//
// The package reads events as bytes: ParseHeader, VerifyChecksum, the GTID,
// Rotate and format description fields, and Query events (ParseQuery) with
// every status variable MariaDB 10.11 and MySQL 8.0 write, refusing an event
// with one it does not know rather than losing part of the session context.
// A TxnTracker follows transaction boundaries (MariaDB: GTID event to XID or
// the standalone statement; MySQL: GTID, BEGIN, COMMIT). NewEvent and the
// body builders make synthetic events for tests and artificial ones for a
// binlog server.
//
// # The dump client
//
// Dial connects as a replica (Conn); StartDump registers and asks for the
// binlog from a file position or a GTID set, with annotate-rows events and
// semi-sync when configured. MasterStatus returns the master's position
// with the GTID state at exactly that position (never a state read a
// commit later). ReadEvent is called from one goroutine; the
// semi-sync ACK goes straight onto the socket from another (AckWriter),
// with a write deadline. Errors are *SourceError, permanent or retryable;
// none of them carries the password. With SourceConfig.TLS the connection
// switches to TLS after the greeting (the ACK writer then writes through the
// TLS connection); a refused certificate is permanent.
//
// binlog imports nothing else of the project.
package binlog
