package replica

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// The states of a Replica.
const (
	// StateConnecting: the standby has not answered yet (or was lost).
	StateConnecting = "connecting"
	// StatePreflight: a fatal finding of the preflight holds; nothing is
	// configured until it is fixed (checked again every Poll).
	StatePreflight = "preflight"
	// StateRunning: both replication threads run (the IO thread may be
	// connecting to the source).
	StateRunning = "running"
	// StateError: the SQL or the IO thread stopped with an error.
	StateError = "error"
	// StateDrained: Drain ended replication for the promotion.
	StateDrained = "drained"
)

// Status is the live state of the standby's replication, as last read.
type Status struct {
	State string
	// Source is the source's host:port (never its password).
	Source string
	// ParallelThreads is @@slave_parallel_threads as configured.
	ParallelThreads int
	// IORunning and SQLRunning are Slave_IO_Running ("Yes", "No",
	// "Connecting") and Slave_SQL_Running of SHOW SLAVE STATUS.
	IORunning, SQLRunning string
	// LastIOErrno, LastIOError, LastSQLErrno, LastSQLError are those
	// columns of SHOW SLAVE STATUS, the password scrubbed.
	LastIOErrno  int
	LastIOError  string
	LastSQLErrno int
	LastSQLError string
	// FailedGTID is the GTID of the transaction the SQL thread stopped on
	// ("" while it runs).
	FailedGTID string
	// Applied is @@gtid_slave_pos: every transaction up to it is committed
	// on the standby (the applied frontier).
	Applied string
	// StartApplied is @@gtid_slave_pos as this Replica first configured the
	// standby, read after STOP SLAVE and before START SLAVE: what the standby
	// had applied before this run of the agent fed it anything. StartKnown
	// is false until it was read.
	StartApplied string
	StartKnown   bool
	// Received is Gtid_IO_Pos: the last GTIDs the IO thread wrote to the
	// standby's relay log.
	Received string
	// BinlogState is the standby's @@gtid_binlog_state: the last GTID of
	// every domain and server_id in its binary log (errant GTIDs show here).
	BinlogState string
	// BehindTransactions is, summed over the domains of Received, its
	// sequence number minus Applied's (the received transactions not yet
	// applied); BehindSeconds is Seconds_Behind_Master, -1 when NULL.
	BehindTransactions int64
	BehindSeconds      int64
	// Findings are the fatal findings of the latest preflight, Warnings
	// its warnings; one line each.
	Findings, Warnings []string
	// LastError is the last error of the agent's own session with the
	// standby (lost connection, a refused configuration statement).
	LastError string
	// Retries counts lost standby sessions.
	Retries uint64
	// CheckedAt is when the standby was last read.
	CheckedAt time.Time
}

// Error returns the error that stopped a replication thread, in one line
// naming the thread, the GTID and the server's error; "" if none.
func (s Status) Error() string {
	switch {
	case s.SQLRunning == "No" && s.LastSQLErrno != 0:
		g := s.FailedGTID
		if g == "" {
			g = "(unknown)"
		}
		return fmt.Sprintf("standby SQL thread stopped on GTID %s: error %d: %s", g, s.LastSQLErrno, s.LastSQLError)
	case s.IORunning == "No" && s.LastIOErrno != 0:
		return fmt.Sprintf("standby IO thread (from %s) stopped: error %d: %s", s.Source, s.LastIOErrno, s.LastIOError)
	}
	return ""
}

// slaveStatus is one row of SHOW SLAVE STATUS, by column name.
type slaveStatus map[string]string

// Querier is a *sql.DB or a *sql.Conn.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ReadSlaveStatus returns the default connection's row of SHOW SLAVE
// STATUS by column name, nil if the server has no replication configured.
// A NULL column is absent and marked by the key "<column>/null".
func ReadSlaveStatus(ctx context.Context, q Querier) (map[string]string, error) {
	rows, err := QueryRows(ctx, q, "SHOW SLAVE STATUS")
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0], nil
}

// QueryRows runs a statement whose columns are not known in advance (SHOW
// ...) and returns each row by column name. A NULL column is absent and
// marked by the key "<column>/null".
func QueryRows(ctx context.Context, q Querier, query string) ([]map[string]string, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []map[string]string
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make(map[string]string, len(cols))
		for i, c := range cols {
			if vals[i].Valid {
				row[c] = vals[i].String
			} else {
				row[c+"/null"] = "1"
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func readSlaveStatus(ctx context.Context, db *sql.DB) (slaveStatus, error) {
	st, err := ReadSlaveStatus(ctx, db)
	return slaveStatus(st), err
}

func (s slaveStatus) int(col string) int64 {
	n, _ := strconv.ParseInt(s[col], 10, 64)
	return n
}

// errorEndPos finds the master position a MariaDB SQL thread names in its
// error text ("the event's master log mysql-bin.000001, end_log_pos 1909").
var errorEndPos = regexp.MustCompile(`end_log_pos (\d+)`)

// relayGTID finds the GTID in the Info of a Gtid event of SHOW RELAYLOG
// EVENTS ("BEGIN GTID 0-1-8", "GTID 0-1-9").
var relayGTID = regexp.MustCompile(`GTID (\d+-\d+-\d+)`)

// relayScanLimit bounds the events failedGTID reads from the standby's relay log.
const relayScanLimit = 5000

// failedGTID returns the GTID of the transaction the SQL thread stopped on.
// MariaDB 10.11 does not name it: its error names the failing event's
// master end_log_pos, and Relay_Log_File:Relay_Log_Pos is where the SQL
// thread resumes (every transaction before it is committed, in order, even
// with parallel workers). So it reads the standby's relay log from there and
// returns the GTID of the transaction holding the event at that end_log_pos
// (or, if the error names none, the first transaction there). "" if the
// relay log does not tell.
func failedGTID(ctx context.Context, db *sql.DB, ss slaveStatus) (string, error) {
	file, pos := ss["Relay_Log_File"], ss.int("Relay_Log_Pos")
	if file == "" || pos <= 0 {
		return "", nil
	}
	var endPos int64 = -1
	if m := errorEndPos.FindStringSubmatch(ss["Last_SQL_Error"]); m != nil {
		endPos, _ = strconv.ParseInt(m[1], 10, 64)
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SHOW RELAYLOG EVENTS IN %s FROM %d LIMIT %d", quote(file), pos, relayScanLimit))
	if err != nil {
		return "", fmt.Errorf("find the failing GTID: %w", err)
	}
	defer rows.Close()
	var first, current string
	for rows.Next() {
		var logName, typ, info string
		var at, server, end int64
		if err := rows.Scan(&logName, &at, &typ, &server, &end, &info); err != nil {
			return "", fmt.Errorf("find the failing GTID: %w", err)
		}
		if typ == "Gtid" {
			if m := relayGTID.FindStringSubmatch(info); m != nil {
				current = m[1]
				if first == "" {
					first = current
				}
			}
		}
		if endPos < 0 && first != "" {
			return first, nil
		}
		if end == endPos && current != "" {
			return current, nil
		}
	}
	return first, rows.Err()
}

// behind counts the transactions received and not applied.
func behind(applied, received string) int64 {
	a, err1 := binlog.ParseGTIDSet(binlog.MariaDB, applied)
	r, err2 := binlog.ParseGTIDSet(binlog.MariaDB, received)
	if err1 != nil || err2 != nil {
		return 0
	}
	n, _ := a.SeqBehind(r)
	return n
}
