package agent

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlogserver"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
)

// TestFreshParallelReplicaGetsMasterFile: a fresh standby (empty
// gtid_slave_pos) replicates from the agent's binlog server with 4
// optimistic parallel threads from its very first transaction. It stays
// up, applies everything, and SHOW SLAVE STATUS names the master's binlog
// file (Master_Log_File and Relay_Master_Log_File), as with a real master.
// MariaDB 10.11's parallel worker compares the SQL thread's master log name
// with the event's (compare_log_name): with both empty it crashed (signal
// 11), which a server that does not name the file correctly provokes.
func TestFreshParallelReplicaGetsMasterFile(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	ctx := context.Background()
	if pos := query(t, standby, "SELECT @@GLOBAL.gtid_slave_pos"); pos != "" {
		t.Fatalf("standby gtid_slave_pos %q: want a fresh standby", pos)
	}
	e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	harness.WaitFor(t, "the standby to replicate with 4 parallel threads", 60*time.Second, func() bool {
		v, err := standby.QueryString(ctx, "SELECT @@GLOBAL.slave_parallel_threads")
		return err == nil && v == "4"
	})
	e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
	e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
	e.waitApplied(standby, 60*time.Second)
	assertSameRows(t, e.master, standby, 2)
	assertStandbyNamesMasterFile(t, e, standby)
}

// assertStandbyNamesMasterFile checks that the standby's mariadbd is up and
// that SHOW SLAVE STATUS names the master's binlog file as a real master's
// replica does, with both threads running.
func assertStandbyNamesMasterFile(t *testing.T, e *testEnv, standby *sandbox.Server) {
	t.Helper()
	if log := standby.ErrorLogTail(400); strings.Contains(log, "got signal") {
		t.Fatalf("the standby's mariadbd crashed:\n%s", log)
	}
	masterFile := query(t, e.master, "SELECT SUBSTRING_INDEX(@@GLOBAL.log_bin_basename, '/', -1)")
	var ss map[string]string
	harness.WaitFor(t, "SHOW SLAVE STATUS to name the master's file", 30*time.Second, func() bool {
		var err error
		ss, err = slaveStatusOf(standby)
		return err == nil && ss["Relay_Master_Log_File"] != ""
	})
	wantFile := masterFile + ".000001"
	if ss["Master_Log_File"] != wantFile || ss["Relay_Master_Log_File"] != wantFile {
		t.Fatalf("SHOW SLAVE STATUS Master_Log_File %q Relay_Master_Log_File %q, want %q (the master's binlog)",
			ss["Master_Log_File"], ss["Relay_Master_Log_File"], wantFile)
	}
	if ss["Slave_SQL_Running"] != "Yes" || ss["Slave_IO_Running"] != "Yes" {
		t.Fatalf("SHOW SLAVE STATUS IO %q SQL %q: %q %q", ss["Slave_IO_Running"], ss["Slave_SQL_Running"], ss["Last_IO_Error"], ss["Last_SQL_Error"])
	}
}

// TestFreshParallelReplicaFromAFilledRelay is the apply benchmark's order:
// the agent receives the master's history without a standby and stops;
// started again with a fresh standby in replica mode (4 optimistic
// threads), the standby replicates the whole relay from an empty
// gtid_slave_pos.
func TestFreshParallelReplicaFromAFilledRelay(t *testing.T) {
	e := newEnv(t)
	e.exec("SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "file:mysql-bin.000001:4"`, 1))
	if _, err := e.load(context.Background(), 8, 2000); err != nil {
		t.Fatal(err)
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitCaughtUp(p.a.liveReport)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	standby := e.withReplicaStandby()
	logStandbyRelayOnFailure(t, e)
	e.startInProcess(ingest.Hooks{})
	e.waitApplied(standby, 2*time.Minute)
	assertSameRows(t, e.master, standby, 2000)
	assertStandbyNamesMasterFile(t, e, standby)
}

// logStandbyRelayOnFailure logs the start of the standby's relay log files
// (mariadb-binlog) if the test fails: what its IO thread queued.
func logStandbyRelayOnFailure(t *testing.T, e *testEnv) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		files, _ := filepath.Glob(filepath.Join(e.dir, "s", "data", "relay-bin.[0-9]*"))
		for _, f := range files {
			out, _ := exec.Command("mariadb-binlog", "--hexdump", f).CombinedOutput()
			lines := strings.SplitN(string(out), "\n", 120)
			t.Logf("%s:\n%s", f, strings.Join(lines[:min(len(lines), 119)], "\n"))
		}
	})
}

