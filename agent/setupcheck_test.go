package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// runSetupCheck runs the built `hotstandby check --config` and returns its
// exit code and output.
func runSetupCheck(t *testing.T, cfgPath string) (int, string) {
	t.Helper()
	out, err := exec.Command(hsBinary, "check", "--config", cfgPath).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// setupCheckEnv is a master, a standby and a configuration that `check`
// passes, restored after each finding's test.
type setupCheckEnv struct {
	*testEnv
	standby *sandbox.Server
	base    string // the passing configuration
}

func newSetupCheckEnv(t *testing.T) *setupCheckEnv {
	e := newEnv(t)
	s := &setupCheckEnv{testEnv: e, standby: e.withStandbyMode(ModeReplica)}
	// What the fence needs; the standby kept read-only (the agent would
	// set it, check only reads).
	e.exec("GRANT READ_ONLY ADMIN, PROCESS, CONNECTION ADMIN ON *.* TO 'repl'@'127.0.0.1'")
	s.standbySQL("SET GLOBAL read_only=ON")
	s.base = readFile(t, e.cfgPath)
	return s
}

func (s *setupCheckEnv) standbySQL(q string) {
	s.t.Helper()
	if err := s.standby.Exec(context.Background(), q); err != nil {
		s.t.Fatal(err)
	}
}

// config writes the passing configuration changed by edit.
func (s *setupCheckEnv) config(t *testing.T, edit func(string) string) {
	t.Helper()
	writeFile(t, s.cfgPath, edit(s.base))
}

// withMode is the configuration in apply mode mode.
func withMode(mode string) func(string) string {
	return func(c string) string {
		return strings.Replace(c, `mode = "replica"`, fmt.Sprintf("mode = %q", mode), 1)
	}
}

// restartWith stops srv and starts it again on its directory and port with
// cfg (its extra my.cnf lines); it returns the new server, which runs until
// the end of the test that started the env (s.t).
func (s *setupCheckEnv) restartWith(t *testing.T, srv *sandbox.Server, cfg sandbox.Config) *sandbox.Server {
	t.Helper()
	ctx := context.Background()
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.Log = srv.Port(), t.Logf
	n, err := sandbox.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.t.Cleanup(func() { n.Stop(context.Background()) })
	return n
}

var (
	grantRE     = regexp.MustCompile(`GRANT ([A-Z_, ]+) ON \*\.\* TO ('[^']*'@'[^']*')`)
	setGlobalRE = regexp.MustCompile(`SET GLOBAL (\w+)\s*=\s*(\w+)`)
	setRE       = regexp.MustCompile(`: set (\w+)=(\w+) `)
)

// applyPrintedFix runs the statement a finding's line prints (a GRANT or a
// SET GLOBAL) on the server the line names.
func (s *setupCheckEnv) applyPrintedFix(t *testing.T, line string) {
	t.Helper()
	srv := s.master
	if f := strings.Fields(line); len(f) > 1 && f[1] == "standby" {
		srv = s.standby
	}
	var q string
	if m := grantRE.FindStringSubmatch(line); m != nil {
		q = "GRANT " + m[1] + " ON *.* TO " + m[2]
	} else if m := setGlobalRE.FindStringSubmatch(line); m != nil {
		q = "SET GLOBAL " + m[1] + "=" + m[2]
	} else if m := setRE.FindStringSubmatch(line); m != nil {
		q = "SET GLOBAL " + m[1] + "=" + m[2]
	} else {
		t.Fatalf("no statement to run in the line %q", line)
	}
	t.Logf("applying the printed fix: %s", q)
	if err := srv.Exec(context.Background(), q); err != nil {
		t.Fatalf("the printed fix %q: %v", q, err)
	}
}

// findingLine returns the one line of out that contains want.
func findingLine(t *testing.T, out, want string) string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, want) {
			got = append(got, l)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one line with %q, got %d:\n%s", want, len(got), out)
	}
	return got[0]
}

// expectFinding runs check, wants exit code and a line with want (at its
// level), and returns the line.
func (s *setupCheckEnv) expectFinding(t *testing.T, code int, want string) string {
	t.Helper()
	got, out := runSetupCheck(t, s.cfgPath)
	if got != code {
		t.Fatalf("exit %d, want %d:\n%s", got, code, out)
	}
	line := findingLine(t, out, want)
	if level := map[int]string{1: "WARNING ", 2: "ERROR "}[code]; !strings.HasPrefix(line, level) {
		t.Fatalf("line %q is not at level %q:\n%s", line, level, out)
	}
	if strings.Contains(out, s.password) {
		t.Fatalf("the output holds the password:\n%s", out)
	}
	return line
}

