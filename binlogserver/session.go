package binlogserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// session answers one replica connection's commands (server.Handler).
type session struct {
	s    *Server
	conn *server.Conn
	addr string
	ctx  context.Context

	heartbeat    time.Duration // @master_heartbeat_period (0: none)
	connectState *string       // @slave_connect_state (nil: not set, file/pos mode)
	strict       bool
	serverID     uint32 // from COM_REGISTER_SLAVE or the dump
	dumpErr      error  // why the dump ended
}

var (
	setUserVar = regexp.MustCompile(`(?is)^\s*SET\s+@(\w+)\s*:?=\s*(.*?)\s*;?\s*$`)
	selectVar  = regexp.MustCompile(`(?is)^\s*SELECT\s+(@@GLOBAL\.|@@)?@?(\w+)\s*(LIMIT\s+1)?\s*;?\s*$`)
	showVar    = regexp.MustCompile(`(?is)^\s*SHOW\s+(GLOBAL\s+|SESSION\s+)?VARIABLES\s+LIKE\s+'([^']*)'\s*;?\s*$`)
	gtidPos    = regexp.MustCompile(`(?is)^\s*SELECT\s+binlog_gtid_pos\s*\(`)
)

// UseDB accepts any database: nothing here reads one.
func (h *session) UseDB(string) error { return nil }

// HandleQuery answers the queries a MariaDB IO thread (and mariadb-binlog)
// sends before the dump.
func (h *session) HandleQuery(q string) (*mysql.Result, error) {
	trimmed := strings.TrimSpace(q)
	upper := strings.ToUpper(trimmed)
	switch {
	case strings.HasPrefix(upper, "SET NAMES"), strings.HasPrefix(upper, "SET SKIP_REPLICATION"),
		strings.HasPrefix(upper, "SET SESSION"), strings.HasPrefix(upper, "SET @@SESSION"):
		return nil, nil
	case strings.HasPrefix(upper, "SELECT UNIX_TIMESTAMP()"):
		return textResult([]string{"UNIX_TIMESTAMP()"}, strconv.FormatInt(time.Now().Unix(), 10))
	case strings.HasPrefix(upper, "SELECT VERSION()"):
		return textResult([]string{"VERSION()"}, h.s.cfg.Version)
	case gtidPos.MatchString(trimmed):
		return textResult([]string{"binlog_gtid_pos"}, nil)
	}
	if m := setUserVar.FindStringSubmatch(trimmed); m != nil {
		return h.setVar(strings.ToLower(m[1]), m[2])
	}
	if m := showVar.FindStringSubmatch(trimmed); m != nil {
		return h.showVariable(strings.ToLower(m[2]))
	}
	if m := selectVar.FindStringSubmatch(trimmed); m != nil {
		return h.selectVariable(strings.ToLower(m[2]), m[1] != "")
	}
	return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("hotstandby binlog server: query not supported: %.100s", trimmed))
}

// setVar takes the replica's session settings.
func (h *session) setVar(name, value string) (*mysql.Result, error) {
	unq := unquote(value)
	switch name {
	case "master_heartbeat_period":
		ns, err := strconv.ParseFloat(unq, 64)
		if err != nil || ns < 0 {
			return nil, mysql.NewError(mysql.ER_WRONG_VALUE_FOR_VAR, fmt.Sprintf("hotstandby binlog server: @master_heartbeat_period %q is not a number of nanoseconds", value))
		}
		h.heartbeat = time.Duration(ns)
	case "slave_connect_state":
		h.connectState = &unq
	case "slave_gtid_strict_mode":
		h.strict = unq == "1" || strings.EqualFold(unq, "ON")
	case "slave_until_gtid":
		return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, "hotstandby binlog server: START SLAVE UNTIL master_gtid_pos is not supported; replicate from the master for that")
	}
	// @master_binlog_checksum, @mariadb_slave_capability,
	// @slave_gtid_ignore_duplicates, @rpl_semi_sync_slave: accepted; events
	// are sent as stored.
	return nil, nil
}

