package ingest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// Finding is one preflight result: what is wrong, and what to set.
type Finding struct {
	Fatal bool   // streaming cannot work
	Text  string // one line naming the master, the variable, its value and the fix
	// Unchecked means a check could not run (a privilege it needs is
	// missing): not a problem by itself, so run only logs it, while
	// `hotstandby check` shows it with the GRANT that lets it run.
	Unchecked bool
}

// masterVariables are the master's global variables the preflight reads.
var masterVariables = []string{
	"log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata", "binlog_checksum",
	"rpl_semi_sync_master_enabled", "rpl_semi_sync_source_enabled",
	"rpl_semi_sync_master_wait_point", "rpl_semi_sync_source_wait_point",
	"rpl_semi_sync_master_timeout", "rpl_semi_sync_master_wait_no_slave",
}

// masterFacts is what the preflight reads from the master.
type masterFacts struct {
	addr    string            // host:port, for the lines
	vars    map[string]string // SHOW GLOBAL VARIABLES (masterVariables), lower-case names
	grants  []string          // the lines of SHOW GRANTS; nil when unreadable
	account string            // CURRENT_USER() quoted for a GRANT: 'repl'@'10.0.0.%'
}

// checkMaster reads the master's settings and says what stands in the way of
// lossless operation.
func checkMaster(id binlog.Identity, m masterFacts, serverID uint32, semisync bool) []Finding {
	var out []Finding
	add := func(fatal bool, format string, args ...any) {
		out = append(out, Finding{Fatal: fatal, Text: "master " + m.addr + ": " + fmt.Sprintf(format, args...)})
	}
	vars := m.vars
	want := func(name, value string, fatal bool, why string) {
		got, ok := vars[name]
		if ok && !strings.EqualFold(got, value) {
			add(fatal, "%s = %s: set %s=%s (%s)", name, got, name, value, why)
		}
	}
	if serverID == id.ServerID {
		add(true, "server_id = %d is the master's own server_id: give the agent a server_id of its own", serverID)
	}
	if v, ok := vars["log_bin"]; ok && !strings.EqualFold(v, "ON") {
		add(true, "log_bin = %s: enable the binary log (log_bin) and restart the master", v)
	}
	want("binlog_format", "ROW", false, "statement events cannot be applied faithfully")
	want("binlog_row_image", "FULL", false, "partial row images cannot be verified or applied safely")
	want("binlog_row_metadata", "FULL", false, "without it the binlog does not say which columns are unsigned")
	want("binlog_checksum", "CRC32", false, "without checksums damaged events cannot be detected")
	if semisync {
		out = append(out, checkSemiSync(m)...)
	}
	if m.grants != nil && !hasGrant(m.grants, "REPLICATION SLAVE") {
		add(true, "the master user lacks the REPLICATION SLAVE privilege: GRANT REPLICATION SLAVE ON *.* TO %s", m.account)
	}
	return out
}

// checkSemiSync judges the master's semi-sync settings (semisync.enabled).
func checkSemiSync(m masterFacts) []Finding {
	var out []Finding
	add := func(format string, args ...any) {
		out = append(out, Finding{Text: "master " + m.addr + ": " + fmt.Sprintf(format, args...)})
	}
	vars := m.vars
	enabled, ok := vars["rpl_semi_sync_master_enabled"]
	if !ok {
		enabled, ok = vars["rpl_semi_sync_source_enabled"]
	}
	if !ok {
		add("no semi-sync master (rpl_semi_sync_master_enabled is not a variable): INSTALL SONAME 'semisync_master' " +
			"(MySQL: 'semisync_source'), then SET GLOBAL rpl_semi_sync_master_enabled=ON, or commits never wait for the agent")
		return out
	}
	if !strings.EqualFold(enabled, "ON") {
		add("rpl_semi_sync_master_enabled = %s: SET GLOBAL rpl_semi_sync_master_enabled=ON and put it in the master's options, "+
			"or commits are not waiting for the agent and a failover may lose them", enabled)
	}
	point := vars["rpl_semi_sync_master_wait_point"]
	if point == "" {
		point = vars["rpl_semi_sync_source_wait_point"]
	}
	if point != "" && !strings.EqualFold(point, "AFTER_SYNC") {
		add("rpl_semi_sync_master_wait_point = %s: set it to AFTER_SYNC (with AFTER_COMMIT other clients see commits the agent may not have): "+
			"SET GLOBAL rpl_semi_sync_master_wait_point=AFTER_SYNC and put it in the master's options", point)
	}
	if t, err := strconv.Atoi(vars["rpl_semi_sync_master_timeout"]); err == nil && t < 1000 {
		add("rpl_semi_sync_master_timeout = %d ms: so short that a brief stall falls back to asynchronous replication; "+
			"SET GLOBAL rpl_semi_sync_master_timeout=10000 and put it in the master's options", t)
	}
	if v, ok := vars["rpl_semi_sync_master_wait_no_slave"]; ok && !strings.EqualFold(v, "ON") && v != "1" {
		add("rpl_semi_sync_master_wait_no_slave = %s: the master stops waiting the moment the agent disconnects, and no promotion "+
			"is proven lossless; SET GLOBAL rpl_semi_sync_master_wait_no_slave=ON and put it in the master's options", v)
	}
	return out
}

