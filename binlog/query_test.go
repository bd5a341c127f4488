package binlog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// buildQuery builds a Query event: header, post-header, the status block as
// given, db, NUL, text and, with crc, the checksum.
func buildQuery(status []byte, db, text string, errCode uint16, crc bool) []byte {
	body := binary.LittleEndian.AppendUint32(nil, 7) // thread_id
	body = binary.LittleEndian.AppendUint32(body, 0) // exec_time
	body = append(body, byte(len(db)))
	body = binary.LittleEndian.AppendUint16(body, errCode)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(status)))
	body = append(body, status...)
	body = append(append(body, db...), 0)
	body = append(body, text...)
	size := HeaderLen + len(body)
	if crc {
		size += 4
	}
	ev := binary.LittleEndian.AppendUint32(nil, 1700000000)
	ev = append(ev, byte(QueryEvent))
	ev = binary.LittleEndian.AppendUint32(ev, 1)
	ev = binary.LittleEndian.AppendUint32(ev, uint32(size))
	ev = binary.LittleEndian.AppendUint32(ev, 1000)
	ev = binary.LittleEndian.AppendUint16(ev, 0)
	ev = append(ev, body...)
	if crc {
		ev = binary.LittleEndian.AppendUint32(ev, crc32.ChecksumIEEE(ev))
	}
	return ev
}

// sv concatenates a status variable's code and value bytes.
func sv(code StatusCode, value ...byte) []byte { return append([]byte{byte(code)}, value...) }

