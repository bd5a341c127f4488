package binlog

import (
	"encoding/binary"
	"fmt"
)

// queryPostHeaderLen is the size of a Query event's post-header in binlog
// v4 (MySQL 5.0+, every MariaDB): thread_id(4) exec_time(4) db_len(1)
// error_code(2) status_vars_len(2).
const queryPostHeaderLen = 13

// flagSuppressUse is the header flag LOG_EVENT_SUPPRESS_USE_F.
const flagSuppressUse uint16 = 0x0008

// Query is a decoded Query event: the statement, its default database, the
// master's error code and the session context the master ran it in.
//
// The pointer fields hold the status variables; nil means the master did not
// write that one. A master leaves out several of them when they hold their
// default value, and the defaults matter to whoever replays the statement:
// no AutoIncrement means auto_increment_increment = auto_increment_offset =
// 1, no LCTimeNames means en_US (0), no CharsetDB means the default
// database's collation, no TimeZone means the statement did not use the
// session time zone.
type Query struct {
	Timestamp uint32 // the header's timestamp: when the statement started
	ServerID  uint32
	ThreadID  uint32 // the master's pseudo_thread_id (temporary tables)
	ExecTime  uint32 // seconds the statement ran
	DB        string // the default database; "" for none
	Text      string // the statement, in the CharsetClient character set
	ErrorCode uint16 // the master's error for the statement; 0 when it succeeded

	// SuppressUse is the header flag LOG_EVENT_SUPPRESS_USE_F: the
	// statement must run without USE DB, which may not exist (CREATE,
	// ALTER and DROP DATABASE; COMMIT).
	SuppressUse bool

	FlagsTwo          *uint32    // Q_FLAGS2_CODE: option bits (foreign_key_checks, ...)
	SQLMode           *uint64    // Q_SQL_MODE_CODE: sql_mode as a bit set
	Catalog           *string    // Q_CATALOG_NZ_CODE or Q_CATALOG_CODE: always "std"
	AutoIncrement     *[2]uint16 // Q_AUTO_INCREMENT: increment, offset
	CharsetClient     *uint16    // Q_CHARSET_CODE: character_set_client (a collation id)
	CollationConn     *uint16    // Q_CHARSET_CODE: collation_connection
	CollationSrv      *uint16    // Q_CHARSET_CODE: collation_server
	TimeZone          *string    // Q_TIME_ZONE_CODE: time_zone, when the statement used it
	LCTimeNames       *uint16    // Q_LC_TIME_NAMES_CODE: lc_time_names as a locale number
	CharsetDB         *uint16    // Q_CHARSET_DATABASE_CODE: collation_database, when not the database's
	TableMapForUpdate *uint64    // Q_TABLE_MAP_FOR_UPDATE_CODE: tables a multi-table UPDATE changes
	MasterDataWritten *uint32    // Q_MASTER_DATA_WRITTEN_CODE: relay logs of pre-5.0 masters only
	Invoker           *Invoker   // Q_INVOKER: the user CURRENT_USER meant (grantor, definer)
	Microseconds      *uint32    // Q_MICROSECONDS (MySQL) or Q_HRNOW (MariaDB): NOW(6)'s fraction

	// MySQL only.
	UpdatedDBs              []string // Q_UPDATED_DB_NAMES: databases the statement changes
	UpdatedDBsOverMax       bool     // Q_UPDATED_DB_NAMES: more than 16 (no names written)
	ExplicitDefaultsTS      *bool    // Q_EXPLICIT_DEFAULTS_FOR_TIMESTAMP
	DDLXID                  *uint64  // Q_DDL_LOGGED_WITH_XID: the XID of an atomic DDL
	DefaultCollationUTF8MB4 *uint16  // Q_DEFAULT_COLLATION_FOR_UTF8MB4
	SQLRequirePrimaryKey    *uint8   // Q_SQL_REQUIRE_PRIMARY_KEY
	DefaultTableEncryption  *uint8   // Q_DEFAULT_TABLE_ENCRYPTION

	// MariaDB only.
	XID           *uint64 // Q_XID: the XID of an atomic DDL (crash recovery on the master)
	AlterFlags    *uint8  // Q_GTID_FLAGS3: AlterStart, AlterCommit or AlterRollback
	StartAlterSeq *uint64 // Q_GTID_FLAGS3: the GTID seq_no of the START ALTER a COMMIT/ROLLBACK ALTER ends

	// Codes lists the status variables in the order the event holds them.
	Codes []StatusCode
}

// Invoker is the account a statement's CURRENT_USER stood for on the master.
// A role (CURRENT_ROLE) has an empty Host.
type Invoker struct {
	User, Host string
}

