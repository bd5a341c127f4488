package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// blockMasterPort drops every packet to the master's port inside the
// master's namespace (established connections included), as a firewall
// mistake or a partition would: the master keeps running and answers on
// its socket. It returns the function that lifts the block.
func (e *nsEnv) blockMasterPort() (unblock func()) {
	e.t.Helper()
	rule := []string{"INPUT", "-p", "tcp", "--dport", fmt.Sprint(nsPort), "-j", "DROP"}
	e.a.Run("iptables", append([]string{"-I"}, rule...)...)
	done := false
	unblock = func() {
		if !done {
			done = true
			e.a.Run("iptables", append([]string{"-D"}, rule...)...)
		}
	}
	e.t.Cleanup(unblock)
	return unblock
}

// detector returns the detector's view from a report; nil before the
// failover monitor reports one.
func detector(r status.Report) *status.DetectorReport {
	if r.Failover == nil {
		return nil
	}
	return r.Failover.Detector
}

// TestNoFailoverOnAShortPortBlock: the master's port blocked while the
// master keeps running, until the agent's probes fail and its stream is
// down, then lifted well inside the detection window (failures = 50): no
// promotion, the standby stays read-only, and the stream delivers again.
func TestNoFailoverOnAShortPortBlock(t *testing.T) {
	harness.NeedNetns(t, "iptables")
	e := newNsEnv(t, "mode = \"auto\"\nfailures = 50")
	unblock := e.blockMasterPort()
	worst := 0
	harness.WaitFor(t, "the agent to see the block (probes failing, stream down)", 60*time.Second, func() bool {
		d := detector(e.mustReport())
		if d != nil {
			worst = max(worst, d.Failures)
		}
		return d != nil && d.Failures >= 2 && d.StreamDown
	})
	unblock()
	t.Logf("block lifted after %d failed probes in a row (the window is 50)", worst)
	harness.WaitFor(t, "probes answered and the stream back", 60*time.Second, func() bool {
		r := e.mustReport()
		if d := detector(r); d != nil {
			worst = max(worst, d.Failures)
		}
		d := detector(r)
		return d != nil && d.ProbeOK && d.Failures == 0 && !d.StreamDown && r.Stream.State == ingest.StateStreaming
	})
	// The stream delivers again: a commit made now reaches the standby.
	e.execOn(e.master, "INSERT INTO test.t (id, c, payload) VALUES (424242, 1, 'after the block')")
	harness.WaitFor(t, "the commit after the block on the standby", 60*time.Second, func() bool {
		n, _ := e.standby.QueryString(context.Background(), "SELECT COUNT(*) FROM test.t WHERE id = 424242")
		return n == "1"
	})
	r := e.mustReport()
	if r.Role != checkpoint.RoleStandby || detector(r).Dead || strings.Contains(strings.Join(r.Audit, "\n"), "promot") {
		t.Fatalf("role %s, dead %v, audit %v: a short port block was taken for a dead master", r.Role, detector(r).Dead, r.Audit)
	}
	if ro := readOnly(e.standby); ro != "1" {
		t.Fatalf("read_only=%s on the standby after a short port block", ro)
	}
	if worst >= 50 {
		t.Fatalf("%d probes failed in a row: the block was not shorter than the window", worst)
	}
}

// TestWitnessVetoesAPortBlock: the master's port blocked for longer than
// the detection window while the master runs. Probes fail and the stream is
// down, but the witness, which checks the master over another path (its
// unix socket), says it is alive: no promotion, however long the block
// lasts. Then the master dies behind the block: the witness agrees, and
// the agent promotes with every committed row.
func TestWitnessVetoesAPortBlock(t *testing.T) {
	harness.NeedNetns(t, "iptables")
	witness := fmt.Sprintf(`witness = ["sh", "-c", "! mariadb-admin --defaults-file=%s --connect-timeout=1 ping >/dev/null 2>&1"]`,
		"MASTERCNF")
	e := newNsEnvWith(t, func(e *nsEnv) string {
		return "mode = \"auto\"\n" + strings.Replace(witness, "MASTERCNF", e.master.DefaultsFile(), 1)
	})
	for i := range 50 {
		e.execOn(e.master, fmt.Sprintf("INSERT INTO test.t (id, c, payload) VALUES (%d, 1, 'before the block')", 1000+i))
	}
	e.blockMasterPort()
	var d *status.DetectorReport
	harness.WaitFor(t, "twice the window of failed probes, the stream down and the witness saying alive", 60*time.Second, func() bool {
		d = detector(e.mustReport())
		return d != nil && d.Failures >= 6 && d.StreamDown && strings.Contains(d.Witness, "alive")
	})
	r := e.mustReport()
	if r.Role != checkpoint.RoleStandby || detector(r).Dead || readOnly(e.standby) != "1" {
		t.Fatalf("role %s, dead %v, standby read_only %s: the witness said alive (%q) and the agent promoted anyway",
			r.Role, detector(r).Dead, readOnly(e.standby), d.Witness)
	}
	t.Logf("blocked: %d probes failed in a row, stream down (%s), witness: %s; no promotion", d.Failures, d.StreamWhy, d.Witness)

	// Now the master really dies, behind the block (no reset reaches the
	// agent): the witness agrees and the agent promotes.
	if err := e.master.Kill(); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the promotion once the witness agrees", 90*time.Second, func() bool {
		r, err := e.report()
		return err == nil && r.Role == checkpoint.RoleMaster
	})
	r = e.mustReport()
	if !strings.Contains(e.agent.Log(), "witness agreed") {
		t.Fatalf("the agent promoted without the witness agreeing:\n%s", e.agent.LogTail(40))
	}
	ids := make([]int64, 50)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	if missing := missingIDs(t, e.standby, ids); len(missing) > 0 {
		t.Fatalf("committed ids missing on the promoted standby: %v", missing)
	}
	if ro := readOnly(e.standby); ro != "0" {
		t.Fatalf("read_only=%s on the promoted standby (role %s)", ro, r.Role)
	}
}