func svs(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParseQueryStatusVars(t *testing.T) {
	u16 := func(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	tests := []struct {
		name    string
		status  []byte
		check   func(t *testing.T, q Query)
		wantErr error
	}{
		{name: "empty status block", status: nil, check: func(t *testing.T, q Query) {
			if q.FlagsTwo != nil || q.SQLMode != nil || len(q.Codes) != 0 {
				t.Errorf("got context from nothing: %+v", q)
			}
		}},
		{name: "MariaDB 10.11 common set", status: svs(
			sv(QFlags2Code, u32(0x01000000)...), sv(QSQLModeCode, u64(0x54200000)...), sv(QCatalogNZCode, 3, 's', 't', 'd'),
			sv(QAutoIncrement, svs(u16(5), u16(2))...), sv(QCharsetCode, svs(u16(45), u16(224), u16(8))...),
			sv(QTimeZoneCode, 6, '+', '0', '5', ':', '3', '0'), sv(QLCTimeNamesCode, u16(4)...), sv(QCharsetDatabaseCode, u16(8)...),
			sv(QTableMapForUpdateCode, u64(3)...), sv(QMasterDataWrittenCode, u32(99)...),
			sv(QInvoker, 4, 'r', 'o', 'o', 't', 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't'),
			sv(QHRNow, 0x3f, 0x42, 0x0f), sv(QXID, u64(77)...)),
			check: func(t *testing.T, q Query) {
				want := Query{
					FlagsTwo: ptr(uint32(0x01000000)), SQLMode: ptr(uint64(0x54200000)), Catalog: ptr("std"),
					AutoIncrement: &[2]uint16{5, 2}, CharsetClient: ptr(uint16(45)), CollationConn: ptr(uint16(224)),
					CollationSrv: ptr(uint16(8)), TimeZone: ptr("+05:30"), LCTimeNames: ptr(uint16(4)), CharsetDB: ptr(uint16(8)),
					TableMapForUpdate: ptr(uint64(3)), MasterDataWritten: ptr(uint32(99)), Invoker: &Invoker{"root", "localhost"},
					Microseconds: ptr(uint32(999999)), XID: ptr(uint64(77)),
					Codes: []StatusCode{0, 1, 6, 3, 4, 5, 7, 8, 9, 10, 11, 128, 129},
				}
				got := q
				got.Timestamp, got.ServerID, got.ThreadID, got.ExecTime, got.DB, got.Text = 0, 0, 0, 0, "", ""
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got  %s\nwant %s", dump(got), dump(want))
				}
			}},
		{name: "old catalog with NUL", status: sv(QCatalogCode, 3, 's', 't', 'd', 0), check: func(t *testing.T, q Query) {
			if q.Catalog == nil || *q.Catalog != "std" {
				t.Errorf("catalog %v", q.Catalog)
			}
		}},
		{name: "empty time zone and role invoker", status: svs(sv(QTimeZoneCode, 0), sv(QInvoker, 2, 'r', '1', 0)), check: func(t *testing.T, q Query) {
			if q.TimeZone == nil || *q.TimeZone != "" || q.Invoker == nil || *q.Invoker != (Invoker{"r1", ""}) {
				t.Errorf("time zone %v invoker %v", q.TimeZone, q.Invoker)
			}
		}},
		{name: "MySQL 8.0 set", status: svs(
			sv(QFlags2Code, u32(0)...), sv(QSQLModeCode, u64(0x44000000)...), sv(QCatalogNZCode, 3, 's', 't', 'd'),
			sv(QCharsetCode, svs(u16(255), u16(255), u16(255))...),
			sv(QUpdatedDBNames, 2, 'd', '1', 0, 'm', 'y', 'd', 'b', 0),
			sv(QMicroseconds, 1, 0, 0), sv(QExplicitDefaultsForTimestamp, 1), sv(QDDLLoggedWithXID, u64(12)...),
			sv(QDefaultCollationForUTF8MB4, u16(255)...), sv(QSQLRequirePrimaryKey, 0), sv(QDefaultTableEncryption, 1)),
			check: func(t *testing.T, q Query) {
				if !reflect.DeepEqual(q.UpdatedDBs, []string{"d1", "mydb"}) || q.UpdatedDBsOverMax {
					t.Errorf("updated dbs %q over %v", q.UpdatedDBs, q.UpdatedDBsOverMax)
				}
				if *q.Microseconds != 1 || !*q.ExplicitDefaultsTS || *q.DDLXID != 12 || *q.DefaultCollationUTF8MB4 != 255 ||
					*q.SQLRequirePrimaryKey != 0 || *q.DefaultTableEncryption != 1 {
					t.Errorf("got %s", dump(q))
				}
			}},
		{name: "MySQL updated dbs over the limit", status: sv(QUpdatedDBNames, 254), check: func(t *testing.T, q Query) {
			if !q.UpdatedDBsOverMax || q.UpdatedDBs != nil {
				t.Errorf("updated dbs %q over %v", q.UpdatedDBs, q.UpdatedDBsOverMax)
			}
		}},
		{name: "MariaDB start alter", status: sv(QGTIDFlags3, AlterStart), check: func(t *testing.T, q Query) {
			if *q.AlterFlags != AlterStart || q.StartAlterSeq != nil {
				t.Errorf("flags %v seq %v", q.AlterFlags, q.StartAlterSeq)
			}
		}},
		{name: "MariaDB commit alter", status: sv(QGTIDFlags3, append([]byte{AlterCommit}, u64(41)...)...), check: func(t *testing.T, q Query) {
			if *q.AlterFlags != AlterCommit || *q.StartAlterSeq != 41 {
				t.Errorf("flags %v seq %v", q.AlterFlags, q.StartAlterSeq)
			}
		}},

		{name: "unknown code 131 (MariaDB 11)", status: svs(sv(QFlags2Code, u32(0)...), sv(131, 1, 0, 0, 0, 0)), wantErr: ErrUnknownStatusVar},
		{name: "unknown code 14 (MySQL Q_COMMIT_TS)", status: sv(14, u64(1)...), wantErr: ErrUnknownStatusVar},
		{name: "unknown code 21", status: sv(21, 1), wantErr: ErrUnknownStatusVar},
		{name: "unknown code 255", status: sv(255), wantErr: ErrUnknownStatusVar},
		{name: "unknown code after a known one", status: svs(sv(QSQLModeCode, u64(0)...), sv(200)), wantErr: ErrUnknownStatusVar},
		{name: "flags2 cut", status: sv(QFlags2Code, 0, 0, 0), wantErr: ErrShortEvent},
		{name: "sql_mode cut", status: sv(QSQLModeCode, u32(0)...), wantErr: ErrShortEvent},
		{name: "charset cut", status: sv(QCharsetCode, 1, 2, 3, 4, 5), wantErr: ErrShortEvent},
		{name: "time zone length missing", status: sv(QTimeZoneCode), wantErr: ErrShortEvent},
		{name: "time zone cut", status: sv(QTimeZoneCode, 6, '+', '0'), wantErr: ErrShortEvent},
		{name: "old catalog without NUL", status: sv(QCatalogCode, 3, 's', 't', 'd', 'x'), wantErr: ErrBadEvent},
		{name: "old catalog cut", status: sv(QCatalogCode, 3, 's', 't', 'd'), wantErr: ErrShortEvent},
		{name: "invoker host length missing", status: sv(QInvoker, 4, 'r', 'o', 'o', 't'), wantErr: ErrShortEvent},
		{name: "invoker host cut", status: sv(QInvoker, 1, 'r', 5, 'l'), wantErr: ErrShortEvent},
		{name: "hrnow cut", status: sv(QHRNow, 1, 2), wantErr: ErrShortEvent},
		{name: "hrnow past a second", status: sv(QHRNow, 0x40, 0x42, 0x10), wantErr: ErrBadEvent},
		{name: "xid cut", status: sv(QXID, 1, 2, 3), wantErr: ErrShortEvent},
		{name: "commit alter without its seq_no", status: sv(QGTIDFlags3, AlterCommit, 1, 2), wantErr: ErrShortEvent},
		{name: "updated dbs name runs out", status: sv(QUpdatedDBNames, 2, 'a', 0, 'b'), wantErr: ErrShortEvent},
		{name: "updated dbs count zero", status: sv(QUpdatedDBNames, 0), wantErr: ErrBadEvent},
		{name: "duplicate code", status: svs(sv(QLCTimeNamesCode, 1, 0), sv(QLCTimeNamesCode, 2, 0)), wantErr: ErrBadEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, crc := range []bool{false, true} {
				q, err := ParseQuery(buildQuery(tt.status, "db1", "CREATE TABLE t (id int)", 0, crc), crc)
				if tt.wantErr != nil {
					var se *StatusVarError
					if !errors.Is(err, tt.wantErr) || !errors.As(err, &se) {
						t.Fatalf("crc %v: err = %v, want a *StatusVarError wrapping %v", crc, err, tt.wantErr)
					}
					if se.Offset < HeaderLen+queryPostHeaderLen || !strings.Contains(err.Error(), strconv.Itoa(int(se.Code))) {
						t.Fatalf("crc %v: error %q: offset %d or code %d missing", crc, err, se.Offset, se.Code)
					}
					continue
				}
				if err != nil {
					t.Fatalf("crc %v: %v", crc, err)
				}
				if q.DB != "db1" || q.Text != "CREATE TABLE t (id int)" || q.ThreadID != 7 {
					t.Fatalf("crc %v: db %q text %q thread %d", crc, q.DB, q.Text, q.ThreadID)
				}
				tt.check(t, q)
			}
		})
	}
}

