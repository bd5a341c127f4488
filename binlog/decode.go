package binlog

import (
	"encoding/binary"
	"fmt"
)

// More event types the applier looks at.
const (
	IntvarEvent        EventType = 5
	RandEvent          EventType = 13
	UserVarEvent       EventType = 14
	TableMapEvent      EventType = 19
	WriteRowsV1        EventType = 23
	UpdateRowsV1       EventType = 24
	DeleteRowsV1       EventType = 25
	WriteRowsV2        EventType = 30
	UpdateRowsV2       EventType = 31
	DeleteRowsV2       EventType = 32
	MariaQueryCompress EventType = 165
	MariaWriteRowsC    EventType = 166 // MariaDB compressed rows events, v1 and v2: 166-171
	MariaDeleteRowsCV1 EventType = 171
)

// IsRowsEvent reports whether t carries row changes (including table maps
// and MariaDB's compressed row events): events that the BINLOG statement
// applies.
func IsRowsEvent(t EventType) bool {
	switch {
	case t == TableMapEvent, t >= WriteRowsV1 && t <= DeleteRowsV1, t >= WriteRowsV2 && t <= DeleteRowsV2,
		t >= MariaWriteRowsC && t <= MariaDeleteRowsCV1:
		return true
	}
	return false
}

// RowsStmtEnd reports whether a rows event ends its statement (STMT_END_F):
// the table maps it uses may be forgotten after it.
func RowsStmtEnd(ev []byte) bool {
	if len(ev) < HeaderLen+8 {
		return false
	}
	return binary.LittleEndian.Uint16(ev[HeaderLen+6:])&0x0001 != 0
}

// TableMapName returns schema and table of a table map event.
func TableMapName(ev []byte) (schema, table string, err error) {
	b := ev[HeaderLen:]
	if len(b) < 9 {
		return "", "", fmt.Errorf("%w: table map of %d bytes", ErrShortEvent, len(ev))
	}
	b = b[8:] // table id (6) + flags (2)
	n := int(b[0])
	if len(b) < 1+n+2 {
		return "", "", fmt.Errorf("%w: table map schema", ErrShortEvent)
	}
	schema = string(b[1 : 1+n])
	b = b[1+n+1:]
	m := int(b[0])
	if len(b) < 1+m {
		return "", "", fmt.Errorf("%w: table map table", ErrShortEvent)
	}
	return schema, string(b[1 : 1+m]), nil
}

// Query is a decoded Query event with the session context the master ran
// it in.
type Query struct {
	Timestamp uint32
	ServerID  uint32
	DB        string
	Text      string
	ErrorCode uint16
	// Context from the status variables; nil when absent.
	SQLMode        *uint64
	CharsetClient  *uint16
	CollationConn  *uint16
	CollationSrv   *uint16
	TimeZone       *string
	Microseconds   *uint32
	AutoIncrement  *[2]uint16 // increment, offset
	LCTimeNames    *uint16
	CharsetDB      *uint16
	FlagsTwo       *uint32
	unknownStopped bool // a status variable of unknown size ended parsing
}

// Incomplete reports whether a status variable of unknown size stopped the
// decoding of the session context.
func (q Query) Incomplete() bool { return q.unknownStopped }

// ParseQuery decodes a Query event (with checksum when checksummed).
func ParseQuery(ev []byte, checksummed bool) (Query, error) {
	h, err := ParseHeader(ev)
	if err != nil {
		return Query{}, err
	}
	end := len(ev)
	if checksummed {
		end -= 4
	}
	b := ev[HeaderLen:end]
	if len(b) < 13 {
		return Query{}, fmt.Errorf("%w: query event of %d bytes", ErrShortEvent, len(ev))
	}
	q := Query{Timestamp: h.Timestamp, ServerID: h.ServerID, ErrorCode: binary.LittleEndian.Uint16(b[9:])}
	dbLen := int(b[8])
	statusLen := int(binary.LittleEndian.Uint16(b[11:]))
	if 13+statusLen+dbLen+1 > len(b) {
		return Query{}, fmt.Errorf("%w: query event status block", ErrShortEvent)
	}
	q.parseStatus(b[13 : 13+statusLen])
	q.DB = string(b[13+statusLen : 13+statusLen+dbLen])
	q.Text = string(b[13+statusLen+dbLen+1:])
	return q, nil
}

