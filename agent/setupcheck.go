package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/replica"
)

// CheckLevel is how bad a finding of `hotstandby check` is; a report's
// level is its worst finding's, and is the command's exit code.
type CheckLevel int

// The levels, as exit codes (as `status --check`: 0 OK, 1 WARNING, 2
// CRITICAL; a configuration that does not load is 2, as for every command).
const (
	// CheckOK: nothing `run` would refuse or warn about.
	CheckOK CheckLevel = 0
	// CheckWarning: `run` works, but a promise is weakened (lossless
	// failover, durability after a power loss) or a check cannot run.
	CheckWarning CheckLevel = 1
	// CheckError: `run` refuses, or cannot stream or apply.
	CheckError CheckLevel = 2
)

func (l CheckLevel) String() string {
	switch l {
	case CheckOK:
		return "OK"
	case CheckWarning:
		return "WARNING"
	}
	return "ERROR"
}

// SetupFinding is one line of `hotstandby check`: where (the master, the
// standby, the agent, failover), what is wrong, and the fix.
type SetupFinding struct {
	Level CheckLevel
	Text  string
}

// SetupReport is what SetupCheck found.
type SetupReport struct {
	Findings []SetupFinding
	// Checked names what was checked, for the closing line.
	Checked []string
}

// Level is the worst finding's level (CheckOK without findings).
func (r SetupReport) Level() CheckLevel {
	l := CheckOK
	for _, f := range r.Findings {
		l = max(l, f.Level)
	}
	return l
}