// TestParseQueryErrorNamesCodeAndOffset pins the message an operator reads.
func TestParseQueryErrorNamesCodeAndOffset(t *testing.T) {
	status := svs(sv(QFlags2Code, 0, 0, 0, 0), sv(131, 0))
	_, err := ParseQuery(buildQuery(status, "", "x", 0, false), false)
	want := "query event status variable code 131 at byte 37: not one MariaDB 10.11 or MySQL 8.0 writes (Q_CHARACTER_SET_COLLATIONS of MariaDB 11.x?): binlog: unknown query event status variable"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	_, err = ParseQuery(buildQuery(sv(QTimeZoneCode, 9, 'U'), "", "x", 0, false), false)
	want = "query event status variable Q_TIME_ZONE_CODE (5) at byte 32: needs 10 bytes, 2 left in the 3-byte status block: binlog: event too short"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestParseQueryFrame(t *testing.T) {
	good := buildQuery(nil, "db", "SELECT 1", 0, true)
	setSize := func(ev []byte, n uint32) []byte {
		ev = append([]byte(nil), ev...)
		binary.LittleEndian.PutUint32(ev[9:], n)
		return ev
	}
	noNUL := buildQuery(nil, "db", "SELECT 1", 0, false)
	noNUL[HeaderLen+queryPostHeaderLen+2] = 'x'
	bigStatus := buildQuery(nil, "db", "SELECT 1", 0, false)
	binary.LittleEndian.PutUint16(bigStatus[HeaderLen+11:], 200)
	bigDB := buildQuery(nil, "db", "", 0, false)
	bigDB[HeaderLen+8] = 9
	tests := []struct {
		name    string
		ev      []byte
		crc     bool
		wantErr error
	}{
		{name: "good", ev: good, crc: true},
		{name: "no text", ev: buildQuery(nil, "", "", 0, false)},
		{name: "header only", ev: good[:HeaderLen], crc: true, wantErr: ErrBadEvent},
		{name: "header only, size matching", ev: setSize(good[:HeaderLen], HeaderLen), crc: true, wantErr: ErrShortEvent},
		{name: "shorter than the header", ev: good[:10], wantErr: ErrShortEvent},
		{name: "size says more", ev: setSize(good, uint32(len(good)+1)), crc: true, wantErr: ErrBadEvent},
		{name: "size says less", ev: setSize(good, uint32(len(good)-1)), crc: true, wantErr: ErrBadEvent},
		{name: "post-header cut", ev: setSize(good[:HeaderLen+12], HeaderLen+12), wantErr: ErrShortEvent},
		{name: "database not NUL-terminated", ev: noNUL, wantErr: ErrBadEvent},
		{name: "status block past the end", ev: bigStatus, wantErr: ErrShortEvent},
		{name: "database past the end", ev: bigDB, wantErr: ErrShortEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQuery(tt.ev, tt.crc)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseQuery: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestQueryMasterError(t *testing.T) {
	tests := []struct {
		name    string
		code    uint16
		wantErr bool
	}{
		{name: "success", code: 0},
		{name: "duplicate key", code: 1062, wantErr: true},
		{name: "interrupted", code: 1317, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := ParseQuery(buildQuery(nil, "", "INSERT INTO m VALUES (1), (1)", tt.code, false), false)
			if err != nil {
				t.Fatal(err)
			}
			err = q.MasterError()
			if (err != nil) != tt.wantErr {
				t.Fatalf("MasterError() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && (!errors.Is(err, ErrFailedOnMaster) || !strings.Contains(err.Error(), "error "+strconv.Itoa(int(tt.code)))) {
				t.Fatalf("MasterError() = %v: no ErrFailedOnMaster or no code", err)
			}
		})
	}
}

func TestFlags2Written(t *testing.T) {
	base := OptionAutoIsNull | OptionNotAutocommit | OptionNoForeignKeyChecks | OptionRelaxedUniqueChecks |
		OptionInsertHistory | OptionNoCheckConstraintChecks
	fde := func(version string) []byte {
		b := make([]byte, HeaderLen+2+50+40)
		copy(b[HeaderLen+2:], version)
		return b
	}
	tests := []struct {
		name    string
		fde     []byte
		want    uint32
		version string
	}{
		{name: "10.11", fde: fde("10.11.6-MariaDB-log"), want: base | OptionIfExists | OptionExplicitDefTimestamp, version: "10.11.6-MariaDB-log"},
		{name: "11.4", fde: fde("11.4.2-MariaDB"), want: base | OptionIfExists | OptionExplicitDefTimestamp},
		{name: "10.6.9 first with explicit defaults", fde: fde("10.6.9-MariaDB"), want: base | OptionIfExists | OptionExplicitDefTimestamp},
		{name: "10.6.8", fde: fde("10.6.8-MariaDB"), want: base | OptionIfExists},
		{name: "10.5.2", fde: fde("10.5.2-MariaDB"), want: base | OptionIfExists},
		{name: "10.4", fde: fde("10.4.30-MariaDB"), want: base},
		{name: "MySQL", fde: fde("8.0.36"), want: base, version: "8.0.36"},
		{name: "garbage version", fde: fde("x.y"), want: base},
		{name: "too short", fde: make([]byte, 30), want: base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Flags2Written(tt.fde); got != tt.want {
				t.Fatalf("Flags2Written = %#x, want %#x", got, tt.want)
			}
			if tt.version != "" && FDEServerVersion(tt.fde) != tt.version {
				t.Fatalf("FDEServerVersion = %q", FDEServerVersion(tt.fde))
			}
		})
	}
}

// sqlModeBits are MariaDB's sql_mode bits (MODE_* in sql/sql_class.h).
var sqlModeBits = map[string]uint64{
	"PIPES_AS_CONCAT": 1 << 1, "ANSI_QUOTES": 1 << 2, "NO_AUTO_VALUE_ON_ZERO": 1 << 19, "STRICT_TRANS_TABLES": 1 << 21,
	"STRICT_ALL_TABLES": 1 << 22, "ERROR_FOR_DIVISION_BY_ZERO": 1 << 26, "NO_AUTO_CREATE_USER": 1 << 28,
	"NO_ENGINE_SUBSTITUTION": 1 << 30,
}

func sqlMode(modes ...string) uint64 {
	var m uint64
	for _, s := range modes {
		m |= sqlModeBits[s]
	}
	return m
}

// captureWant is what the SQL session of a capture (NN-name.sql) says its
// event must hold. A zero field means the variable is absent (nil), except
// sqlMode, charset and db, whose zero values mean the session defaults.
type captureWant struct {
	sqlMode    *uint64
	charset    [3]uint16 // client, connection, server collation ids
	db         string
	text       string // a prefix of the statement
	errorCode  uint16
	tz         string
	lc         uint16
	charsetDB  uint16
	autoInc    [2]uint16
	flags2     uint32 // bits that must be set
	invoker    *Invoker
	xid        bool
	hrnow      bool
	tableMap   bool
	alterFlags uint8
}

// The sessions default to MariaDB 10.11's sql_mode, utf8mb4_general_ci (45)
// for client and connection, latin1_swedish_ci (8) for the server, and a
// flags2 with explicit_defaults_for_timestamp on.
var (
	defaultMode    = sqlMode("STRICT_TRANS_TABLES", "ERROR_FOR_DIVISION_BY_ZERO", "NO_AUTO_CREATE_USER", "NO_ENGINE_SUBSTITUTION")
	defaultCharset = [3]uint16{45, 45, 8}
	root           = &Invoker{"root", "localhost"}
)

var captureWants = map[string]captureWant{
	"01-create-database":                  {text: "CREATE DATABASE hs_cap"},
	"02-create-table-defaults":            {text: "CREATE TABLE t_default", xid: true},
	"03-sql-mode-ansi":                    {sqlMode: ptr(sqlMode("ANSI_QUOTES", "PIPES_AS_CONCAT", "NO_AUTO_VALUE_ON_ZERO", "STRICT_ALL_TABLES")), text: `CREATE TABLE "t_ansi"`, xid: true},
	"04-sql-mode-empty":                   {sqlMode: ptr(uint64(0)), text: "CREATE TABLE t_nomode", xid: true},
	"05-time-zone-offset":                 {text: "CREATE TABLE t_tz_offset", tz: "+05:30", xid: true},
	"06-time-zone-named":                  {text: "CREATE TABLE t_tz_named", tz: "Europe/Paris", xid: true},
	"07-charset-latin1":                   {charset: [3]uint16{8, 8, 8}, text: "CREATE TABLE t_latin1", xid: true},
	"08-collation-unicode-server-latin2":  {charset: [3]uint16{224, 224, 9}, text: "CREATE TABLE t_unicode", xid: true},
	"09-collation-database":               {text: "CREATE TABLE t_cdb", charsetDB: 8, xid: true},
	"10-lc-time-names":                    {text: "CREATE TABLE t_lc", lc: 4, xid: true},
	"11-auto-increment":                   {text: "CREATE TABLE t_ai", autoInc: [2]uint16{5, 2}, xid: true},
	"12-flags2":                           {text: "CREATE TABLE t_fk", flags2: OptionNoForeignKeyChecks | OptionRelaxedUniqueChecks | OptionAutoIsNull, xid: true},
	"13-no-default-db":                    {db: "-", text: "CREATE TABLE hs_cap.t_nodb", charsetDB: 8, xid: true},
	"14-drop-if-exists-missing":           {text: "DROP TABLE IF EXISTS `t_missing`", xid: true},
	"15-drop-partial-myisam":              {text: "DROP TABLE `m_exists`,`t_missing`", xid: true},
	"16-drop-table":                       {text: "DROP TABLE `t_nomode`", xid: true},
	"17-create-user-grant-1":              {text: "CREATE USER 'app'@'localhost'"},
	"17-create-user-grant-2":              {text: "GRANT SELECT ON hs_cap.*", invoker: root},
	"18-create-role":                      {text: "CREATE ROLE r_app", invoker: root},
	"19-view-definer-current-user":        {text: "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost`", invoker: root, xid: true},
	"20-procedure-no-definer":             {text: "CREATE DEFINER=`root`@`localhost` PROCEDURE", invoker: root},
	"21-create-select-now6":               {text: "CREATE TABLE `t_now`"},
	"22-myisam-row-insert":                {text: "COMMIT"},
	"23-statement-now6":                   {text: "INSERT INTO t_now VALUES (NOW(6))", tz: "SYSTEM", hrnow: true},
	"24-statement-multi-update":           {text: "UPDATE t_default a, t_ai b", tableMap: true},
	"25-statement-duplicate-key-myisam-1": {text: "INSERT INTO m_dup", errorCode: 1062},
	"25-statement-duplicate-key-myisam-2": {text: "COMMIT"},
	"26-two-phase-alter-1":                {text: "ALTER TABLE t_default ADD COLUMN c2", alterFlags: AlterStart},
	"26-two-phase-alter-2":                {text: "ALTER TABLE t_default ADD COLUMN c2", alterFlags: AlterCommit, xid: true},
	"27-two-phase-alter-rollback-1":       {text: "ALTER TABLE t_dups ADD UNIQUE", alterFlags: AlterStart},
	"27-two-phase-alter-rollback-2":       {text: "ALTER TABLE t_dups ADD UNIQUE", alterFlags: AlterRollback, errorCode: 1062},
	"28-rename-table":                     {text: "RENAME TABLE t_latin1 TO t_latin1_renamed", xid: true},
}

// readCaptures returns the events of testdata/query by name (without .hex).
func readCaptures(t testing.TB) map[string][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "query", "*.hex"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in testdata/query: %v", err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := hex.DecodeString(strings.Join(strings.Fields(string(text)), ""))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".hex")] = ev
	}
	return out
}

// TestParseQueryCaptures decodes every Query event captured from MariaDB
// 10.11 and checks it against the SQL session that produced it and against
// mariadb-binlog's reading of the same event.
func TestParseQueryCaptures(t *testing.T) {
	caps := readCaptures(t)
	names := make([]string, 0, len(caps))
	for name := range caps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ev := caps[name]
			if err := VerifyChecksum(ev); err != nil {
				t.Fatal(err)
			}
			q, err := ParseQuery(ev, true)
			if err != nil {
				t.Fatal(err)
			}
			want, ok := captureWants[name]
			if !ok {
				t.Fatalf("no expectations for capture %s: add it to captureWants", name)
			}
			checkCapture(t, q, want)
			checkAgainstMariadbBinlog(t, ev, q, filepath.Join("testdata", "query", name+".mariadb-binlog.txt"))
		})
	}
	for name := range captureWants {
		if _, ok := caps[name]; !ok {
			t.Errorf("capture %s is expected but missing from testdata/query", name)
		}
	}
}