// parseStatus decodes the status variables the applier replays and skips
// the others by their known sizes.
func (q *Query) parseStatus(s []byte) {
	u16 := func(b []byte) *uint16 { v := binary.LittleEndian.Uint16(b); return &v }
	for len(s) > 0 {
		code := s[0]
		s = s[1:]
		need := func(n int) bool { return len(s) >= n }
		switch code {
		case 0: // Q_FLAGS2_CODE
			if !need(4) {
				return
			}
			v := binary.LittleEndian.Uint32(s)
			q.FlagsTwo, s = &v, s[4:]
		case 1: // Q_SQL_MODE_CODE
			if !need(8) {
				return
			}
			v := binary.LittleEndian.Uint64(s)
			q.SQLMode, s = &v, s[8:]
		case 2: // Q_CATALOG_CODE: len, string, NUL
			if !need(1) || !need(2+int(s[0])) {
				return
			}
			s = s[2+int(s[0]):]
		case 3: // Q_AUTO_INCREMENT
			if !need(4) {
				return
			}
			q.AutoIncrement, s = &[2]uint16{binary.LittleEndian.Uint16(s), binary.LittleEndian.Uint16(s[2:])}, s[4:]
		case 4: // Q_CHARSET_CODE
			if !need(6) {
				return
			}
			q.CharsetClient, q.CollationConn, q.CollationSrv, s = u16(s), u16(s[2:]), u16(s[4:]), s[6:]
		case 5: // Q_TIME_ZONE_CODE
			if !need(1) || !need(1+int(s[0])) {
				return
			}
			tz := string(s[1 : 1+int(s[0])])
			q.TimeZone, s = &tz, s[1+int(s[0]):]
		case 6: // Q_CATALOG_NZ_CODE
			if !need(1) || !need(1+int(s[0])) {
				return
			}
			s = s[1+int(s[0]):]
		case 7: // Q_LC_TIME_NAMES_CODE
			if !need(2) {
				return
			}
			q.LCTimeNames, s = u16(s), s[2:]
		case 8: // Q_CHARSET_DATABASE_CODE
			if !need(2) {
				return
			}
			q.CharsetDB, s = u16(s), s[2:]
		case 9: // Q_TABLE_MAP_FOR_UPDATE_CODE
			if !need(8) {
				return
			}
			s = s[8:]
		case 10: // Q_MASTER_DATA_WRITTEN_CODE
			if !need(4) {
				return
			}
			s = s[4:]
		case 11: // Q_INVOKER: user and host, each length-prefixed
			if !need(1) || !need(1+int(s[0])) {
				return
			}
			s = s[1+int(s[0]):]
			if !need(1) || !need(1+int(s[0])) {
				return
			}
			s = s[1+int(s[0]):]
		case 12: // Q_UPDATED_DB_NAMES: count, then NUL-terminated names
			if !need(1) {
				return
			}
			n := int(s[0])
			s = s[1:]
			if n == 254 { // OVER_MAX_DBS_IN_EVENT_MTS: no names follow
				n = 0
			}
			for range n {
				i := 0
				for i < len(s) && s[i] != 0 {
					i++
				}
				if i == len(s) {
					return
				}
				s = s[i+1:]
			}
		case 13: // Q_MICROSECONDS
			if !need(3) {
				return
			}
			v := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16
			q.Microseconds, s = &v, s[3:]
		case 128: // MariaDB Q_HRNOW: microseconds
			if !need(3) {
				return
			}
			v := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16
			q.Microseconds, s = &v, s[3:]
		case 129: // MariaDB Q_XID
			if !need(8) {
				return
			}
			s = s[8:]
		default:
			q.unknownStopped = true
			return
		}
	}
}
