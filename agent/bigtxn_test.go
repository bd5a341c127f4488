package agent

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
)

// peakRSS returns a process's VmHWM in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	kb, err := harness.PeakRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return kb << 10
}

// TestMillionRowTransactionBoundedMemory: one transaction of a million rows
// streams through the relay log and the applier with the agent's peak RSS
// under 256 MB, and arrives whole; verify then reports equality (exit 0), and
// a difference makes it exit non-zero.
func TestMillionRowTransactionBoundedMemory(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	p := e.startProcess()
	e.waitSemiSyncClient()
	e.exec("CREATE TABLE test.big (id INT PRIMARY KEY, v VARCHAR(40), n BIGINT)")
	e.exec("INSERT INTO test.big SELECT seq, CONCAT('row-', seq, REPEAT('x', 20)), seq * 7 FROM test.seq_1_to_1000000")
	e.waitApplied(standby, 5*time.Minute)
	if n, _ := standby.QueryString(context.Background(), "SELECT COUNT(*) FROM test.big"); n != "1000000" {
		t.Fatalf("standby holds %s rows of the million", n)
	}
	rss := peakRSS(t, p.Pid())
	t.Logf("agent peak RSS after a 1,000,000-row transaction: %.1f MiB", float64(rss)/(1<<20))
	if rss > 256<<20 {
		t.Fatalf("agent peak RSS %d MiB, want under 256 MiB", rss>>20)
	}
	// verify: the replication user cannot read tables; verify says so.
	out, err := exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "master user") || !strings.Contains(string(out), "GRANT SELECT") {
		t.Fatalf("verify without SELECT on the master: %v\n%s", err, out)
	}
	if err := e.master.Exec(context.Background(), "SET SESSION sql_log_bin=0; GRANT SELECT ON *.* TO 'repl'@'127.0.0.1'"); err != nil {
		t.Fatal(err)
	}
	// verify: equal, then a row changed behind the agent's back.
	out, err = exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("verify on identical servers: %v\n%s", err, out) // output names the cause
	}
	if !strings.Contains(string(out), "test.big 1000000 rows") {
		t.Fatalf("verify output does not list test.big:\n%s", out)
	}
	if err := standby.Exec(context.Background(), "SET SESSION sql_log_bin=0; UPDATE test.big SET n = n + 1 WHERE id = 777777"); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "test.big") || !strings.Contains(string(out), "1 of") {
		t.Fatalf("verify missed a changed row (err %v):\n%s", err, out)
	}
	p.kill()
}
