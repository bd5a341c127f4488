package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// cpuTicks is utime+stime of pid in clock ticks (/proc/<pid>/stat).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// TestCPUPerTxnBench measures the agent process's CPU time (USER_HZ=100
// ticks) per transaction for each binary in HOTSTANDBY_CPU_BINS
// ("label=path,label=path"): 5,000 single-row commits from 8 clients with
// the standby in replica mode (then 30 s idle, caught up), and with 4
// downstream replicas and no standby. A measurement, not a test: skipped
// unless the variable is set.
func TestCPUPerTxnBench(t *testing.T) {
	bins := os.Getenv("HOTSTANDBY_CPU_BINS")
	if bins == "" {
		t.Skip("HOTSTANDBY_CPU_BINS not set")
	}
	const n = 5000
	for _, lb := range strings.Split(bins, ",") {
		label, bin, _ := strings.Cut(lb, "=")
		t.Run(label+"/replica-mode", func(t *testing.T) {
			se, sb := serveConfig(t, true)
			p := harness.Start(t, bin, []string{"run", "--config", se.cfgPath}, filepath.Join(se.dir, "agent.log"), nil, nil)
			se.waitSemiSyncClient()
			se.waitApplied(sb, 120*time.Second)
			c0 := cpuTicks(t, p.Pid())
			se.loadN(n)
			se.waitApplied(sb, 300*time.Second)
			c1 := cpuTicks(t, p.Pid())
			time.Sleep(30 * time.Second) // idle, caught up: what the agent burns doing nothing
			c2 := cpuTicks(t, p.Pid())
			t.Logf("RESULT %s replica-mode: %d txns, cpu %d ticks = %.1f us/txn; idle 30 s: %d ticks", label, n, c1-c0, float64(c1-c0)*1e4/n, c2-c1)
		})
		t.Run(label+"/4-downstream", func(t *testing.T) {
			se, _ := serveConfig(t, false)
			p := harness.Start(t, bin, []string{"run", "--config", se.cfgPath}, filepath.Join(se.dir, "agent.log"), nil, nil)
			se.waitSemiSyncClient()
			var reps []*sandbox.Server
			for i := range 4 {
				reps = append(reps, se.newReplica(fmt.Sprintf("d%d", i+1), uint32(31+i), se.startGTID))
			}
			se.loadN(8) // the replicas connect and catch up before the count starts
			for i, r := range reps {
				se.waitReplicaEqual(r, fmt.Sprintf("downstream %d", i+1))
			}
			c0 := cpuTicks(t, p.Pid())
			se.loadN(n)
			for i, r := range reps {
				se.waitReplicaEqual(r, fmt.Sprintf("downstream %d", i+1))
			}
			c1 := cpuTicks(t, p.Pid())
			t.Logf("RESULT %s 4-downstream: %d txns, cpu %d ticks = %.1f us/txn", label, n, c1-c0, float64(c1-c0)*1e4/n)
		})
	}
}
