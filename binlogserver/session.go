package binlogserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
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
	// semiSync: the client set @rpl_semi_sync_slave (or
	// @rpl_semi_sync_replica) to 1: every event packet carries the
	// semi-sync header and each transaction's last event asks for an ACK.
	semiSync bool
	// checksum is the client's @master_binlog_checksum ("" unset): the
	// first fake Rotate carries a CRC32 only if it is CRC32, as MariaDB
	// sends it (go-mysql and mariadb-binlog set NONE and read the first
	// Rotate without one).
	checksum string
}

// Bounds of @master_heartbeat_period, as MariaDB bounds
// MASTER_HEARTBEAT_PERIOD: 0 (none) or 1 ms to 4294967 s.
const (
	minHeartbeat = time.Millisecond
	maxHeartbeat = 4294967 * time.Second
)

// semiSyncRequested reports whether the client asked for semi-sync.
func (h *session) semiSyncRequested() bool { return h.semiSync }

var (
	setUserVar = regexp.MustCompile(`(?is)^\s*SET\s+@\w+\s*:?=`)
	assignment = regexp.MustCompile(`(?is)^\s*@(\w+)\s*:?=\s*`)
	showWhere  = regexp.MustCompile(`(?is)^\s*SHOW\s+(GLOBAL\s+|SESSION\s+)?VARIABLES\s+WHERE\s+Variable_name\s*(=|IN)\s*\(?([^()]*)\)?\s*;?\s*$`)
	selectVar  = regexp.MustCompile(`(?is)^\s*SELECT\s+(@@GLOBAL\.|@@)?@?(\w+)\s*(LIMIT\s+1)?\s*;?\s*$`)
	showVar    = regexp.MustCompile(`(?is)^\s*SHOW\s+(GLOBAL\s+|SESSION\s+)?VARIABLES\s+LIKE\s+'([^']*)'\s*;?\s*$`)
	killConn   = regexp.MustCompile(`(?is)^\s*KILL\s+(?:CONNECTION\s+)?(\d+)\s*;?\s*$`)
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
	if m := killConn.FindStringSubmatch(trimmed); m != nil {
		// A semi-sync replica's STOP SLAVE, and BinlogSyncer's reconnect,
		// kill their old dump connection this way.
		id, err := strconv.ParseUint(m[1], 10, 32)
		if err != nil || !h.s.kill(uint32(id)) {
			return nil, mysql.NewError(mysql.ER_NO_SUCH_THREAD, fmt.Sprintf("Unknown thread id: %s", m[1]))
		}
		return nil, nil
	}
	if setUserVar.MatchString(trimmed) {
		return h.setVars(trimmed[strings.IndexByte(trimmed, '@'):])
	}
	if m := showVar.FindStringSubmatch(trimmed); m != nil {
		return h.showVariables(strings.ToLower(m[2]))
	}
	if m := showWhere.FindStringSubmatch(trimmed); m != nil {
		var names []string
		for _, n := range splitTop(m[3]) {
			names = append(names, strings.ToLower(unquote(n)))
		}
		return h.showVariables(names...)
	}
	if m := selectVar.FindStringSubmatch(trimmed); m != nil {
		return h.selectVariable(strings.ToLower(m[2]), m[1] != "")
	}
	return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, fmt.Sprintf("hotstandby binlog server: query not supported: %.100s", trimmed))
}

// setVars takes "@a = 1, @b = 'x', ..." (go-mysql sets two at once).
func (h *session) setVars(list string) (*mysql.Result, error) {
	for _, part := range splitTop(strings.TrimRight(strings.TrimSpace(list), ";")) {
		m := assignment.FindStringSubmatch(part)
		if m == nil {
			return nil, mysql.NewError(mysql.ER_PARSE_ERROR, fmt.Sprintf("hotstandby binlog server: cannot parse the assignment %.100q", part))
		}
		if _, err := h.setVar(strings.ToLower(m[1]), strings.TrimSpace(part[len(m[0]):])); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// splitTop splits s at the commas outside quotes.
func splitTop(s string) []string {
	var out []string
	var quote byte
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == 0 && c == ',':
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// heartbeatPeriod reads @master_heartbeat_period (nanoseconds) and clamps
// it as MariaDB bounds MASTER_HEARTBEAT_PERIOD.
func heartbeatPeriod(v string) (time.Duration, bool) {
	ns, err := strconv.ParseFloat(v, 64)
	if err != nil || ns < 0 || math.IsNaN(ns) || math.IsInf(ns, 0) {
		return 0, false
	}
	switch {
	case ns == 0:
		return 0, true
	case ns < float64(minHeartbeat):
		return minHeartbeat, true
	case ns > float64(maxHeartbeat):
		return maxHeartbeat, true
	}
	return time.Duration(ns), true
}

// setVar takes one of the replica's session settings.
func (h *session) setVar(name, value string) (*mysql.Result, error) {
	unq := unquote(value)
	switch name {
	case "master_heartbeat_period", "source_heartbeat_period":
		d, ok := heartbeatPeriod(unq)
		if !ok {
			return nil, mysql.NewError(mysql.ER_WRONG_VALUE_FOR_VAR, fmt.Sprintf("hotstandby binlog server: @%s %.40q is not a number of nanoseconds", name, value))
		}
		h.heartbeat = d
	case "rpl_semi_sync_slave", "rpl_semi_sync_replica":
		h.semiSync = unq != "0" && unq != "" && !strings.EqualFold(unq, "OFF")
	case "master_binlog_checksum", "source_binlog_checksum":
		if strings.EqualFold(unq, "@@global.binlog_checksum") {
			unq = h.s.checksumName()
		}
		h.checksum = strings.ToUpper(unq)
	case "slave_connect_state":
		h.connectState = &unq
	case "slave_gtid_strict_mode":
		h.strict = unq == "1" || strings.EqualFold(unq, "ON")
	case "slave_until_gtid":
		return nil, mysql.NewError(mysql.ER_NOT_SUPPORTED_YET, "hotstandby binlog server: START SLAVE UNTIL master_gtid_pos is not supported; replicate from the master for that")
	}
	// @mariadb_slave_capability, @slave_gtid_ignore_duplicates,
	// @slave_uuid: accepted; events are sent as stored.
	return nil, nil
}

// showVariables answers SHOW VARIABLES for the names it knows, one row
// each; others have no row, as on a server without them.
// rpl_semi_sync_master_enabled is ON: a replica that asks for semi-sync
// gets it (a MariaDB replica asks for it whenever the row exists, even
// OFF, and then needs the semi-sync header on every event).
func (h *session) showVariables(names ...string) (*mysql.Result, error) {
	var rows [][]any
	for _, name := range names {
		switch name {
		case "server_id":
			rows = append(rows, []any{"server_id", strconv.FormatUint(uint64(h.s.cfg.ServerID), 10)})
		case "rpl_semi_sync_master_enabled":
			rows = append(rows, []any{"rpl_semi_sync_master_enabled", "ON"})
		case "binlog_checksum":
			rows = append(rows, []any{"binlog_checksum", h.s.checksumName()})
		}
	}
	return textRows([]string{"Variable_name", "Value"}, rows...)
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