func (h *session) showVariable(name string) (*mysql.Result, error) {
	names := []string{"Variable_name", "Value"}
	switch name {
	case "server_id":
		return textResult(names, "server_id", strconv.FormatUint(uint64(h.s.cfg.ServerID), 10))
	case "rpl_semi_sync_master_enabled":
		return textResult(names, "rpl_semi_sync_master_enabled", "OFF")
	case "binlog_checksum":
		return textResult(names, "binlog_checksum", h.s.checksumName())
	}
	return textRows(names)
}

func (h *session) selectVariable(name string, global bool) (*mysql.Result, error) {
	col := "@" + name
	if global {
		col = "@@GLOBAL." + name
	}
	switch name {
	case "master_binlog_checksum", "binlog_checksum":
		return textResult([]string{col}, h.s.checksumName())
	case "gtid_domain_id":
		return textResult([]string{col}, "0")
	case "server_id":
		return textResult([]string{col}, strconv.FormatUint(uint64(h.s.cfg.ServerID), 10))
	case "version":
		return textResult([]string{col}, h.s.cfg.Version)
	case "version_comment":
		return textResult([]string{col}, "hotstandby binlog server")
	}
	return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("hotstandby binlog server: variable %s is not supported", col))
}

// checksumName is the relay log's checksum algorithm as the master names
// it: the events are sent as stored.
func (s *Server) checksumName() string {
	if c, ok := relayChecksummed(s.cfg.RelayDir); ok && !c {
		return "NONE"
	}
	return "CRC32"
}

// HandleOtherCommand takes COM_REGISTER_SLAVE and COM_BINLOG_DUMP.
func (h *session) HandleOtherCommand(cmd byte, data []byte) error {
	switch cmd {
	case mysql.COM_REGISTER_SLAVE:
		if len(data) >= 4 {
			h.serverID = binary.LittleEndian.Uint32(data)
		}
		return nil
	case mysql.COM_BINLOG_DUMP:
		return h.dump(data)
	}
	return mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, fmt.Sprintf("hotstandby binlog server: command 0x%02x is not supported", cmd))
}

// HandleFieldList is not supported.
func (h *session) HandleFieldList(string, string) ([]*mysql.Field, error) {
	return nil, mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "hotstandby binlog server: COM_FIELD_LIST is not supported")
}

// HandleStmtPrepare is not supported.
func (h *session) HandleStmtPrepare(string) (int, int, any, error) {
	return 0, 0, nil, mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "hotstandby binlog server: prepared statements are not supported")
}

// HandleStmtExecute is not supported.
func (h *session) HandleStmtExecute(any, string, []any) (*mysql.Result, error) {
	return nil, mysql.NewError(mysql.ER_UNKNOWN_COM_ERROR, "hotstandby binlog server: prepared statements are not supported")
}

// HandleStmtClose does nothing.
func (h *session) HandleStmtClose(any) error { return nil }

func textResult(names []string, values ...any) (*mysql.Result, error) {
	return textRows(names, values)
}

// textRows builds a text result set of string or NULL (nil) values. It is
// built by hand: go-mysql's BuildSimpleTextResultset takes its result sets
// from a pool that keeps the previous query's fields, and then refuses the
// next one ("row types aren't consistent").
func textRows(names []string, rows ...[]any) (*mysql.Result, error) {
	rs := &mysql.Resultset{Fields: make([]*mysql.Field, len(names)), FieldNames: map[string]int{}}
	for i, n := range names {
		rs.Fields[i] = &mysql.Field{Name: []byte(n), Charset: 33, Type: mysql.MYSQL_TYPE_VAR_STRING}
		rs.FieldNames[n] = i
	}
	for _, row := range rows {
		if len(row) != len(names) {
			return nil, fmt.Errorf("binlogserver: a row of %d values for %d columns", len(row), len(names))
		}
		var data []byte
		for _, v := range row {
			switch v := v.(type) {
			case nil:
				data = append(data, 0xfb)
			case string:
				data = append(data, mysql.PutLengthEncodedString([]byte(v))...)
			default:
				return nil, fmt.Errorf("binlogserver: result value of type %T", v)
			}
		}
		rs.RowDatas = append(rs.RowDatas, data)
	}
	return &mysql.Result{Resultset: rs}, nil
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
		return strings.ReplaceAll(v[1:len(v)-1], `\'`, `'`)
	}
	return v
}
