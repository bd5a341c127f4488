package binlogserver

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/hotstandby/hotstandby/binlog"
)

// flagBinlogInUse is LOG_EVENT_BINLOG_IN_USE_F: set in the format
// description of a file still being written. A master clears it when it
// sends the FDE.
const flagBinlogInUse = 0x0001

// fakeRotate is the artificial Rotate that tells the replica which master
// file the next events belong to and where the next one starts.
func fakeRotate(serverID uint32, file string, pos uint64, crc bool) []byte {
	ev := binlog.NewEvent(binlog.RotateEvent, serverID, 0, binlog.FlagArtificial, binlog.RotateBody(pos, file), crc)
	return zeroTimestamp(ev, crc)
}

// heartbeat is a heartbeat event naming the current file and end position.
func heartbeat(serverID uint32, file string, pos uint32, crc bool) []byte {
	ev := binlog.NewEvent(binlog.HeartbeatEvent, serverID, pos, binlog.FlagArtificial, []byte(file), crc)
	return zeroTimestamp(ev, crc)
}

// zeroTimestamp sets the timestamp to 0, as a master's artificial events
// have, and recomputes the checksum.
func zeroTimestamp(ev []byte, crc bool) []byte {
	binary.LittleEndian.PutUint32(ev[0:], 0)
	return reChecksum(ev, crc)
}

// streamFDE is the master's format description as a master sends it: the
// in-use flag cleared, the CRC recomputed; ahead of events from the middle
// of a file (atStart false) also log_pos 0 (the replica does not move its
// position for it) and created 0. At the start of a file it keeps its
// log_pos: the replica moves from 4 to the first event's position with it.
func streamFDE(stored []byte, atStart bool) []byte {
	ev := append([]byte(nil), stored...)
	crc := binlog.FDEChecksumAlg(ev) == 1
	flags := binary.LittleEndian.Uint16(ev[17:])
	binary.LittleEndian.PutUint16(ev[17:], flags&^flagBinlogInUse)
	if !atStart {
		binary.LittleEndian.PutUint32(ev[13:], 0)
		// created: the 4 bytes after binlog_version (2) and server_version (50).
		if off := binlog.HeaderLen + 2 + 50; len(ev) >= off+4 {
			binary.LittleEndian.PutUint32(ev[off:], 0)
		}
	}
	return reChecksum(ev, crc)
}

func reChecksum(ev []byte, crc bool) []byte {
	if crc && len(ev) >= binlog.HeaderLen+4 {
		n := len(ev) - 4
		binary.LittleEndian.PutUint32(ev[n:], crc32.ChecksumIEEE(ev[:n]))
	}
	return ev
}