// limitCPU puts process pid (all its threads) in a cgroup of its own that
// may use percent of one CPU, until the test ends: the v1 cpu controller
// where it is mounted (cpu.cfs_quota_us), else cgroup v2 (cpu.max, with
// the cpu controller enabled for the root's children).
func limitCPU(t *testing.T, pid, percent int) {
	t.Helper()
	root, limits := "/sys/fs/cgroup/cpu", []struct{ file, value string }{
		{"cpu.cfs_period_us", "100000"},
		{"cpu.cfs_quota_us", strconv.Itoa(1000 * percent)},
	}
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		root = "/sys/fs/cgroup"
		if _, err := os.Stat(filepath.Join(root, "cgroup.subtree_control")); err != nil {
			t.Fatalf("this test needs a cgroup cpu controller (v1 at /sys/fs/cgroup/cpu or v2 at /sys/fs/cgroup): %v", err)
		}
		if err := os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0o600); err != nil {
			t.Fatalf("cgroup v2: enable the cpu controller in %s: %v", root, err)
		}
		limits = []struct{ file, value string }{{"cpu.max", fmt.Sprintf("%d 100000", 1000*percent)}}
	}
	dir := filepath.Join(root, "hst-"+harness.RandHex(4))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Back to the root group, then remove the empty group.
		os.WriteFile(filepath.Join(root, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o600)
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Logf("remove cgroup %s: %v", dir, err)
		}
	})
	for _, w := range append(limits, struct{ file, value string }{"cgroup.procs", strconv.Itoa(pid)}) {
		if err := os.WriteFile(filepath.Join(dir, w.file), []byte(w.value), 0o600); err != nil {
			t.Fatalf("cgroup %s: write %s = %s: %v", dir, w.file, w.value, err)
		}
	}
}

// TestNoFailoverWhileTheMasterIsOverloaded: the master limited to 5% of
// one CPU while 16 clients commit as fast as it lets them, for a few
// seconds: slow, but it answers probes and keeps streaming, so the agent
// does not promote; every commit OK'd meanwhile reaches the standby.
func TestNoFailoverWhileTheMasterIsOverloaded(t *testing.T) {
	harness.NeedNetns(t)
	e := newNsEnv(t, `mode = "auto"`)
	limitCPU(t, e.master.PID(), 5)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var committed atomic.Int64
	ids := okIDs(ctx, t, e.master, 16, &committed)
	start := time.Now()
	worst, slowest := 0, 0.0
	harness.WaitFor(t, "500 commits and 5 s of probes against the overloaded master", 120*time.Second, func() bool {
		r := e.mustReport()
		d := detector(r)
		if d == nil {
			return false
		}
		worst, slowest = max(worst, d.Failures), max(slowest, d.ProbeMS)
		if r.Role != checkpoint.RoleStandby || d.Dead {
			t.Fatalf("role %s, dead %v (%s): an overloaded master that answers was taken for dead", r.Role, d.Dead, d.ProbeError)
		}
		return committed.Load() >= 500 && d.ProbeAt != nil && d.ProbeAt.After(start.Add(5*time.Second))
	})
	stop()
	ok := ids()
	t.Logf("overloaded master (5%% of a CPU): %d commits OK'd, slowest probe %.0f ms, at most %d probes failed in a row; no promotion", len(ok), slowest, worst)
	r := e.mustReport()
	if r.Role != checkpoint.RoleStandby || strings.Contains(strings.Join(r.Audit, "\n"), "promot") || readOnly(e.standby) != "1" {
		t.Fatalf("role %s, audit %v, standby read_only %s: want no promotion", r.Role, r.Audit, readOnly(e.standby))
	}
	harness.WaitFor(t, "every OK'd commit on the standby", 120*time.Second, func() bool {
		return len(missingIDs(t, e.standby, ok)) == 0
	})
}
