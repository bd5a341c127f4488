package binlog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// HeaderLen is the size of a v4 binlog event header.
const HeaderLen = 19

// Magic opens every binlog file, and so every relay segment.
var Magic = []byte{0xfe, 'b', 'i', 'n'}

// EventType is the type byte of an event header.
type EventType byte

// The event types the agent looks at. Everything else is carried verbatim.
const (
	QueryEvent             EventType = 2
	StopEvent              EventType = 3
	RotateEvent            EventType = 4
	FormatDescriptionEvent EventType = 15
	XIDEvent               EventType = 16
	HeartbeatEvent         EventType = 27
	XAPrepareEvent         EventType = 38
	MySQLGTIDEvent         EventType = 33
	MySQLAnonymousGTID     EventType = 34
	MySQLPreviousGTIDs     EventType = 35
	MariaAnnotateRows      EventType = 160
	MariaBinlogCheckpoint  EventType = 161
	MariaGTIDEvent         EventType = 162
	MariaGTIDList          EventType = 163
)

// Header flag bits.
const (
	// FlagArtificial marks an event the master made up for this stream
	// (fake Rotate, artificial GTID list); it is not in the master's file.
	FlagArtificial uint16 = 0x0020
)

// MariaDB GTID event flags2 bits.
const (
	// MariaFlagStandalone marks a GTID event group without BEGIN/COMMIT (DDL).
	MariaFlagStandalone = 0x01
	// MariaFlagGroupID means the event carries a commit_id.
	MariaFlagGroupID = 0x02
)

// Header is the decoded v4 event header.
type Header struct {
	Timestamp uint32
	Type      EventType
	ServerID  uint32
	Size      uint32
	LogPos    uint32 // end of the event in the master's file; 0 for events not in it
	Flags     uint16
}

// ParseHeader decodes the first HeaderLen bytes of ev.
func ParseHeader(ev []byte) (Header, error) {
	if len(ev) < HeaderLen {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than a header", ErrShortEvent, len(ev))
	}
	return Header{
		Timestamp: binary.LittleEndian.Uint32(ev[0:]),
		Type:      EventType(ev[4]),
		ServerID:  binary.LittleEndian.Uint32(ev[5:]),
		Size:      binary.LittleEndian.Uint32(ev[9:]),
		LogPos:    binary.LittleEndian.Uint32(ev[13:]),
		Flags:     binary.LittleEndian.Uint16(ev[17:]),
	}, nil
}

// Start is the offset of the event in the master's file (LogPos - Size).
func (h Header) Start() uint64 { return uint64(h.LogPos) - uint64(h.Size) }

// castagnoli is not used by MySQL: binlog checksums are IEEE CRC32.
var crcTable = crc32.IEEETable

// VerifyChecksum checks the trailing CRC32 of a whole event. Binlog
// checksums cover the header and body, and are stored little-endian in the
// last four bytes.
func VerifyChecksum(ev []byte) error {
	if len(ev) < HeaderLen+4 {
		return fmt.Errorf("%w: %d bytes, too short for a checksum", ErrShortEvent, len(ev))
	}
	n := len(ev) - 4
	want := binary.LittleEndian.Uint32(ev[n:])
	if got := crc32.Checksum(ev[:n], crcTable); got != want {
		return fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, want, got)
	}
	return nil
}

// FDEChecksumAlg returns the checksum algorithm byte a format description
// event declares (0 none, 1 CRC32). A format description written by a server
// that predates checksums declares none.
func FDEChecksumAlg(ev []byte) byte {
	// body: binlog_version(2) server_version(50) create_timestamp(4)
	// header_length(1) post_header_lengths(n) checksum_alg(1) crc(4)
	if len(ev) < HeaderLen+57+1+4 {
		return 0
	}
	return ev[len(ev)-5]
}

// RotateTarget decodes a Rotate event (with checksum): the next file and
// the offset in it.
func RotateTarget(ev []byte, checksummed bool) (FilePos, error) {
	end := len(ev)
	if checksummed {
		end -= 4
	}
	if end < HeaderLen+8 {
		return FilePos{}, fmt.Errorf("%w: rotate event of %d bytes", ErrShortEvent, len(ev))
	}
	pos := binary.LittleEndian.Uint64(ev[HeaderLen:])
	return FilePos{File: string(ev[HeaderLen+8 : end]), Pos: pos}, nil
}

// MariaGTID decodes a MariaDB GTID event: the GTID and whether the
// transaction is a single statement with no closing XID (DDL).
func MariaGTID(ev []byte, h Header) (g GTID, standalone bool, commitID uint64, err error) {
	if len(ev) < HeaderLen+13 {
		return GTID{}, false, 0, fmt.Errorf("%w: GTID event of %d bytes", ErrShortEvent, len(ev))
	}
	b := ev[HeaderLen:]
	g = GTID{Seq: binary.LittleEndian.Uint64(b), Domain: binary.LittleEndian.Uint32(b[8:]), Server: h.ServerID}
	flags := b[12]
	if flags&MariaFlagGroupID != 0 && len(b) >= 21 {
		commitID = binary.LittleEndian.Uint64(b[13:])
	}
	return g, flags&MariaFlagStandalone != 0, commitID, nil
}

// MySQLGTID decodes a MySQL GTID event: the source UUID and the number.
func MySQLGTID(ev []byte) (sid [16]byte, gno int64, err error) {
	if len(ev) < HeaderLen+25 {
		return sid, 0, fmt.Errorf("%w: GTID event of %d bytes", ErrShortEvent, len(ev))
	}
	copy(sid[:], ev[HeaderLen+1:])
	return sid, int64(binary.LittleEndian.Uint64(ev[HeaderLen+17:])), nil
}

// QueryText returns the statement of a Query event (with checksum). It
// assumes the standard 13-byte post-header of binlog v4.
func QueryText(ev []byte, checksummed bool) []byte {
	end := len(ev)
	if checksummed {
		end -= 4
	}
	b := ev[HeaderLen:end]
	if len(b) < 13 {
		return nil
	}
	dbLen := int(b[8])
	statusLen := int(binary.LittleEndian.Uint16(b[11:]))
	off := 13 + statusLen + dbLen + 1
	if off > len(b) {
		return nil
	}
	return b[off:]
}

// isCommitQuery reports whether a Query event's text ends a transaction.
func isCommitQuery(q []byte) bool {
	q = bytes.TrimSpace(q)
	return bytes.EqualFold(q, []byte("COMMIT")) || bytes.EqualFold(q, []byte("ROLLBACK")) ||
		bytes.HasPrefix(bytes.ToUpper(q), []byte("XA COMMIT")) || bytes.HasPrefix(bytes.ToUpper(q), []byte("XA ROLLBACK"))
}
