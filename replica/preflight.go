package replica

import (
	"context"
	"database/sql"
	"fmt"
)

// Finding is one result of the preflight: a setting of the standby that
// breaks this mode's promises (Fatal: nothing is configured while it holds)
// or weakens them after a power loss (a warning).
type Finding struct {
	// Variable is the server variable, as in SHOW GLOBAL VARIABLES.
	Variable string
	// Value is its value on the standby, Want the value to set.
	Value, Want string
	// Fatal means exactly-once or a promotable standby cannot hold.
	Fatal bool
	// Text is the finding in one line a person can act on: the standby,
	// variable=value, what it breaks, and what to do.
	Text string
}

// settings are the standby's global variables the preflight reads.
type settings struct {
	LogBin, LogSlaveUpdates, GTIDStrictMode bool
	SyncBinlog, FlushAtCommit               uint64
	ServerID                                uint32
}

func readSettings(ctx context.Context, conn *sql.Conn) (settings, error) {
	var v settings
	err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.log_bin, @@GLOBAL.log_slave_updates, @@GLOBAL.gtid_strict_mode, "+
		"@@GLOBAL.sync_binlog, @@GLOBAL.innodb_flush_log_at_trx_commit, @@GLOBAL.server_id").
		Scan(&v.LogBin, &v.LogSlaveUpdates, &v.GTIDStrictMode, &v.SyncBinlog, &v.FlushAtCommit, &v.ServerID)
	if err != nil {
		return v, fmt.Errorf("replica: standby preflight: read settings: %w", err)
	}
	return v, nil
}

// Preflight is the standby preflight of apply mode replica, the one Run
// does before it configures anything and `hotstandby check` shows: it reads
// the standby's settings on conn and judges them. standby is host:port for
// the lines, master the master's server_id (0 while unknown), source the
// binlog server's (Source.ServerID). It changes nothing on the standby.
func Preflight(ctx context.Context, conn *sql.Conn, standby string, master, source uint32) ([]Finding, error) {
	v, err := readSettings(ctx, conn)
	if err != nil {
		return nil, err
	}
	return checkSettings(standby, v, master, source), nil
}

// checkSettings judges the standby's settings for replica mode. master is
// the master's server_id, source the binlog server's, 0 while unknown.
func checkSettings(standby string, v settings, master, source uint32) []Finding {
	var fs []Finding
	add := func(fatal bool, variable, value, want, text string) {
		line := fmt.Sprintf("standby %s: %s=%s: %s", standby, variable, value, text)
		fs = append(fs, Finding{Variable: variable, Value: value, Want: want, Fatal: fatal, Text: line})
	}
	if !v.LogBin {
		add(true, "log_bin", "OFF", "ON", "a promoted standby needs its own binary log with the master's GTIDs; start the standby with log_bin")
	}
	if !v.LogSlaveUpdates {
		add(true, "log_slave_updates", "OFF", "ON", "the standby's binary log would not carry the master's transactions "+
			"(after a promotion, its replicas and gtid_binlog_pos would miss them); start the standby with log_slave_updates=ON")
	}
	if !v.GTIDStrictMode {
		add(true, "gtid_strict_mode", "OFF", "ON", "without it the standby does not refuse a transaction applied twice or out of order; "+
			"SET GLOBAL gtid_strict_mode=ON on the standby and put gtid_strict_mode=ON in its options")
	}
	if master != 0 && v.ServerID == master {
		add(true, "server_id", fmt.Sprint(v.ServerID), "another server_id", "it is the master's server_id: the standby's IO thread "+
			"would ignore the master's own events; give the standby a server_id of its own (SET GLOBAL server_id and in its options)")
	}
	if source != 0 && v.ServerID == source && v.ServerID != master {
		add(true, "server_id", fmt.Sprint(v.ServerID), "another server_id", "it is the agent's server_id, which its binlog server "+
			"answers with: the standby's IO thread refuses a source with its own server_id (error 1593); give the standby or the agent "+
			"a server_id of its own (SET GLOBAL server_id on the standby and in its options, or server_id in the agent's configuration)")
	}
	switch v.FlushAtCommit {
	case 1, 3:
	case 0:
		add(true, "innodb_flush_log_at_trx_commit", "0", "1", "even a crash of mariadbd can lose applied transactions and gtid_slave_pos "+
			"with them; SET GLOBAL innodb_flush_log_at_trx_commit=1 on the standby and put it in its options")
	default:
		add(false, "innodb_flush_log_at_trx_commit", fmt.Sprint(v.FlushAtCommit), "1", "a power loss can lose applied transactions "+
			"(gtid_slave_pos goes back with them, so they are fetched again); SET GLOBAL innodb_flush_log_at_trx_commit=1 on the standby "+
			"and put it in its options")
	}
	if v.LogBin && v.SyncBinlog != 1 {
		add(false, "sync_binlog", fmt.Sprint(v.SyncBinlog), "1", "a power loss can lose the last transactions from the standby's "+
			"binary log while InnoDB keeps them; SET GLOBAL sync_binlog=1 on the standby and put it in its options")
	}
	return fs
}
