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
