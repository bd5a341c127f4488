package applier

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Finding is one result of the standby preflight: a setting of the standby
// that breaks exactly-once apply (Fatal: the applier applies nothing while
// it holds) or weakens it after a power loss (a warning).
type Finding struct {
	// Variable is the server variable, as in SHOW GLOBAL VARIABLES.
	Variable string
	// Value is its value on the standby, Want the value to set.
	Value, Want string
	// Fatal means exactly-once cannot hold with this value.
	Fatal bool
	// Text is the finding in one line a person can act on: the standby,
	// variable=value, what it breaks, and what to do.
	Text string
}

// standbySettings are the standby's global variables the preflight reads.
type standbySettings struct {
	LogBin         bool   // @@log_bin
	GTIDStrictMode bool   // @@gtid_strict_mode
	SyncBinlog     uint64 // @@sync_binlog
	FlushAtCommit  uint64 // @@innodb_flush_log_at_trx_commit
	ServerID       uint32 // @@server_id
}

// readSettings reads the standby's settings for the preflight.
func readSettings(ctx context.Context, conn *sql.Conn) (standbySettings, error) {
	var v standbySettings
	err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.log_bin, @@GLOBAL.gtid_strict_mode, @@GLOBAL.sync_binlog, "+
		"@@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.server_id").
		Scan(&v.LogBin, &v.GTIDStrictMode, &v.SyncBinlog, &v.FlushAtCommit, &v.ServerID)
	if err != nil {
		return v, fmt.Errorf("applier: standby preflight: read settings: %w", err)
	}
	return v, nil
}

// preflight checks, at every session start and before anything is applied,
// that the standby's settings let exactly-once hold. Warnings go into
// Status.Warnings and the log, once per session (a re-check logs them only
// if they changed); fatal findings return a StopError.
func (s *session) preflight(ctx context.Context, recheck bool) error {
	master := uint32(0)
	if s.a.cfg.MasterServerID != nil {
		master = s.a.cfg.MasterServerID()
	}
	findings, err := Preflight(ctx, s.conn, s.a.standbyAddr(), master, s.a.cfg.Recheck)
	if err != nil {
		return err
	}
	var fatal, warnings []string
	for _, f := range findings {
		if f.Fatal {
			fatal = append(fatal, f.Text)
		} else {
			warnings = append(warnings, f.Text)
		}
	}
	s.a.update(func(st *Status) { st.Warnings = warnings })
	if len(fatal) > 0 {
		return &StopError{Reason: ErrPreflight, Lines: fatal}
	}
	if text := strings.Join(warnings, "\n"); !recheck || text != s.a.lastWarnings {
		for _, w := range warnings {
			s.a.log.Warn("standby preflight: " + w)
		}
		s.a.lastWarnings = text
	}
	return nil
}

// Preflight is the standby preflight of apply mode direct, the one each
// applier session runs before it applies anything and `hotstandby check`
// shows: it reads the standby's settings and judges them (on conn). standby is
// host:port for the lines, master the master's server_id (0 while
// unknown), recheck how often a stopped applier checks again (named in the
// fatal lines; zero: DefaultRecheck). It changes nothing on the standby.
func Preflight(ctx context.Context, conn *sql.Conn, standby string, master uint32, recheck time.Duration) ([]Finding, error) {
	v, err := readSettings(ctx, conn)
	if err != nil {
		return nil, err
	}
	if recheck <= 0 {
		recheck = DefaultRecheck
	}
	return checkSettings(standby, v, master, recheck), nil
}

// checkSettings judges the standby's settings. master is the master's
// server_id, 0 while unknown. recheck is how often a stopped applier checks
// again (named in the fatal lines).
func checkSettings(standby string, v standbySettings, master uint32, recheck time.Duration) []Finding {
	again := fmt.Sprintf(" (the applier checks again every %s)", recheck)
	var fs []Finding
	add := func(fatal bool, variable, value, want, text string) {
		line := fmt.Sprintf("standby %s: %s=%s: %s", standby, variable, value, text)
		if fatal {
			line += again
		}
		fs = append(fs, Finding{Variable: variable, Value: value, Want: want, Fatal: fatal, Text: line})
	}
	if !v.LogBin {
		add(true, "log_bin", "OFF", "ON", "exactly-once apply needs the binary log (its gtid_binlog_state is the applied checkpoint; "+
			"without it a restart applies transactions again); start the standby with log_bin")
	}
	if !v.GTIDStrictMode {
		add(true, "gtid_strict_mode", "OFF", "ON", "without it the standby does not refuse a transaction applied twice or out of order; "+
			"SET GLOBAL gtid_strict_mode=ON on the standby and put gtid_strict_mode=ON in its options")
	}
	if master != 0 && v.ServerID == master {
		add(true, "server_id", fmt.Sprint(v.ServerID), "another server_id", "it is the master's server_id: a write made on the standby would take "+
			"the GTID of the master's next transaction, which the applier would then skip as applied; give the standby a server_id of its own "+
			"(SET GLOBAL server_id and in its options)")
	}
	switch v.FlushAtCommit {
	case 1, 3: // durable at commit
	case 0:
		add(true, "innodb_flush_log_at_trx_commit", "0", "1", "even a crash of mariadbd can lose transactions from InnoDB "+
			"while the binary log keeps their GTIDs, and the applier would not apply them again; "+
			"SET GLOBAL innodb_flush_log_at_trx_commit=1 on the standby and put it in its options")
	default:
		add(false, "innodb_flush_log_at_trx_commit", fmt.Sprint(v.FlushAtCommit), "1", "a power loss can lose transactions from InnoDB "+
			"while the binary log keeps their GTIDs, and the applier would not apply them again; "+
			"SET GLOBAL innodb_flush_log_at_trx_commit=1 on the standby and put it in its options")
	}
	if v.LogBin && v.SyncBinlog != 1 {
		add(false, "sync_binlog", fmt.Sprint(v.SyncBinlog), "1", "a power loss can lose the last transactions from the standby's binary log, "+
			"the applied checkpoint (the applier then refuses to go on, or applies transactions InnoDB kept a second time); "+
			"SET GLOBAL sync_binlog=1 on the standby and put it in its options")
	}
	return fs
}

// standbyAddr names the standby in findings: host:port from the DSN.
func (a *Applier) standbyAddr() string {
	if c, err := mysql.ParseDSN(a.cfg.DSN); err == nil && c.Addr != "" {
		return c.Addr
	}
	return "(standby)"
}