// gateSource is a binlogserver.Source whose durable frontier the test sets:
// zero (not known yet, as before the agent recovered its relay log) until
// open is called.
type gateSource struct {
	f atomic.Pointer[relay.Frontier]
}

func (g *gateSource) Durable() relay.Frontier {
	if f := g.f.Load(); f != nil {
		return *f
	}
	return relay.Frontier{}
}

func (g *gateSource) open(f relay.Frontier) { g.f.Store(&f) }

// TestFreshParallelReplicaDumpsBeforeRelayRecovered: the agent's binlog
// server takes a fresh standby's dump request (empty gtid_slave_pos, 4
// optimistic parallel threads) before the durable frontier is known, as
// when the agent starts with a full relay log and the standby connects
// before the receiver has recovered it. The standby must wait, then get the
// whole relay with the master's file named: it stays up, rows equal, SHOW
// SLAVE STATUS names the master's binlog file. (The server used to take
// the zero frontier for "caught up" and send a fake Rotate naming no file;
// the standby's mariadbd crashed with signal 11 in compare_log_name at the
// end of its first transaction.)
func TestFreshParallelReplicaDumpsBeforeRelayRecovered(t *testing.T) {
	e := newEnv(t)
	e.exec("SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "file:mysql-bin.000001:4"`, 1))
	if _, err := e.load(context.Background(), 4, 300); err != nil {
		t.Fatal(err)
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitCaughtUp(p.a.liveReport)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	standby := e.withReplicaStandby()
	logStandbyRelayOnFailure(t, e)
	c := e.config()

	src := &gateSource{}
	srv, err := binlogserver.New(binlogserver.Config{Listen: "127.0.0.1:0", User: replicaUser, Password: e.password,
		RelayDir: c.RelayDir(), Source: src, ServerID: c.ServerID})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		<-served
	})
	_, port, _ := net.SplitHostPort(srv.Addr())
	for _, q := range []string{
		"SET GLOBAL slave_parallel_mode='optimistic'", "SET GLOBAL slave_parallel_threads=4",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, MASTER_USER='%s', MASTER_PASSWORD='%s', "+
			"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.25", port, replicaUser, e.password),
		"START SLAVE",
	} {
		if err := standby.Exec(context.Background(), q); err != nil {
			t.Fatalf("standby: %s: %v", strings.SplitN(q, " MASTER_USER", 2)[0], err)
		}
	}
	harness.WaitFor(t, "the standby's dump request", 30*time.Second, func() bool { return len(srv.Replicas()) == 1 })

	// Now the frontier becomes known: the relay's durable end, as the
	// receiver's recovery finds it.
	st, err := checkpointState(c)
	if err != nil {
		t.Fatal(err)
	}
	w, end, err := relay.Open(relay.DefaultConfig(c.RelayDir()), st.Received)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	src.open(end)

	want := query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
	crashed := false
	harness.WaitFor(t, "the standby's gtid_slave_pos to reach "+want, 2*time.Minute, func() bool {
		if strings.Contains(standby.ErrorLogTail(400), "got signal") {
			crashed = true
			return true
		}
		v, err := standby.QueryString(context.Background(), "SELECT @@GLOBAL.gtid_slave_pos")
		return err == nil && v == want
	})
	if crashed {
		t.Fatalf("the standby's mariadbd crashed:\n%s", standby.ErrorLogTail(60))
	}
	assertSameRows(t, e.master, standby, 300)
	assertStandbyNamesMasterFile(t, e, standby)
}
