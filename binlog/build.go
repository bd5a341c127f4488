package binlog

import (
	"encoding/binary"
	"hash/crc32"
)

// Event builders. The binlog server builds its artificial events (fake
// Rotate, heartbeats) with NewEvent; the bodies below are what tests use to
// make synthetic streams that the parsers and the relay log must accept.

// NewEvent builds a v4 event: the 19-byte header, body and, with crc, the
// CRC32 (IEEE, little endian) of header and body.
func NewEvent(typ EventType, serverID, logPos uint32, flags uint16, body []byte, crc bool) []byte {
	size := HeaderLen + len(body)
	if crc {
		size += 4
	}
	ev := make([]byte, HeaderLen, size)
	binary.LittleEndian.PutUint32(ev[0:], 1700000000)
	ev[4] = byte(typ)
	binary.LittleEndian.PutUint32(ev[5:], serverID)
	binary.LittleEndian.PutUint32(ev[9:], uint32(size))
	binary.LittleEndian.PutUint32(ev[13:], logPos)
	binary.LittleEndian.PutUint16(ev[17:], flags)
	ev = append(ev, body...)
	if crc {
		ev = binary.LittleEndian.AppendUint32(ev, crc32.ChecksumIEEE(ev))
	}
	return ev
}

// mariaPostHeaderLens is a plausible post-header length array of a MariaDB
// 10.11 format description (one byte per event type from 1 on).
func mariaPostHeaderLens() []byte {
	lens := make([]byte, 171)
	set := map[EventType]byte{
		1: 0, QueryEvent: 13, StopEvent: 0, RotateEvent: 8, 5: 0, 6: 0, 7: 0, 8: 4,
		9: 4, 10: 4, 11: 4, 12: 0, 13: 18, 14: 8, FormatDescriptionEvent: 84, XIDEvent: 0,
		17: 0, 18: 0, TableMapEvent: 8, 20: 8, 21: 8, 22: 8, WriteRowsV1: 8, 24: 8, 25: 8,
		26: 0, HeartbeatEvent: 0, MariaAnnotateRows: 0, MariaBinlogCheckpoint: 4,
		MariaGTIDEvent: 19, MariaGTIDList: 4,
	}
	for typ, n := range set {
		if int(typ)-1 < len(lens) {
			lens[typ-1] = n
		}
	}
	return lens
}

// FDEBody is a MariaDB 10.11-like format description body: binlog_version 4, server_version
// (50 bytes), create_timestamp, header_length 19, post-header lengths and
// the checksum algorithm byte.
func FDEBody(alg byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, 4)
	ver := make([]byte, 50)
	copy(ver, "10.11.6-MariaDB-log")
	b = append(b, ver...)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = append(b, HeaderLen)
	b = append(b, mariaPostHeaderLens()...)
	return append(b, alg)
}

// MariaGTIDBody is a MariaDB GTID event body: seq_no, domain_id, flags2 and six
// bytes of padding, as a server writes it.
func MariaGTIDBody(domain uint32, seq uint64, flags2 byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, seq)
	b = binary.LittleEndian.AppendUint32(b, domain)
	b = append(b, flags2)
	return append(b, make([]byte, 6)...)
}

// XIDBody is an XID event body.
func XIDBody(xid uint64) []byte { return binary.LittleEndian.AppendUint64(nil, xid) }

// QueryBody is a Query event body with one status variable (Q_FLAGS2_CODE).
func QueryBody(db, query string) []byte {
	status := []byte{0x00, 0, 0, 0, 0}             // Q_FLAGS2_CODE, 4 bytes
	b := binary.LittleEndian.AppendUint32(nil, 42) // thread_id
	b = binary.LittleEndian.AppendUint32(b, 0)     // exec_time
	b = append(b, byte(len(db)))
	b = binary.LittleEndian.AppendUint16(b, 0) // error_code
	b = binary.LittleEndian.AppendUint16(b, uint16(len(status)))
	b = append(b, status...)
	b = append(b, db...)
	b = append(b, 0)
	return append(b, query...)
}

// RotateBody is a Rotate event body.
func RotateBody(pos uint64, file string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, pos), file...)
}

// MySQLGTIDBody is a MySQL GTID event body: flags, sid, gno and the
// logical clock fields.
func MySQLGTIDBody(sid [16]byte, gno int64) []byte {
	b := append([]byte{1}, sid[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(gno))
	b = append(b, 2) // lt_type
	b = binary.LittleEndian.AppendUint64(b, 0)
	return binary.LittleEndian.AppendUint64(b, 1)
}
