// Package relay is the agent's relay log: append-only segment files, each a
// valid binlog file (magic, the master's format description, the master's
// events byte for byte with their CRC32), that mariadb-binlog can read.
//
// # Writing
//
// One goroutine owns the Writer. It places each event by its log position
// (fake rotates, re-sent format descriptions, heartbeats and artificial
// events are never stored), verifies its checksum, and appends it. Sync
// makes a batch durable with one fdatasync and returns the durable frontier
// (the end of the last whole transaction on disk). A segment holds whole
// transactions only; it rolls at its size limit on a transaction boundary,
// and whenever the master's file changes.
//
// # Recovery
//
// Open scans forward from the last checkpoint, re-verifies the bytes before
// it, and cuts a torn or zero tail back to the last whole transaction.
// Damage anywhere else, or damage that reaches back to the position last
// acknowledged to the master (Config.Acked), is ErrCorrupt and nothing is
// cut: those bytes were durable, and an operator decides.
//
// # Reading
//
// A Cursor follows the relay log across segments and never returns a byte
// past the durable frontier it is given (not yet fsynced bytes, the live
// segment's preallocated zeros). The applier and a binlog server each use
// one. Scan, List and Show inspect the relay log read-only, with the daemon
// running or not. Purge deletes whole closed segments before a segment the
// caller still needs.
//
// A Frontier is a place in the relay log (segment, offset) together with
// the master position (file:pos and GTID set) it stands for.
//
// relay imports only binlog of the project.
package relay
