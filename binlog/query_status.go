package binlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// StatusCode is the code byte of a Query event's status variable. Each
// variable is its code followed by a value whose size the code determines,
// so a reader must know every code it meets.
//
// MySQL and MariaDB share codes 0-11. From there they diverge: MySQL numbers
// its own 12 upward (12-20 in 8.0), MariaDB numbers its own 128 upward
// (128-130 in 10.11). No code means two different things in the two
// flavors, so the package decodes either without knowing which wrote it.
type StatusCode uint8

// The status variable codes, as named in MariaDB's sql/log_event.h and
// MySQL's libbinlogevents/include/statement_events.h.
const (
	QFlags2Code                   StatusCode = 0
	QSQLModeCode                  StatusCode = 1
	QCatalogCode                  StatusCode = 2 // MySQL 5.0.0-5.0.3 only
	QAutoIncrement                StatusCode = 3
	QCharsetCode                  StatusCode = 4
	QTimeZoneCode                 StatusCode = 5
	QCatalogNZCode                StatusCode = 6
	QLCTimeNamesCode              StatusCode = 7
	QCharsetDatabaseCode          StatusCode = 8
	QTableMapForUpdateCode        StatusCode = 9
	QMasterDataWrittenCode        StatusCode = 10
	QInvoker                      StatusCode = 11
	QUpdatedDBNames               StatusCode = 12  // MySQL
	QMicroseconds                 StatusCode = 13  // MySQL
	QExplicitDefaultsForTimestamp StatusCode = 16  // MySQL
	QDDLLoggedWithXID             StatusCode = 17  // MySQL
	QDefaultCollationForUTF8MB4   StatusCode = 18  // MySQL
	QSQLRequirePrimaryKey         StatusCode = 19  // MySQL
	QDefaultTableEncryption       StatusCode = 20  // MySQL
	QHRNow                        StatusCode = 128 // MariaDB
	QXID                          StatusCode = 129 // MariaDB
	QGTIDFlags3                   StatusCode = 130 // MariaDB
)

