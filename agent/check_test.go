package agent

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/status"
)

// runCheck runs `hotstandby status --check` and returns its exit code and
// its one line.
func runCheck(t *testing.T, cfgPath string, extra ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(hsBinary, append([]string{"status", "--check", "--config", cfgPath}, extra...)...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		t.Fatalf("--check printed %d lines, want one:\n%s", len(lines), out)
	}
	return code, lines[0]
}

// TestStatusCheckExitCodes produces each of the four monitoring exit codes.
func TestStatusCheckExitCodes(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	ctx := context.Background()

	if code, line := runCheck(t, filepath.Join(e.dir, "missing.toml")); code != status.CheckUnknown || !strings.HasPrefix(line, "UNKNOWN: ") {
		t.Fatalf("missing config: exit %d %q, want 3 UNKNOWN", code, line)
	}
	if code, line := runCheck(t, e.cfgPath); code != status.CheckCritical || !strings.Contains(line, "not running") {
		t.Fatalf("daemon never started: exit %d %q, want 2 CRITICAL", code, line)
	}
	p := e.startProcess()
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
	e.waitApplied(standby, 30*time.Second)
	// OK once the monitor has proven the master lossless again: it was not
	// in semi-sync before the agent connected, and a proof needs two
	// samples (2 s apart) whose counters agree.
	var code int
	var line string
	harness.WaitFor(t, "--check to say OK", 30*time.Second, func() bool {
		code, line = runCheck(t, e.cfgPath)
		return code == status.CheckOK
	})
	if !strings.Contains(line, "applier 0 transactions behind") {
		t.Fatalf("healthy: exit %d %q, want 0 OK with the applier's lag", code, line)
	}
	// A row changed behind the agent's back stops the applier.
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin=0; INSERT INTO test.t (id, c) VALUES (2, 99)"); err != nil {
		t.Fatal(err)
	}
	e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
	harness.WaitFor(t, "--check to report the stopped applier", 30*time.Second, func() bool {
		code, line := runCheck(t, e.cfgPath)
		return code == status.CheckCritical && strings.Contains(line, "applier stopped") && strings.Contains(line, "Duplicate entry")
	})
	p.kill()
	// A master setting that breaks the lossless promise: WARNING.
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin=0; DELETE FROM test.t WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	e.exec("SET GLOBAL binlog_row_metadata = MINIMAL")
	p.start()
	e.waitSemiSyncClient()
	harness.WaitFor(t, "--check to warn about the master's settings", 30*time.Second, func() bool {
		code, line := runCheck(t, e.cfgPath)
		return code == status.CheckWarning && strings.Contains(line, "binlog_row_metadata")
	})
	p.kill()
}