// Write prints one line per finding and a closing line.
func (r SetupReport) Write(w io.Writer) {
	var errs, warns int
	for _, f := range r.Findings {
		fmt.Fprintf(w, "%-7s %s\n", f.Level, f.Text)
		if f.Level == CheckError {
			errs++
		} else {
			warns++
		}
	}
	checked := strings.Join(r.Checked, "; ")
	if errs+warns == 0 {
		fmt.Fprintf(w, "OK: nothing `run` would refuse or warn about (%s)\n", checked)
		return
	}
	fmt.Fprintf(w, "%s: %d %s, %d %s (%s)\n", r.Level(), errs, plural(errs, "error", "errors"), warns, plural(warns, "warning", "warnings"), checked)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// checkTimeout bounds each server's part of SetupCheck.
const checkTimeout = 15 * time.Second

// SetupCheck reports everything `run` would refuse or warn about with cfg,
// without running: the relay log's disk, TLS, the master's preflight
// (ingest.MasterPreflight, the one run does), its privileges for the
// monitor and the fence, the standby's preflight of the configured apply
// mode (applier.Preflight or replica.Preflight, the ones run does), its
// read_only and privileges, and the failover's timing against the master's
// semi-sync timeout. It only reads: it changes nothing on either server,
// opens no checkpoint store (a running daemon holds it) and creates no
// file. Its lines never hold a password.
func SetupCheck(ctx context.Context, cfg Config) SetupReport {
	var r SetupReport
	add := func(l CheckLevel, format string, args ...any) {
		r.Findings = append(r.Findings, SetupFinding{Level: l, Text: scrubSecret(scrubSecret(fmt.Sprintf(format, args...), cfg.password), cfg.standbyPassword)})
	}
	for _, w := range cfg.TLSWarnings() {
		add(CheckWarning, "%s", w)
	}
	checkRelayDisk(cfg, add)
	master := checkMasterSetup(ctx, cfg, add)
	r.Checked = append(r.Checked, "master "+cfg.Master.Addr())
	if cfg.Standby.Enabled() {
		checkStandbySetup(ctx, cfg, master.serverID, add)
		r.Checked = append(r.Checked, fmt.Sprintf("standby %s (mode %s)", cfg.Standby.Addr(), cfg.ApplyMode()))
		checkFailoverTiming(cfg, master.semiSyncTimeout, add)
		r.Checked = append(r.Checked, "failover "+cfg.Failover.Mode)
	}
	return r
}

type addFunc func(l CheckLevel, format string, args ...any)

// masterSeen is what the standby's and the failover's checks need from the
// master (zero when it did not answer).
type masterSeen struct {
	serverID        uint32
	semiSyncTimeout time.Duration
}

// checkMasterSetup connects as the stream does (binlog.Dial: its TLS, its
// refusals) and runs the stream's preflight, then checks the privileges
// the monitor and the fence need on a SQL connection.
func checkMasterSetup(ctx context.Context, cfg Config, add addFunc) masterSeen {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	src := cfg.IngestConfig().Source
	conn, err := binlog.Dial(ctx, src)
	if err != nil {
		add(CheckError, "master %s: cannot connect as the stream does: %v", cfg.Master.Addr(), err)
		return masterSeen{}
	}
	defer conn.Close()
	seen := masterSeen{serverID: conn.Identity().ServerID}
	mc, err := ingest.MasterPreflight(conn, src)
	if err != nil {
		add(CheckError, "master %s: preflight: %v", cfg.Master.Addr(), err)
		return seen
	}
	seen.semiSyncTimeout = mc.SemiSyncTimeout
	for _, f := range mc.Findings {
		switch {
		case f.Fatal:
			add(CheckError, "%s", f.Text)
		default:
			add(CheckWarning, "%s", f.Text)
		}
	}
	checkMasterPrivileges(ctx, cfg, add)
	return seen
}

// privilegeNeed is one privilege a component needs, with the ones that
// include it (the first is named in the GRANT), the level of its lack and
// what it is for.
type privilegeNeed struct {
	privs []string
	level CheckLevel
	why   string
}

// checkMasterPrivileges checks, on the master, what the monitor needs (SHOW
// MASTER STATUS: with semi-sync, every proof) and, with a standby and
// failover.fence, what the fence needs (failover.MissingFencePrivileges).
func checkMasterPrivileges(ctx context.Context, cfg Config, add addFunc) {
	where := "master " + cfg.Master.Addr()
	account, have, err := readPrivileges(ctx, cfg.MasterDSN())
	if err != nil {
		add(CheckWarning, "%s: cannot read the master user's privileges over SQL: %v", where, err)
		return
	}
	var needs []privilegeNeed
	if cfg.SemiSync.Enabled {
		needs = append(needs, privilegeNeed{[]string{"BINLOG MONITOR", "SUPER"}, CheckWarning,
			"the monitor reads SHOW MASTER STATUS for every semi-sync proof (without it no promotion is proven lossless)"})
	}
	reportNeeds(where, "master", account, have, needs, add)
	if cfg.Standby.Enabled() && cfg.Failover.Fence {
		if missing := failover.MissingFencePrivileges(have); len(missing) > 0 {
			add(CheckWarning, "%s: the master user lacks %s, which the fence needs at a promotion or switchover (set read_only, see and kill "+
				"client connections; without them a promotion beside a live old master aborts): GRANT %s ON *.* TO %s",
				where, strings.Join(missing, ", "), strings.Join(missing, ", "), account)
		}
	}
}

// reportNeeds adds one line per level for the needs have lacks, with the
// GRANT that gives them.
func reportNeeds(where, who, account string, have []string, needs []privilegeNeed, add addFunc) {
	for _, level := range []CheckLevel{CheckError, CheckWarning} {
		var missing, why []string
		for _, n := range needs {
			if n.level != level || slices.ContainsFunc(n.privs, func(p string) bool { return slices.Contains(have, p) }) {
				continue
			}
			missing = append(missing, n.privs[0])
			why = append(why, n.privs[0]+": "+n.why)
		}
		if len(missing) > 0 {
			add(level, "%s: the %s user lacks %s (%s): GRANT %s ON *.* TO %s", where, who, strings.Join(missing, ", "),
				strings.Join(why, "; "), strings.Join(missing, ", "), account)
		}
	}
}

// readPrivileges connects to dsn and reads the user's global privileges
// (failover.GlobalPrivileges, the fence's own reading).
func readPrivileges(ctx context.Context, dsn string) (string, []string, error) {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return "", nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close()
	return failover.GlobalPrivileges(ctx, conn)
}

// standbyPreflight is the standby preflight of one apply mode, as its run
// calls it.
type standbyPreflight func(ctx context.Context, conn *sql.Conn, cfg Config, master uint32) ([]SetupFinding, error)

// standbyChecks are, per apply mode, its preflight and the privileges its
// statements need on the standby (measured on MariaDB 10.11: each
// statement's "Access denied; you need (at least one of) ...").
var standbyChecks = map[string]struct {
	preflight standbyPreflight
	needs     []privilegeNeed
}{
	ModeDirect: {directPreflight, []privilegeNeed{
		{[]string{"READ_ONLY ADMIN"}, CheckError, "SET GLOBAL read_only=ON, and writing while read_only"},
		{[]string{"BINLOG REPLAY", "SUPER"}, CheckError, "BINLOG statements"},
		{[]string{"BINLOG ADMIN", "SUPER"}, CheckError, "SET SESSION sql_log_bin"},
		{[]string{"SUPER"}, CheckError, "SET GLOBAL max_allowed_packet"},
		{[]string{"PROCESS"}, CheckWarning, "seeing an earlier session's transaction after a restart of the agent"},
		{[]string{"SLAVE MONITOR", "SUPER"}, CheckWarning, "SHOW ALL SLAVES STATUS at a promotion"},
	}},
	ModeReplica: {replicaPreflight, []privilegeNeed{
		{[]string{"READ_ONLY ADMIN"}, CheckError, "SET GLOBAL read_only=ON"},
		{[]string{"REPLICATION SLAVE ADMIN", "SUPER"}, CheckError, "CHANGE MASTER, START/STOP SLAVE, slave_parallel_threads"},
		{[]string{"SLAVE MONITOR", "SUPER"}, CheckError, "SHOW SLAVE STATUS"},
		{[]string{"BINLOG ADMIN", "SUPER"}, CheckWarning, "skip: the empty transaction in place of the failing one"},
		{[]string{"RELOAD"}, CheckWarning, "RESET SLAVE ALL at a promotion"},
	}},
}

func directPreflight(ctx context.Context, conn *sql.Conn, cfg Config, master uint32) ([]SetupFinding, error) {
	fs, err := applier.Preflight(ctx, conn, cfg.Standby.Addr(), master, 0)
	out := make([]SetupFinding, len(fs))
	for i, f := range fs {
		out[i] = SetupFinding{Level: levelOf(f.Fatal), Text: f.Text}
	}
	return out, err
}

func replicaPreflight(ctx context.Context, conn *sql.Conn, cfg Config, master uint32) ([]SetupFinding, error) {
	fs, err := replica.Preflight(ctx, conn, cfg.Standby.Addr(), master, cfg.ServerID)
	out := make([]SetupFinding, len(fs))
	for i, f := range fs {
		out[i] = SetupFinding{Level: levelOf(f.Fatal), Text: f.Text}
	}
	return out, err
}

func levelOf(fatal bool) CheckLevel {
	if fatal {
		return CheckError
	}
	return CheckWarning
}

// checkStandbySetup connects to the standby as the apply mode does (its
// DSN, its TLS) and runs the mode's preflight, then checks read_only and
// the mode's privileges.
func checkStandbySetup(ctx context.Context, cfg Config, master uint32, add addFunc) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	where := "standby " + cfg.Standby.Addr()
	mode := standbyChecks[cfg.ApplyMode()]
	db, err := sql.Open("mysql", cfg.StandbyDSN())
	if err != nil {
		add(CheckError, "%s: %v", where, err)
		return
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		add(CheckError, "%s: cannot connect as the applier does: %v%s", where, err, connectHint(err))
		return
	}
	defer conn.Close()
	fs, err := mode.preflight(ctx, conn, cfg, master)
	if err != nil {
		add(CheckError, "%s: preflight: %v", where, err)
		return
	}
	for _, f := range fs {
		add(f.Level, "%s", f.Text)
	}
	var readOnly bool
	if err := conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&readOnly); err != nil {
		add(CheckError, "%s: read read_only: %v", where, err)
	} else if !readOnly {
		add(CheckWarning, "%s: read_only=OFF: any user can write to the standby until the agent sets it ON, and again after each restart of "+
			"the standby; put read_only=ON in the standby's options and SET GLOBAL read_only=ON", where)
	}
	account, have, err := failover.GlobalPrivileges(ctx, conn)
	if err != nil {
		add(CheckWarning, "%s: cannot read the standby user's privileges: %v", where, err)
		return
	}
	reportNeeds(where, "standby", account, have, mode.needs, add)
	if cfg.Failover.SemiSyncMaster {
		reportNeeds(where, "standby", account, have, []privilegeNeed{{[]string{"REPLICATION MASTER ADMIN", "SUPER"}, CheckWarning,
			"failover.semisync_master: SET GLOBAL rpl_semi_sync_master_enabled at a promotion"}}, add)
	}
}