// hasGrant reports whether SHOW GRANTS lines give the global privilege priv
// (or ALL PRIVILEGES ON *.*). A privilege whose name extends priv's
// (REPLICATION SLAVE ADMIN for REPLICATION SLAVE) does not count.
func hasGrant(grants []string, priv string) bool {
	for _, g := range grants {
		u := strings.ToUpper(g)
		on := strings.Index(u, " ON *.* TO ")
		if !strings.HasPrefix(u, "GRANT ") || on < 0 {
			continue
		}
		for _, p := range strings.Split(u[len("GRANT "):on], ",") {
			p = strings.TrimSpace(p)
			if p == priv || p == "ALL PRIVILEGES" || p == "ALL" {
				return true
			}
		}
	}
	return false
}

// quoteAccount turns CURRENT_USER()'s user@host into 'user'@'host', as a
// GRANT names it.
func quoteAccount(current string) string {
	i := strings.LastIndex(current, "@")
	if i < 0 {
		return "the agent's user"
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return q(current[:i]) + "@" + q(current[i+1:])
}

// readMasterFacts reads what the preflight judges, on conn.
func readMasterFacts(conn *binlog.Conn, addr string) (masterFacts, error) {
	m := masterFacts{addr: addr, vars: map[string]string{}, account: "the agent's user"}
	rows, err := conn.Query("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('" + strings.Join(masterVariables, "','") + "')")
	if err != nil {
		return m, err
	}
	for _, row := range rows {
		m.vars[strings.ToLower(row[0])] = row[1]
	}
	if rows, err := conn.Query("SHOW GRANTS"); err == nil {
		m.grants = []string{}
		for _, row := range rows {
			m.grants = append(m.grants, row[0])
		}
	}
	if rows, err := conn.Query("SELECT CURRENT_USER()"); err == nil && len(rows) == 1 {
		m.account = quoteAccount(rows[0][0])
	}
	return m, nil
}

// MasterCheck is the result of MasterPreflight.
type MasterCheck struct {
	Findings []Finding
	// SemiSyncTimeout is rpl_semi_sync_master_timeout (0: unknown, or no
	// semi-sync master): the gate's T.
	SemiSyncTimeout time.Duration
}

// MasterPreflight is the master's preflight, the one `run` does before its
// first dump and `hotstandby check` shows: the master's settings and
// grants on conn, judged for src (the agent's server_id, report_host,
// semi-sync), and another replica registered with the agent's server_id.
// It changes nothing on the master.
func MasterPreflight(conn *binlog.Conn, src binlog.SourceConfig) (MasterCheck, error) {
	m, err := readMasterFacts(conn, src.Addr)
	if err != nil {
		return MasterCheck{}, err
	}
	out := MasterCheck{Findings: checkMaster(conn.Identity(), m, src.ServerID, src.SemiSync)}
	if ms, err := strconv.ParseUint(m.vars["rpl_semi_sync_master_timeout"], 10, 64); err == nil {
		out.SemiSyncTimeout = time.Duration(ms) * time.Millisecond
	}
	f, err := checkServerIDInUse(conn, src, m.account)
	if err != nil {
		return MasterCheck{}, err
	}
	if f != nil {
		out.Findings = append(out.Findings, *f)
	}
	return out, nil
}

// runPreflight checks the master once per run: fatal findings stop the
// agent, the others are logged as warnings and shown by status.
func (r *Receiver) runPreflight(conn *binlog.Conn) error {
	mc, err := MasterPreflight(conn, r.cfg.Source)
	if err != nil {
		return err
	}
	findings := mc.Findings
	var warnings []string
	for _, f := range findings {
		if f.Unchecked {
			r.log.Info("preflight: " + f.Text)
			continue
		}
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
func checkServerIDInUse(conn *binlog.Conn, src binlog.SourceConfig, account string) (*Finding, error) {
	rows, err := conn.Query("SHOW SLAVE HOSTS")
	if err != nil {
		return &Finding{Unchecked: true, Text: "master " + src.Addr + ": cannot list the master's replicas (SHOW SLAVE HOSTS needs REPLICATION MASTER ADMIN); " +
			"server_id conflicts go unchecked: GRANT REPLICATION MASTER ADMIN ON *.* TO " + account}, nil
	}
	for _, row := range rows {
		if len(row) < 2 || row[0] != strconv.FormatUint(uint64(src.ServerID), 10) {
			continue
		}
		if row[1] == src.ReportHost {
			continue
		}
		host := row[1]
		if len(row) > 2 {
			host += ":" + row[2]
		}
		return &Finding{Fatal: true, Text: fmt.Sprintf("master %s: server_id = %d is already used by the replica %s (SHOW SLAVE HOSTS on the master): give the agent a server_id of its own", src.Addr, src.ServerID, host)}, nil
	}
	return nil, nil
}
