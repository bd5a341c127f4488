package applier

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestGTIDDomainsKept: a master writing in two GTID domains; the standby
// carries exactly its GTIDs, domain by domain.
func TestGTIDDomainsKept(t *testing.T) {
	master, standby := startServer(t, 1), startServer(t, 2)
	const schema = "SET SESSION sql_log_bin=0; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20)); SET SESSION sql_log_bin=1"
	mustExec(t, master, schema)
	mustExec(t, standby, schema)
	id := 0
	ins := func(n int) string {
		var b strings.Builder
		for range n {
			id++
			fmt.Fprintf(&b, "INSERT INTO d.t VALUES (%d, 'row %d');", id, id)
		}
		return b.String()
	}
	for _, q := range []string{
		"SET SESSION gtid_domain_id = 0;" + ins(2),
		"SET SESSION gtid_domain_id = 3;" + ins(2),
		"SET SESSION gtid_domain_id = 0;" + ins(1),
		"SET SESSION gtid_domain_id = 3;" + ins(1) + "CREATE TABLE d.u (id INT PRIMARY KEY);",
		"SET SESSION gtid_domain_id = 0;" + ins(1),
	} {
		mustExec(t, master, q)
	}
	rl := copyRelay(t, master)
	a, _ := runApplier(t, Config{DSN: standbyDSN(standby), RelayDir: rl.dir}, newFixedSource(rl.end))
	waitCaughtUp(t, a, rl.end, 60*time.Second)
	var want []string
	for _, tx := range rl.txns {
		want = append(want, tx.gtid.String())
	}
	if got := binlogGTIDs(t, standby); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("standby's binlog GTIDs\n  %s\nwant the master's\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	if got, want := queryString(t, standby, "SELECT @@gtid_binlog_state"), queryString(t, master, "SELECT @@gtid_binlog_state"); got != want {
		t.Fatalf("standby gtid_binlog_state %s; master %s", got, want)
	}
	if got, want := rowIDs(t, standby), rowIDs(t, master); got != want {
		t.Fatalf("standby rows %s; master %s", got, want)
	}
}