func checkCapture(t *testing.T, q Query, w captureWant) {
	t.Helper()
	if w.sqlMode == nil {
		w.sqlMode = &defaultMode
	}
	if w.charset == ([3]uint16{}) {
		w.charset = defaultCharset
	}
	switch w.db {
	case "":
		w.db = "hs_cap"
	case "-":
		w.db = ""
	}
	if q.SQLMode == nil || *q.SQLMode != *w.sqlMode {
		t.Errorf("sql_mode %#x, want %#x", deref(q.SQLMode), *w.sqlMode)
	}
	if q.CharsetClient == nil || [3]uint16{*q.CharsetClient, *q.CollationConn, *q.CollationSrv} != w.charset {
		t.Errorf("charset %v/%v/%v, want %v", deref(q.CharsetClient), deref(q.CollationConn), deref(q.CollationSrv), w.charset)
	}
	if q.DB != w.db || !strings.HasPrefix(q.Text, w.text) || q.ErrorCode != w.errorCode {
		t.Errorf("db %q text %q error %d, want %q, %q..., %d", q.DB, q.Text, q.ErrorCode, w.db, w.text, w.errorCode)
	}
	if q.Catalog == nil || *q.Catalog != "std" || q.FlagsTwo == nil || q.ServerID != 1 {
		t.Errorf("catalog %v flags2 %v server_id %d", q.Catalog, q.FlagsTwo, q.ServerID)
	}
	if got := deref(q.TimeZone); got != w.tz {
		t.Errorf("time zone %q, want %q", got, w.tz)
	}
	if got := deref(q.LCTimeNames); got != w.lc {
		t.Errorf("lc_time_names %d, want %d", got, w.lc)
	}
	if got := deref(q.CharsetDB); got != w.charsetDB {
		t.Errorf("collation_database %d, want %d", got, w.charsetDB)
	}
	if got := deref(q.AutoIncrement); got != w.autoInc {
		t.Errorf("auto_increment %v, want %v", got, w.autoInc)
	}
	if w.flags2 != 0 && *q.FlagsTwo&w.flags2 != w.flags2 || *q.FlagsTwo&OptionExplicitDefTimestamp == 0 {
		t.Errorf("flags2 %#x, want bits %#x and explicit_defaults_for_timestamp", *q.FlagsTwo, w.flags2)
	}
	if !reflect.DeepEqual(q.Invoker, w.invoker) {
		t.Errorf("invoker %v, want %v", q.Invoker, w.invoker)
	}
	if (q.XID != nil) != w.xid || (q.Microseconds != nil) != w.hrnow || (q.TableMapForUpdate != nil) != w.tableMap {
		t.Errorf("xid %v microseconds %v table map %v, want %v %v %v", q.XID, q.Microseconds, q.TableMapForUpdate, w.xid, w.hrnow, w.tableMap)
	}
	if got := deref(q.AlterFlags); got != w.alterFlags {
		t.Errorf("alter flags %d, want %d", got, w.alterFlags)
	}
	if w.alterFlags&(AlterCommit|AlterRollback) != 0 && (q.StartAlterSeq == nil || *q.StartAlterSeq == 0) {
		t.Errorf("start alter seq_no %v", q.StartAlterSeq)
	}
}

