// Package semisync holds the replica side of MariaDB/MySQL semi-synchronous
// replication: the ACK packet and the rule for when one may be sent.
//
// The rule (the promise "an ACK means durable"): a position is acknowledged only after
// every event up to it is written and fsynced to the relay log. The Acker
// enforces it where the ACK is written: it knows the durable frontier the
// relay writer last reported and refuses, with ErrAckBeyondDurable, to
// acknowledge anything past it. One ACK covers every transaction up to its
// position, so the writer sends one per fsync batch: the newest position
// that asked for one.
//
// The master resets its packet numbering after every event that asks for an
// ACK, and the ACK itself travels with sequence number 0. The Acker writes
// the whole packet, header included, straight onto the socket, so it can run
// on the writer goroutine while another goroutine reads the stream.
//
// An Acker is used by one goroutine (the relay writer); Stats may be called
// from any goroutine.
package semisync