// Bits of Query.AlterFlags (MariaDB's Gtid_log_event::FL_*_ALTER_E1), written
// by a master with binlog_alter_two_phase=ON: an ALTER TABLE is logged once
// when it starts and once more when it commits or rolls back, both events
// with the same statement text.
const (
	AlterStart    uint8 = 2 // FL_START_ALTER_E1: the ALTER began
	AlterCommit   uint8 = 4 // FL_COMMIT_ALTER_E1: the ALTER of StartAlterSeq completed
	AlterRollback uint8 = 8 // FL_ROLLBACK_ALTER_E1: the ALTER of StartAlterSeq failed
)

// StatusVarError is a status variable of a Query event that cannot be
// decoded. It wraps ErrUnknownStatusVar, ErrShortEvent (the value runs past
// the status block) or ErrBadEvent.
type StatusVarError struct {
	Code   StatusCode
	Offset int // of the code byte, from the start of the event
	Detail string
	Err    error
}

func (e *StatusVarError) Error() string {
	return fmt.Sprintf("query event status variable %s at byte %d: %s: %v", e.Code, e.Offset, e.Detail, e.Err)
}

// Unwrap returns the sentinel.
func (e *StatusVarError) Unwrap() error { return e.Err }

// ParseQuery decodes a Query event (with its trailing checksum when
// checksummed). It decodes every status variable MariaDB 10.11 and MySQL 8.0
// write and fails, with a *StatusVarError, on any other code and on a
// status block that ends inside a value: a Query event is decoded whole or
// not at all.
func ParseQuery(ev []byte, checksummed bool) (Query, error) {
	h, err := ParseHeader(ev)
	if err != nil {
		return Query{}, err
	}
	if int64(h.Size) != int64(len(ev)) {
		return Query{}, fmt.Errorf("%w: query event of %d bytes, its header says %d", ErrBadEvent, len(ev), h.Size)
	}
	end := len(ev)
	if checksummed {
		end -= 4
	}
	if end < HeaderLen+queryPostHeaderLen {
		return Query{}, fmt.Errorf("%w: query event of %d bytes", ErrShortEvent, len(ev))
	}
	b := ev[HeaderLen:end]
	q := Query{
		Timestamp: h.Timestamp, ServerID: h.ServerID,
		ThreadID:    binary.LittleEndian.Uint32(b[0:]),
		ExecTime:    binary.LittleEndian.Uint32(b[4:]),
		ErrorCode:   binary.LittleEndian.Uint16(b[9:]),
		SuppressUse: h.Flags&flagSuppressUse != 0,
	}
	dbLen := int(b[8])
	statusLen := int(binary.LittleEndian.Uint16(b[11:]))
	dbAt := queryPostHeaderLen + statusLen
	if dbAt+dbLen+1 > len(b) {
		return Query{}, fmt.Errorf("%w: query event of %d bytes: %d bytes of status variables and a %d-byte database name do not fit",
			ErrShortEvent, len(ev), statusLen, dbLen)
	}
	if err := q.parseStatus(b[queryPostHeaderLen:dbAt], HeaderLen+queryPostHeaderLen); err != nil {
		return Query{}, err
	}
	if b[dbAt+dbLen] != 0 {
		return Query{}, fmt.Errorf("%w: query event: the database name is not NUL-terminated", ErrBadEvent)
	}
	q.DB = string(b[dbAt : dbAt+dbLen])
	q.Text = string(b[dbAt+dbLen+1:])
	return q, nil
}

// MasterError returns nil when the statement succeeded on the master, and an
// error wrapping ErrFailedOnMaster that names the master's error code when
// it did not.
func (q Query) MasterError() error {
	if q.ErrorCode == 0 {
		return nil
	}
	return fmt.Errorf("%w with error %d", ErrFailedOnMaster, q.ErrorCode)
}

// parseStatus decodes the status block s, which starts at byte base of the
// event, through the statusVars table.
func (q *Query) parseStatus(s []byte, base int) error {
	var seen [256]bool
	for off := 0; off < len(s); {
		code := StatusCode(s[off])
		at := base + off
		v := lookupStatusVar(code)
		if v == nil {
			return &StatusVarError{Code: code, Offset: at, Detail: "not one MariaDB 10.11 or MySQL 8.0 writes" + unknownHint(code), Err: ErrUnknownStatusVar}
		}
		if seen[code] {
			return &StatusVarError{Code: code, Offset: at, Detail: "written twice", Err: ErrBadEvent}
		}
		seen[code] = true
		rest := s[off+1:]
		n := v.size
		if v.sizeOf != nil {
			var err error
			if n, err = v.sizeOf(rest); err != nil {
				return &StatusVarError{Code: code, Offset: at, Detail: err.Error(), Err: ErrShortEvent}
			}
		}
		if n > len(rest) {
			return &StatusVarError{Code: code, Offset: at,
				Detail: fmt.Sprintf("needs %d bytes, %d left in the %d-byte status block", n, len(rest), len(s)), Err: ErrShortEvent}
		}
		if err := v.decode(q, rest[:n]); err != nil {
			return &StatusVarError{Code: code, Offset: at, Detail: err.Error(), Err: ErrBadEvent}
		}
		q.Codes = append(q.Codes, code)
		off += 1 + n
	}
	return nil
}
