package ingest

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hotstandby/hotstandby/binlog"
)

// Finding is one preflight result: what is wrong, and what to set.
type Finding struct {
	Fatal bool   // streaming cannot work
	Text  string // one line naming the variable, its value and the fix
}

// checkMaster reads the master's settings and says what stands in the way of
// lossless operation. vars holds SHOW GLOBAL VARIABLES; grants the lines of
// SHOW GRANTS.
func checkMaster(id binlog.Identity, vars map[string]string, grants []string, serverID uint32, semisync bool) []Finding {
	var out []Finding
	add := func(fatal bool, format string, args ...any) {
		out = append(out, Finding{Fatal: fatal, Text: fmt.Sprintf(format, args...)})
	}
	want := func(name, value string, fatal bool, why string) {
		got, ok := vars[name]
		if ok && !strings.EqualFold(got, value) {
			add(fatal, "master %s = %s: set %s=%s (%s)", name, got, name, value, why)
		}
	}
	if serverID == id.ServerID {
		add(true, "server_id = %d is the master's own server_id: give the agent a server_id of its own", serverID)
	}
	if v, ok := vars["log_bin"]; ok && !strings.EqualFold(v, "ON") {
		add(true, "master log_bin = %s: enable the binary log (log_bin) and restart the master", v)
	}
	want("binlog_format", "ROW", false, "statement events cannot be applied faithfully")
	want("binlog_row_image", "FULL", false, "partial row images cannot be verified or applied safely")
	want("binlog_row_metadata", "FULL", false, "without it the binlog does not say which columns are unsigned")
	want("binlog_checksum", "CRC32", false, "without checksums damaged events cannot be detected")
	if semisync {
		enabled := vars["rpl_semi_sync_master_enabled"]
		if enabled == "" {
			enabled = vars["rpl_semi_sync_source_enabled"]
		}
		if enabled != "" && !strings.EqualFold(enabled, "ON") {
			add(false, "master rpl_semi_sync_master_enabled = %s: set it ON, or commits are not waiting for the agent and a failover may lose them", enabled)
		}
		point := vars["rpl_semi_sync_master_wait_point"]
		if point == "" {
			point = vars["rpl_semi_sync_source_wait_point"]
		}
		if point != "" && !strings.EqualFold(point, "AFTER_SYNC") {
			add(false, "master rpl_semi_sync_master_wait_point = %s: set it to AFTER_SYNC (with AFTER_COMMIT other clients see commits the agent may not have)", point)
		}
		if t, err := strconv.Atoi(vars["rpl_semi_sync_master_timeout"]); err == nil && t < 1000 {
			add(false, "master rpl_semi_sync_master_timeout = %d ms: so short that a brief stall falls back to asynchronous replication", t)
		}
	}
	if grants != nil && !hasGrant(grants, "REPLICATION SLAVE") {
		add(true, "the master user lacks the REPLICATION SLAVE privilege: GRANT REPLICATION SLAVE ON *.* TO the agent's user")
	}
	return out
}

func hasGrant(grants []string, priv string) bool {
	for _, g := range grants {
		u := strings.ToUpper(g)
		if strings.Contains(u, "ALL PRIVILEGES ON *.*") || strings.Contains(u, priv) {
			return true
		}
	}
	return false
}

// runPreflight checks the master once per run: fatal findings stop the
// agent, the others are logged as warnings and shown by status.
func (r *Receiver) runPreflight(conn *binlog.Conn) error {
	rows, err := conn.Query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin','binlog_format','binlog_row_image','binlog_row_metadata','binlog_checksum','rpl_semi_sync_master_enabled','rpl_semi_sync_source_enabled','rpl_semi_sync_master_wait_point','rpl_semi_sync_source_wait_point','rpl_semi_sync_master_timeout')")
	if err != nil {
		return err
	}
	vars := map[string]string{}
	for _, row := range rows {
		vars[strings.ToLower(row[0])] = row[1]
	}
	var grants []string
	if rows, err := conn.Query("SHOW GRANTS"); err == nil {
		for _, row := range rows {
			grants = append(grants, row[0])
		}
	}
	findings := checkMaster(r.identity, vars, grants, r.cfg.Source.ServerID, r.cfg.Source.SemiSync)
	if f, err := r.checkServerIDInUse(conn); err != nil {
		return err
	} else if f != nil {
		findings = append(findings, *f)
	}
	var warnings []string
	for _, f := range findings {
		if f.Fatal {
			return &binlog.SourceError{Op: "preflight", Err: fmt.Errorf("%s", f.Text), Permanent: true}
		}
		r.log.Warn("preflight: " + f.Text)
		warnings = append(warnings, f.Text)
	}
	r.update(func(s *Status) { s.Warnings = warnings })
	return nil
}

// checkServerIDInUse looks for another replica registered with the agent's
// server_id. The agent's own earlier connection (after a crash) registered
// with the same report_host and is replaced by the master on dump.
func (r *Receiver) checkServerIDInUse(conn *binlog.Conn) (*Finding, error) {
	rows, err := conn.Query("SHOW SLAVE HOSTS")
	if err != nil {
		r.log.Info("preflight: cannot list the master's replicas (SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN); server_id conflicts go unchecked")
		return nil, nil
	}
	for _, row := range rows {
		if len(row) < 2 || row[0] != strconv.FormatUint(uint64(r.cfg.Source.ServerID), 10) {
			continue
		}
		if row[1] == r.cfg.Source.ReportHost {
			continue
		}
		host := row[1]
		if len(row) > 2 {
			host += ":" + row[2]
		}
		return &Finding{Fatal: true, Text: fmt.Sprintf("server_id = %d is already used by the replica %s (SHOW SLAVE HOSTS on the master): give the agent a server_id of its own", r.cfg.Source.ServerID, host)}, nil
	}
	return nil, nil
}