// connectHint is the fix for a standby connection that TLS refused.
func connectHint(err error) string {
	if errors.Is(err, mysql.ErrNoTLS) {
		return ": the standby offers no TLS (no ssl_cert/ssl_key) and [standby] tls requires it: configure TLS on the standby or lower tls in the [standby] section"
	}
	return ""
}

// checkRelayDisk checks that the file system of data_dir has room for one
// relay segment (segment_size_mb): the receiver writes there, and a full
// disk stops its ACKs, so the master's commits wait out the semi-sync
// timeout and then go on without the agent.
func checkRelayDisk(cfg Config, add addFunc) {
	dir := cfg.DataDir
	for {
		if _, err := os.Stat(dir); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		add(CheckError, "agent: data_dir %s: %v", cfg.DataDir, unwrapPathError(err))
		return
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	need := cfg.Relay.SegmentSizeMB << 20
	if free < need {
		add(CheckError, "agent: data_dir %s: %d MiB free on its file system (%s), less than one relay segment (relay.segment_size_mb = %d): "+
			"a full relay disk stops the agent's ACKs and the master goes on without it; free space there, move data_dir, or lower relay.segment_size_mb",
			cfg.DataDir, free>>20, dir, cfg.Relay.SegmentSizeMB)
	}
}

// checkFailoverTiming checks that an automatic failover of a dead master
// host can start while the gate can still prove it lossless: within the
// master's semi-sync timeout T of its last word, less the margin the
// restart grace keeps for the promotion's start (graceLimit). A dead host
// is declared dead after max(failures probes of max(probe_interval,
// probe_timeout) each, stream_silence), plus the witness's time
// (failover.DetectConfig).
func checkFailoverTiming(cfg Config, t time.Duration, add addFunc) {
	if cfg.Failover.Mode != "auto" || t <= 0 || !cfg.SemiSync.Enabled {
		return
	}
	dc := cfg.DetectConfig()
	detect := max(time.Duration(dc.Failures)*max(dc.ProbeInterval, dc.ProbeTimeout), dc.StreamSilence)
	if len(dc.Witness) > 0 {
		detect += dc.WitnessTimeout
	}
	margin := min(max(t/5, time.Second), t)
	if detect+margin < t {
		return
	}
	add(CheckWarning, "failover: a dead master host is declared dead up to %s after its last word (failover.failures = %d x max(probe_interval %s, probe_timeout %s), "+
		"stream_silence %s%s), and the promotion must start %s before the master's rpl_semi_sync_master_timeout = %s runs out or the gate refuses it as "+
		"not proven lossless: SET GLOBAL rpl_semi_sync_master_timeout=%d on the master (and in its options), or shorten the detection",
		detect, dc.Failures, dc.ProbeInterval, dc.ProbeTimeout, dc.StreamSilence, witnessPart(dc), margin, t, max(detect+time.Second, detect*5/4).Milliseconds()+1)
}

func witnessPart(dc failover.DetectConfig) string {
	if len(dc.Witness) == 0 {
		return ""
	}
	return fmt.Sprintf(", plus witness_timeout %s", dc.WitnessTimeout)
}