// String returns the server's name for the code, with the number.
func (c StatusCode) String() string {
	if v := lookupStatusVar(c); v != nil {
		return fmt.Sprintf("%s (%d)", v.name, uint8(c))
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// statusVar describes one status variable: its name, its flavor ("" when
// both write it), the size of its value (size, or sizeOf for a value whose
// size is in its first bytes) and how to store it into a Query.
type statusVar struct {
	name   string
	flavor string
	size   int
	sizeOf func(rest []byte) (int, error) // rest: the status block after the code
	decode func(q *Query, v []byte) error // v: exactly the value
}

// statusVars is the one table of the status variables the package decodes,
// indexed by code. Sizes were checked against the writers and readers of
// MariaDB 10.11.18 (Query_log_event::write in sql/log_event_server.cc and
// Query_log_event::Query_log_event in sql/log_event.cc) and MySQL 8.0
// (Query_event::Query_event in libbinlogevents/src/statement_events.cpp,
// the 8.x layout of libs/mysql/binlog/event/statement_events.cpp).
var statusVars = [...]statusVar{
	QFlags2Code:  {name: "Q_FLAGS2_CODE", size: 4, decode: func(q *Query, v []byte) error { q.FlagsTwo = ptr(le32(v)); return nil }},
	QSQLModeCode: {name: "Q_SQL_MODE_CODE", size: 8, decode: func(q *Query, v []byte) error { q.SQLMode = ptr(le64(v)); return nil }},
	QCatalogCode: {name: "Q_CATALOG_CODE", sizeOf: catalogZSize, decode: decodeCatalogZ},
	QAutoIncrement: {name: "Q_AUTO_INCREMENT", size: 4, decode: func(q *Query, v []byte) error {
		q.AutoIncrement = &[2]uint16{le16(v), le16(v[2:])}
		return nil
	}},
	QCharsetCode: {name: "Q_CHARSET_CODE", size: 6, decode: func(q *Query, v []byte) error {
		q.CharsetClient, q.CollationConn, q.CollationSrv = ptr(le16(v)), ptr(le16(v[2:])), ptr(le16(v[4:]))
		return nil
	}},
	QTimeZoneCode:          {name: "Q_TIME_ZONE_CODE", sizeOf: lenStrSize, decode: func(q *Query, v []byte) error { q.TimeZone = ptr(string(v[1:])); return nil }},
	QCatalogNZCode:         {name: "Q_CATALOG_NZ_CODE", sizeOf: lenStrSize, decode: func(q *Query, v []byte) error { q.Catalog = ptr(string(v[1:])); return nil }},
	QLCTimeNamesCode:       {name: "Q_LC_TIME_NAMES_CODE", size: 2, decode: func(q *Query, v []byte) error { q.LCTimeNames = ptr(le16(v)); return nil }},
	QCharsetDatabaseCode:   {name: "Q_CHARSET_DATABASE_CODE", size: 2, decode: func(q *Query, v []byte) error { q.CharsetDB = ptr(le16(v)); return nil }},
	QTableMapForUpdateCode: {name: "Q_TABLE_MAP_FOR_UPDATE_CODE", size: 8, decode: func(q *Query, v []byte) error { q.TableMapForUpdate = ptr(le64(v)); return nil }},
	QMasterDataWrittenCode: {name: "Q_MASTER_DATA_WRITTEN_CODE", size: 4, decode: func(q *Query, v []byte) error { q.MasterDataWritten = ptr(le32(v)); return nil }},
	QInvoker:               {name: "Q_INVOKER", sizeOf: invokerSize, decode: decodeInvoker},
	QUpdatedDBNames:        {name: "Q_UPDATED_DB_NAMES", flavor: "MySQL", sizeOf: updatedDBsSize, decode: decodeUpdatedDBs},
	QMicroseconds:          {name: "Q_MICROSECONDS", flavor: "MySQL", size: 3, decode: decodeMicroseconds},
	QExplicitDefaultsForTimestamp: {name: "Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP", flavor: "MySQL", size: 1, decode: func(q *Query, v []byte) error {
		q.ExplicitDefaultsTS = ptr(v[0] != 0)
		return nil
	}},
	QDDLLoggedWithXID: {name: "Q_DDL_LOGGED_WITH_XID", flavor: "MySQL", size: 8, decode: func(q *Query, v []byte) error { q.DDLXID = ptr(le64(v)); return nil }},
	QDefaultCollationForUTF8MB4: {name: "Q_DEFAULT_COLLATION_FOR_UTF8MB4", flavor: "MySQL", size: 2, decode: func(q *Query, v []byte) error {
		q.DefaultCollationUTF8MB4 = ptr(le16(v))
		return nil
	}},
	QSQLRequirePrimaryKey:   {name: "Q_SQL_REQUIRE_PRIMARY_KEY", flavor: "MySQL", size: 1, decode: func(q *Query, v []byte) error { q.SQLRequirePrimaryKey = ptr(v[0]); return nil }},
	QDefaultTableEncryption: {name: "Q_DEFAULT_TABLE_ENCRYPTION", flavor: "MySQL", size: 1, decode: func(q *Query, v []byte) error { q.DefaultTableEncryption = ptr(v[0]); return nil }},
	QHRNow:                  {name: "Q_HRNOW", flavor: "MariaDB", size: 3, decode: decodeMicroseconds},
	QXID:                    {name: "Q_XID", flavor: "MariaDB", size: 8, decode: func(q *Query, v []byte) error { q.XID = ptr(le64(v)); return nil }},
	QGTIDFlags3:             {name: "Q_GTID_FLAGS3", flavor: "MariaDB", sizeOf: gtidFlags3Size, decode: decodeGTIDFlags3},
}

// lookupStatusVar returns the table entry of code, or nil.
func lookupStatusVar(code StatusCode) *statusVar {
	if int(code) < len(statusVars) && statusVars[code].decode != nil {
		return &statusVars[code]
	}
	return nil
}

// unknownHint names codes that exist but that the package does not decode.
func unknownHint(code StatusCode) string {
	switch code {
	case 14, 15:
		return " (MySQL's unused Q_COMMIT_TS/Q_COMMIT_TS2, whose size even MySQL's reader does not know)"
	case 21:
		return " (Q_ENABLE_CASCADE_TRIGGERS of MySQL 9?)"
	case 131:
		return " (Q_CHARACTER_SET_COLLATIONS of MariaDB 11.x?)"
	}
	return ""
}

var errNoLength = errors.New("its length byte is missing")

// lenStrSize: a length byte and that many bytes (Q_TIME_ZONE_CODE,
// Q_CATALOG_NZ_CODE).
func lenStrSize(rest []byte) (int, error) {
	if len(rest) < 1 {
		return 0, errNoLength
	}
	return 1 + int(rest[0]), nil
}

// catalogZSize: a length byte, that many bytes and a NUL (Q_CATALOG_CODE).
func catalogZSize(rest []byte) (int, error) {
	if len(rest) < 1 {
		return 0, errNoLength
	}
	return 1 + int(rest[0]) + 1, nil
}

func decodeCatalogZ(q *Query, v []byte) error {
	if v[len(v)-1] != 0 {
		return errors.New("the catalog is not NUL-terminated")
	}
	q.Catalog = ptr(string(v[1 : len(v)-1]))
	return nil
}

// invokerSize: a length byte and the user, a length byte and the host.
func invokerSize(rest []byte) (int, error) {
	if len(rest) < 1 {
		return 0, errors.New("the user's length byte is missing")
	}
	u := 1 + int(rest[0])
	if len(rest) < u+1 {
		return 0, fmt.Errorf("the host's length byte is missing (%d bytes left, the user needs %d)", len(rest), u)
	}
	return u + 1 + int(rest[u]), nil
}

func decodeInvoker(q *Query, v []byte) error {
	u := int(v[0])
	q.Invoker = &Invoker{User: string(v[1 : 1+u]), Host: string(v[2+u:])}
	return nil
}

// MySQL's MAX_DBS_IN_EVENT_MTS: a count above it (the writer puts
// OVER_MAX_DBS_IN_EVENT_MTS, 254) means no names follow.
const maxDBsInEvent = 16

// updatedDBsSize: a count byte and that many NUL-terminated names
// (Q_UPDATED_DB_NAMES).
func updatedDBsSize(rest []byte) (int, error) {
	if len(rest) < 1 {
		return 0, errors.New("its count byte is missing")
	}
	n := int(rest[0])
	if n > maxDBsInEvent {
		return 1, nil
	}
	off := 1
	for i := 0; i < n; i++ {
		nul := bytes.IndexByte(rest[off:], 0)
		if nul < 0 {
			return 0, fmt.Errorf("database name %d of %d runs past the status block", i+1, n)
		}
		off += nul + 1
	}
	return off, nil
}

func decodeUpdatedDBs(q *Query, v []byte) error {
	n := int(v[0])
	if n > maxDBsInEvent {
		q.UpdatedDBsOverMax = true
		return nil
	}
	if n == 0 {
		return errors.New("a count of 0 databases") // MySQL's reader refuses it too
	}
	q.UpdatedDBs = make([]string, 0, n)
	for _, name := range bytes.SplitAfter(v[1:], []byte{0}) {
		if len(name) > 0 {
			q.UpdatedDBs = append(q.UpdatedDBs, string(name[:len(name)-1]))
		}
	}
	return nil
}

func decodeMicroseconds(q *Query, v []byte) error {
	us := uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16
	if us > 999999 {
		return fmt.Errorf("%d microseconds", us)
	}
	q.Microseconds = &us
	return nil
}

// gtidFlags3Size: a flags byte, and the START ALTER's seq_no (8 bytes) when
// it says COMMIT or ROLLBACK ALTER (Q_GTID_FLAGS3).
func gtidFlags3Size(rest []byte) (int, error) {
	if len(rest) < 1 {
		return 0, errors.New("its flags byte is missing")
	}
	if rest[0]&(AlterCommit|AlterRollback) != 0 {
		return 9, nil
	}
	return 1, nil
}

func decodeGTIDFlags3(q *Query, v []byte) error {
	q.AlterFlags = ptr(v[0])
	if len(v) == 9 {
		q.StartAlterSeq = ptr(le64(v[1:]))
	}
	return nil
}

func ptr[T any](v T) *T    { return &v }
func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
