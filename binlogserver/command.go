package binlogserver

import (
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// maxCommandPacket caps a logged-in client's command packets: the longest
// a replica sends is a SET @slave_connect_state with its GTID list.
const maxCommandPacket = 1 << 20

// commands reads and answers a logged-in client's commands until it quits,
// the dump ends or a read or write fails. It dispatches the commands itself
// (go-mysql's dispatch indexes data[0], so one empty packet panicked) and
// knows only the ones replicas and binlog clients send; any other is
// answered ER_UNKNOWN_COM_ERROR, as MariaDB does, and a malformed packet
// with ER_MALFORMED_PACKET and the end of the connection.
func (h *session) commands() {
	conn := h.conn
	for !conn.Closed() {
		data, err := conn.ReadPacket()
		if err != nil {
			conn.Close()
			return
		}
		if len(data) == 0 || len(data) > maxCommandPacket {
			h.s.log.Warn("replica sent a malformed command packet: closing the connection", "addr", h.addr, "len", len(data))
			_ = conn.WriteValue(mysql.NewError(mysql.ER_MALFORMED_PACKET, fmt.Sprintf("hotstandby binlog server: malformed packet (%d bytes)", len(data))))
			conn.Close()
			return
		}
		v, quit := h.command(data[0], data[1:])
		if quit {
			conn.Close()
			return
		}
		if err := conn.WriteValue(v); err != nil {
			conn.Close()
			return
		}
		conn.ResetSequence()
	}
}

// command answers one command: the value to write (nil: OK) and whether
// the connection ends without an answer.
func (h *session) command(cmd byte, data []byte) (any, bool) {
	switch cmd {
	case mysql.COM_QUIT:
		return nil, true
	case mysql.COM_PING, mysql.COM_INIT_DB:
		return nil, false
	case mysql.COM_QUERY:
		r, err := h.HandleQuery(string(data))
		if err != nil {
			return err, false
		}
		if r == nil {
			return nil, false
		}
		return r, false
	case mysql.COM_REGISTER_SLAVE:
		if len(data) < 4 {
			return mysql.NewError(mysql.ER_MALFORMED_PACKET, "hotstandby binlog server: COM_REGISTER_SLAVE packet is too short"), false
		}
		h.serverID = binary.LittleEndian.Uint32(data)
		return nil, false
	case mysql.COM_BINLOG_DUMP:
		err := h.dump(data)
		if h.conn.Closed() {
			// The stream went out (and ended): nothing follows it.
			return nil, true
		}
		if err == nil {
			return nil, true
		}
		return err, false
	}
	return mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, fmt.Sprintf("hotstandby binlog server: command 0x%02x is not supported", cmd)), false
}