// mariadb-binlog's lines for one Query event.
var (
	mbHeader  = regexp.MustCompile(`^#\d+ +\d+:\d+:\d+ server id (\d+) .*\tQuery\tthread_id=(\d+)\texec_time=\d+\terror_code=(\d+)\txid=(\d+)$`)
	mbSet     = regexp.MustCompile(`^SET (.*)/\*!\*/;$`)
	mbUse     = regexp.MustCompile("^use `(.*)`/\\*!\\*/;$")
	mbVar     = regexp.MustCompile(`^@@session\.([a-z_]+)=(.*)$`)
	mbBinlog  = regexp.MustCompile(`(?s)^(?:/\*!100600 )?BINLOG '\n(.*?)\n' ?(?:\*/)?/\*!\*/;`)
	mbCharset = map[uint16]string{8: "latin1", 9: "latin2", 33: "utf8mb3", 45: "utf8mb4", 224: "utf8mb4"}
)

// checkAgainstMariadbBinlog compares q with what mariadb-binlog printed for
// the same event when it was captured: an independent decoder.
func checkAgainstMariadbBinlog(t *testing.T, ev []byte, q Query, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]string{}
	var inEvent bool
	var text []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if m := mbHeader.FindStringSubmatch(line); m != nil {
			inEvent = true
			got["server_id"], got["thread_id"], got["error_code"], got["xid"] = m[1], m[2], m[3], m[4]
			continue
		}
		if !inEvent {
			continue
		}
		switch {
		case line == "/*!*/;":
			inEvent = false
		case mbUse.MatchString(line):
			got["db"] = mbUse.FindStringSubmatch(line)[1]
		case strings.HasPrefix(line, "SET TIMESTAMP="):
			got["timestamp"] = strings.TrimSuffix(strings.TrimPrefix(line, "SET TIMESTAMP="), "/*!*/;")
		case mbSet.MatchString(line):
			for _, a := range regexp.MustCompile(`, ?`).Split(mbSet.FindStringSubmatch(line)[1], -1) {
				if m := mbVar.FindStringSubmatch(a); m != nil {
					got[m[1]] = strings.Trim(m[2], "'")
				}
			}
		case strings.HasPrefix(line, "/*!\\C "):
		default:
			text = append(text, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) == 0 {
		t.Fatalf("%s: no Query event", path)
	}
	ts := strconv.FormatUint(uint64(q.Timestamp), 10)
	if q.Microseconds != nil {
		ts += "." + strings.Repeat("0", 6-len(strconv.Itoa(int(*q.Microseconds)))) + strconv.Itoa(int(*q.Microseconds))
	}
	inc := [2]uint16{1, 1}
	if q.AutoIncrement != nil {
		inc = *q.AutoIncrement
	}
	collDB := "DEFAULT"
	if q.CharsetDB != nil {
		collDB = strconv.Itoa(int(*q.CharsetDB))
	}
	bit := func(b uint32, on bool) string {
		if (*q.FlagsTwo&b != 0) == on {
			return "1"
		}
		return "0"
	}
	want := map[string]string{
		"server_id": strconv.Itoa(int(q.ServerID)), "thread_id": strconv.Itoa(int(q.ThreadID)),
		"pseudo_thread_id": strconv.Itoa(int(q.ThreadID)), "error_code": strconv.Itoa(int(q.ErrorCode)), "xid": strconv.FormatUint(deref(q.XID), 10),
		"timestamp": ts, "sql_mode": strconv.FormatUint(*q.SQLMode, 10),
		"auto_increment_increment": strconv.Itoa(int(inc[0])), "auto_increment_offset": strconv.Itoa(int(inc[1])),
		"character_set_client": mbCharset[*q.CharsetClient], "collation_connection": strconv.Itoa(int(*q.CollationConn)),
		"collation_server": strconv.Itoa(int(*q.CollationSrv)), "lc_time_names": strconv.Itoa(int(deref(q.LCTimeNames))),
		"collation_database": collDB,
		"foreign_key_checks": bit(OptionNoForeignKeyChecks, false), "sql_auto_is_null": bit(OptionAutoIsNull, true),
		"unique_checks": bit(OptionRelaxedUniqueChecks, false), "autocommit": bit(OptionNotAutocommit, false),
		"check_constraint_checks": bit(OptionNoCheckConstraintChecks, false), "sql_if_exists": bit(OptionIfExists, true),
		"explicit_defaults_for_timestamp":  bit(OptionExplicitDefTimestamp, true),
		"system_versioning_insert_history": bit(OptionInsertHistory, true),
	}
	if q.DB != "" && !q.SuppressUse {
		want["db"] = q.DB
	}
	if q.TimeZone != nil {
		want["time_zone"] = *q.TimeZone
	}
	if !reflect.DeepEqual(got, want) {
		for k := range merge(got, want) {
			if got[k] != want[k] {
				t.Errorf("%s: mariadb-binlog says %s=%q, ParseQuery %q", filepath.Base(path), k, got[k], want[k])
			}
		}
	}
	stmt := strings.Join(text, "\n")
	if m := mbBinlog.FindStringSubmatch(stmt); m != nil {
		// mariadb-binlog cannot print a two-phase ALTER as SQL and gives
		// the event itself, base64-encoded, to a BINLOG statement.
		raw, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(m[1], "\n", ""))
		if err != nil || !bytes.Equal(raw, ev) {
			t.Errorf("%s: the BINLOG statement is not the captured event (%v)", filepath.Base(path), err)
		}
		return
	}
	if stmt != q.Text {
		t.Errorf("%s: mariadb-binlog's statement %q, ParseQuery's %q", filepath.Base(path), stmt, q.Text)
	}
}

func merge(a, b map[string]string) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// dump prints the set fields of a Query, pointers followed.
func dump(q Query) string {
	v := reflect.ValueOf(q)
	var b strings.Builder
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				continue
			}
			f = f.Elem()
		}
		if !f.IsZero() {
			fmt.Fprintf(&b, "%s=%v ", v.Type().Field(i).Name, f.Interface())
		}
	}
	return b.String()
}