// expectOK runs check and wants exit 0.
func (s *setupCheckEnv) expectOK(t *testing.T) {
	t.Helper()
	if code, out := runSetupCheck(t, s.cfgPath); code != 0 || !strings.HasPrefix(out, "OK: ") {
		t.Fatalf("after the fix: exit %d, want 0 OK:\n%s", code, out)
	}
}

// TestSetupCheck has one subtest per finding `check` knows: it
// misconfigures real servers (or the configuration), wants the line and the
// exit code, applies the printed fix, and wants check to pass again. The
// standby's findings run in both apply modes, whose preflights differ.
func TestSetupCheck(t *testing.T) {
	s := newSetupCheckEnv(t)
	ctx := context.Background()
	// check only reads: the servers' GTID state, read_only, the master's
	// replicas and the data directory are as before it ran.
	state := func() string {
		var b strings.Builder
		for _, srv := range []*sandbox.Server{s.master, s.standby} {
			v, err := srv.QueryString(ctx, "SELECT CONCAT(@@gtid_binlog_state, '/', @@read_only, '/', @@server_id)")
			must(t, err)
			b.WriteString(v + ";")
		}
		n, err := s.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
		must(t, err)
		return b.String() + n
	}
	before := state()
	for _, mode := range []string{ModeReplica, ModeDirect} {
		s.config(t, withMode(mode))
		s.expectOK(t)
	}
	if after := state(); after != before {
		t.Fatalf("check changed the servers: %s, before %s", after, before)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "agent")); !os.IsNotExist(err) {
		t.Fatalf("check created the data directory (%v)", err)
	}
	s.config(t, withMode(ModeReplica))

	// Findings fixed by running the statement the line prints.
	type sqlCase struct {
		name     string
		modes    []string // the standby's modes; nil: the mode does not matter (replica)
		breakSQL []string // on the master, or the standby with "standby:"
		restore  []string // after the fix, what the next cases need back
		code     int
		want     string
	}
	both := []string{ModeReplica, ModeDirect}
	cases := []sqlCase{
		{name: "master_binlog_format", breakSQL: []string{"SET GLOBAL binlog_format=STATEMENT"}, code: 1, want: "binlog_format = STATEMENT: set binlog_format=ROW"},
		{name: "master_binlog_row_image", breakSQL: []string{"SET GLOBAL binlog_row_image=MINIMAL"}, code: 1, want: "binlog_row_image = MINIMAL"},
		{name: "master_binlog_row_metadata", breakSQL: []string{"SET GLOBAL binlog_row_metadata=MINIMAL"}, code: 1, want: "binlog_row_metadata = MINIMAL"},
		{name: "master_binlog_checksum", breakSQL: []string{"SET GLOBAL binlog_checksum=NONE"}, code: 1, want: "binlog_checksum = NONE"},
		{name: "master_semisync_enabled", breakSQL: []string{"SET GLOBAL rpl_semi_sync_master_enabled=OFF"}, code: 1, want: "rpl_semi_sync_master_enabled = OFF"},
		{name: "master_semisync_wait_point", breakSQL: []string{"SET GLOBAL rpl_semi_sync_master_wait_point=AFTER_COMMIT"}, code: 1, want: "rpl_semi_sync_master_wait_point = AFTER_COMMIT"},
		{name: "master_semisync_timeout", breakSQL: []string{"SET GLOBAL rpl_semi_sync_master_timeout=500"}, code: 1, want: "rpl_semi_sync_master_timeout = 500 ms"},
		{name: "master_semisync_wait_no_slave", breakSQL: []string{"SET GLOBAL rpl_semi_sync_master_wait_no_slave=OFF"}, code: 1, want: "rpl_semi_sync_master_wait_no_slave = OFF"},
		{name: "master_privilege_replication_slave", breakSQL: []string{"REVOKE REPLICATION SLAVE ON *.* FROM 'repl'@'127.0.0.1'"}, code: 2, want: "lacks the REPLICATION SLAVE privilege"},
		// REPLICATION SLAVE ADMIN is another privilege: its name must not
		// pass for REPLICATION SLAVE (SHOW GRANTS was matched by substring).
		{name: "master_privilege_replication_slave_not_admin", breakSQL: []string{"REVOKE REPLICATION SLAVE ON *.* FROM 'repl'@'127.0.0.1'",
			"GRANT REPLICATION SLAVE ADMIN ON *.* TO 'repl'@'127.0.0.1'"}, code: 2, want: "lacks the REPLICATION SLAVE privilege"},
		{name: "master_privilege_replication_master_admin", breakSQL: []string{"REVOKE REPLICATION MASTER ADMIN ON *.* FROM 'repl'@'127.0.0.1'"}, code: 1, want: "server_id conflicts go unchecked"},
		{name: "master_privilege_binlog_monitor", breakSQL: []string{"REVOKE BINLOG MONITOR ON *.* FROM 'repl'@'127.0.0.1'"}, code: 1, want: "lacks BINLOG MONITOR"},
		{name: "master_privilege_fence", breakSQL: []string{"REVOKE READ_ONLY ADMIN, CONNECTION ADMIN ON *.* FROM 'repl'@'127.0.0.1'"}, code: 1, want: "lacks READ_ONLY ADMIN, CONNECTION ADMIN, which the fence needs"},
		{name: "standby_gtid_strict_mode", modes: both, breakSQL: []string{"standby:SET GLOBAL gtid_strict_mode=OFF"}, code: 2, want: "gtid_strict_mode=OFF"},
		{name: "standby_flush_at_commit_0", modes: both, breakSQL: []string{"standby:SET GLOBAL innodb_flush_log_at_trx_commit=0"}, code: 2, want: "innodb_flush_log_at_trx_commit=0"},
		{name: "standby_flush_at_commit_2", modes: both, breakSQL: []string{"standby:SET GLOBAL innodb_flush_log_at_trx_commit=2"}, code: 1, want: "innodb_flush_log_at_trx_commit=2"},
		{name: "standby_sync_binlog", modes: both, breakSQL: []string{"standby:SET GLOBAL sync_binlog=0"}, code: 1, want: "sync_binlog=0"},
		{name: "standby_read_only", modes: both, breakSQL: []string{"standby:SET GLOBAL read_only=OFF"}, code: 1, want: "read_only=OFF"},
		{name: "standby_privilege_read_only_admin", modes: both, breakSQL: []string{"standby:REVOKE READ_ONLY ADMIN ON *.* FROM 'applier'@'127.0.0.1'"}, code: 2, want: "the standby user lacks READ_ONLY ADMIN"},
		{name: "standby_privilege_replica_admin", modes: []string{ModeReplica}, breakSQL: []string{"standby:REVOKE REPLICATION SLAVE ADMIN, SUPER ON *.* FROM 'applier'@'127.0.0.1'"},
			restore: []string{"standby:GRANT SUPER ON *.* TO 'applier'@'127.0.0.1'"}, code: 2, want: "the standby user lacks REPLICATION SLAVE ADMIN"},
		{name: "standby_privilege_reload", modes: []string{ModeReplica}, breakSQL: []string{"standby:REVOKE RELOAD ON *.* FROM 'applier'@'127.0.0.1'"}, code: 1, want: "the standby user lacks RELOAD"},
		{name: "standby_privilege_binlog_replay", modes: []string{ModeDirect}, breakSQL: []string{"standby:REVOKE BINLOG REPLAY, SUPER ON *.* FROM 'applier'@'127.0.0.1'"}, code: 2, want: "the standby user lacks BINLOG REPLAY, SUPER"},
		{name: "standby_privilege_process", modes: []string{ModeDirect}, breakSQL: []string{"standby:REVOKE PROCESS ON *.* FROM 'applier'@'127.0.0.1'"}, code: 1, want: "the standby user lacks PROCESS"},
	}
	for _, c := range cases {
		modes := c.modes
		if modes == nil {
			modes = []string{ModeReplica}
		}
		for _, mode := range modes {
			t.Run(c.name+"/"+mode, func(t *testing.T) {
				s.config(t, withMode(mode))
				run := func(stmts []string) {
					for _, q := range stmts {
						srv := s.master
						if after, ok := strings.CutPrefix(q, "standby:"); ok {
							srv, q = s.standby, after
						}
						if err := srv.Exec(ctx, q); err != nil {
							t.Fatal(err)
						}
					}
				}
				run(c.breakSQL)
				line := s.expectFinding(t, c.code, c.want)
				s.applyPrintedFix(t, line)
				s.expectOK(t)
				run(c.restore)
			})
		}
	}

	// Findings whose fix is in the configuration or needs a restart.
	t.Run("agent_server_id_is_masters", func(t *testing.T) {
		s.config(t, func(c string) string {
			return strings.Replace(withMode(ModeReplica)(c), "server_id = 9001", "server_id = 1", 1)
		})
		s.expectFinding(t, 2, "server_id = 1 is the master's own server_id: give the agent a server_id of its own")
		s.config(t, withMode(ModeReplica)) // the fix: a server_id of its own
		s.expectOK(t)
	})
	for _, mode := range both {
		t.Run("standby_server_id_is_masters/"+mode, func(t *testing.T) {
			s.config(t, withMode(mode))
			s.standbySQL("SET GLOBAL server_id=1")
			s.expectFinding(t, 2, "server_id=1: it is the master's server_id")
			s.standbySQL("SET GLOBAL server_id=2") // the fix: a server_id of its own
			s.expectOK(t)
		})
	}
	t.Run("standby_server_id_is_agents/replica", func(t *testing.T) {
		s.config(t, withMode(ModeReplica))
		s.standbySQL("SET GLOBAL server_id=9001")
		s.expectFinding(t, 2, "server_id=9001: it is the agent's server_id")
		// In direct mode the standby never replicates from the agent.
		s.config(t, withMode(ModeDirect))
		s.expectOK(t)
		s.config(t, withMode(ModeReplica))
		s.standbySQL("SET GLOBAL server_id=2")
		s.expectOK(t)
	})
	t.Run("agent_server_id_in_use", func(t *testing.T) {
		s.config(t, withMode(ModeReplica))
		r, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(s.dir, "native"), ServerID: 9001, Log: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		must(t, r.Exec(ctx, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos", s.master.Port(), s.password)))
		must(t, r.Exec(ctx, "START SLAVE"))
		dumps := func(want string) func() bool {
			return func() bool {
				n, _ := s.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
				return n == want
			}
		}
		harness.WaitFor(t, "the native replica to register", 20*time.Second, dumps("1"))
		s.expectFinding(t, 2, "server_id = 9001 is already used by the replica")
		s.config(t, func(c string) string { return strings.Replace(c, "server_id = 9001", "server_id = 9002", 1) })
		s.expectOK(t)
		must(t, r.Stop(ctx))
		// The master ends a dump thread whose replica went at its next
		// write; end it now.
		id, err := s.master.QueryString(ctx, "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
		if err == nil && id != "" {
			_ = s.master.Exec(ctx, "KILL "+id)
		}
		harness.WaitFor(t, "the native replica to go", 20*time.Second, dumps("0"))
		s.config(t, withMode(ModeReplica))
	})
	t.Run("relay_disk", func(t *testing.T) {
		s.config(t, func(c string) string { return c + "\n[relay]\nsegment_size_mb = 100000000\n" })
		s.expectFinding(t, 2, "less than one relay segment (relay.segment_size_mb = 100000000)")
		s.config(t, func(c string) string { return c + "\n[relay]\nsegment_size_mb = 64\n" })
		s.expectOK(t)
	})
	t.Run("failover_timing", func(t *testing.T) {
		s.config(t, func(c string) string { return c + "\n[failover]\nmode = \"auto\"\nfailures = 40\n" })
		line := s.expectFinding(t, 1, "failover: a dead master host is declared dead up to 12s")
		s.applyPrintedFix(t, line)
		s.expectOK(t)
		s.exec("SET GLOBAL rpl_semi_sync_master_timeout=10000")
	})
	t.Run("master_tls_required", func(t *testing.T) {
		s.config(t, func(c string) string {
			return strings.Replace(c, "user = \"repl\"\n", "user = \"repl\"\ntls = \"required\"\n", 1)
		})
		s.expectFinding(t, 2, "the master offers no TLS (no ssl_cert/ssl_key) and the agent requires it")
		s.config(t, withMode(ModeReplica)) // the fix: lower tls
		s.expectOK(t)
	})
	t.Run("standby_tls_required", func(t *testing.T) {
		s.config(t, func(c string) string {
			return strings.Replace(c, "user = \"applier\"\n", "user = \"applier\"\ntls = \"required\"\n", 1)
		})
		s.expectFinding(t, 2, "the standby offers no TLS (no ssl_cert/ssl_key) and [standby] tls requires it")
		s.config(t, withMode(ModeReplica))
		s.expectOK(t)
	})
	t.Run("tls_ca_file_unreadable", func(t *testing.T) {
		s.config(t, func(c string) string {
			return strings.Replace(c, "user = \"repl\"\n", "user = \"repl\"\ntls = \"verify-full\"\nca_file = \"missing-ca.pem\"\n", 1)
		})
		s.expectFinding(t, 2, "missing-ca.pem: cannot be read: no such file or directory: fix the configuration file")
		s.config(t, withMode(ModeReplica))
		s.expectOK(t)
	})
	t.Run("config_invalid", func(t *testing.T) {
		s.config(t, func(c string) string { return c + "\nno_such_key = 1\n" })
		s.expectFinding(t, 2, "unknown key standby.no_such_key: fix the configuration file")
		s.config(t, withMode(ModeReplica))
		s.expectOK(t)
	})
	t.Run("master_unreachable", func(t *testing.T) {
		s.config(t, withMode(ModeReplica))
		must(t, s.master.Stop(ctx))
		s.expectFinding(t, 2, "cannot connect as the stream does")
		must(t, s.master.Restart(ctx)) // the fix: start the master
		s.expectOK(t)
	})
	t.Run("master_log_bin", func(t *testing.T) {
		s.config(t, withMode(ModeReplica))
		mcfg := sandbox.Config{Dir: filepath.Join(s.dir, "m"), ServerID: 1, Master: true}
		s.master = s.restartWith(t, s.master, withExtra(mcfg, "skip-log-bin"))
		s.expectFinding(t, 2, "log_bin = OFF: enable the binary log (log_bin) and restart the master")
		s.master = s.restartWith(t, s.master, withExtra(mcfg)) // the fix
		s.expectOK(t)
	})
	t.Run("standby_log_bin", func(t *testing.T) {
		scfg := sandbox.Config{Dir: filepath.Join(s.dir, "s"), ServerID: 2}
		s.standby = s.restartWith(t, s.standby, withExtra(scfg, "skip-log-bin", "read_only=ON"))
		for _, mode := range both {
			s.config(t, withMode(mode))
			s.expectFinding(t, 2, "log_bin=OFF")
		}
		s.standby = s.restartWith(t, s.standby, withExtra(scfg, "read_only=ON"))
		for _, mode := range both {
			s.config(t, withMode(mode))
			s.expectOK(t)
		}
	})
	t.Run("standby_log_slave_updates/replica", func(t *testing.T) {
		scfg := sandbox.Config{Dir: filepath.Join(s.dir, "s"), ServerID: 2}
		s.standby = s.restartWith(t, s.standby, withExtra(scfg, "log_slave_updates=OFF", "read_only=ON"))
		s.config(t, withMode(ModeReplica))
		s.expectFinding(t, 2, "log_slave_updates=OFF")
		s.config(t, withMode(ModeDirect)) // direct mode does not need it
		s.expectOK(t)
		s.standby = s.restartWith(t, s.standby, withExtra(scfg, "read_only=ON"))
		s.config(t, withMode(ModeReplica))
		s.expectOK(t)
	})
}

// withExtra is cfg with the master's semi-sync timeout of newEnv and extra
// my.cnf lines.
func withExtra(cfg sandbox.Config, extra ...string) sandbox.Config {
	if cfg.Master {
		extra = append([]string{"rpl_semi_sync_master_timeout=10000"}, extra...)
	}
	cfg.Extra = extra
	return cfg
}

// TestReplicaModePreflightAgentServerID: in replica mode a standby with the
// agent's server_id is refused by run's preflight (the same function check
// calls) before anything is configured, instead of an IO thread stopped on
// error 1593 ("master and slave have equal server ids").
func TestReplicaModePreflightAgentServerID(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeReplica)
	must(t, standby.Exec(context.Background(), "SET GLOBAL server_id=9001"))
	p := e.startInProcess(ingest.Hooks{})
	var rep status.Report
	harness.WaitFor(t, "the preflight to refuse the standby", 60*time.Second, func() bool {
		rep = p.a.liveReport()
		return rep.Applier != nil && rep.Applier.State == "error"
	})
	if !strings.Contains(rep.Applier.LastError, "server_id=9001: it is the agent's server_id") {
		t.Fatalf("applier error %q, want the agent's server_id named", rep.Applier.LastError)
	}
	rows, err := standby.DB().Query("SHOW SLAVE STATUS")
	if err != nil {
		t.Fatal(err)
	}
	configured := rows.Next()
	rows.Close()
	if configured {
		t.Fatal("a refused standby was configured as a replica")
	}
}
