package applier

import (
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// The reasons a StopError gives, for errors.Is.
var (
	// ErrPreflight means a setting of the standby breaks exactly-once apply
	// (a fatal finding of the preflight): log_bin or gtid_strict_mode OFF,
	// innodb_flush_log_at_trx_commit=0, or the master's server_id.
	ErrPreflight = errors.New("applier: the standby's settings break exactly-once apply")
	// ErrStandbyBehind means the standby's gtid_binlog_pos does not cover
	// the applied checkpoint: it lost transactions the agent applied.
	ErrStandbyBehind = errors.New("applier: the standby is behind the applied checkpoint")
	// ErrRelayGap means the first transaction to apply in a domain does not
	// follow the standby's last one there: transactions in between are
	// missing from the relay log.
	ErrRelayGap = errors.New("applier: transactions missing between the standby and the relay log")
)

// StopError stops the applier because of the standby's settings or state,
// not because of one transaction: nothing is applied until it is fixed, and
// a skip cannot fix it. The applier checks again every Config.Recheck (and
// whenever it reconnects); once the standby is fixed it goes on by itself.
type StopError struct {
	// Reason is ErrPreflight, ErrStandbyBehind or ErrRelayGap.
	Reason error
	// Lines are the findings, each one line that names the variable or the
	// positions, the values, and what to do.
	Lines []string
}

// Error returns the lines, joined by "; ".
func (e *StopError) Error() string { return strings.Join(e.Lines, "; ") }

// Unwrap returns the Reason.
func (e *StopError) Unwrap() error { return e.Reason }

// IsConnError tells a lost standby connection (retried) from an error the
// standby returned for a statement (an ApplyError that stops the applier).
func IsConnError(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1053, 1927, 2006, 2013: // server shutdown, connection killed, gone away, lost
			return true
		}
		return false
	}
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne)
}
