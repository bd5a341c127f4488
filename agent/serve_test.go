package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/replica"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// serveEnv is a master, an in-process agent with [serve], and the
// downstream user's password.
type serveEnv struct {
	*testEnv
	agent     *inProcess
	servePort int
	servePW   string
	startGTID string // the master's gtid_binlog_pos when the agent started
	startPos  string // and its SHOW MASTER STATUS
}

// newServeEnv starts a master and an agent that serves its relay log on a
// loopback port given as ":port" (the host defaults to 127.0.0.1), with
// 1 MiB relay segments. With standby, the agent also applies to a standby
// (returned) and purges applied segments.
func newServeEnv(t *testing.T, standby bool, hooks ...ingest.Hooks) (*serveEnv, *sandbox.Server) {
	t.Helper()
	se, sb := serveConfig(t, standby)
	var h ingest.Hooks
	if len(hooks) > 0 {
		h = hooks[0]
	}
	se.agent = se.startInProcess(h)
	se.waitSemiSyncClient()
	return se, sb
}

// serveConfig starts the master (and the standby) and writes the agent's
// config with [serve]; the agent is not started.
func serveConfig(t *testing.T, standby bool) (*serveEnv, *sandbox.Server) {
	t.Helper()
	e := newEnv(t)
	var sb *sandbox.Server
	if standby {
		sb = e.withStandby()
	}
	port, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	se := &serveEnv{testEnv: e, servePort: port, servePW: "down-" + harness.RandHex(12)}
	pw := filepath.Join(e.dir, "serve.pw")
	if err := os.WriteFile(pw, []byte(se.servePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+fmt.Sprintf("\n[relay]\nsegment_size_mb = 1\n\n[serve]\nlisten = \":%d\"\nuser = \"downstream\"\npassword_file = %q\n", port, pw))
	se.startGTID = se.masterGTID()
	se.startPos = e.masterPos().String()
	return se, sb
}

func (se *serveEnv) masterGTID() string {
	se.t.Helper()
	v, err := se.master.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
	if err != nil {
		se.t.Fatal(err)
	}
	return v
}

// newReplica starts a stock MariaDB server with the master's tables (not
// binlogged) and gtid_slave_pos at state, pointed at the agent.
func (se *serveEnv) newReplica(name string, serverID uint32, state string, extra ...string) *sandbox.Server {
	t := se.t
	t.Helper()
	ctx := context.Background()
	r, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(se.dir, name), ServerID: serverID, Log: t.Logf, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if st, err := slaveStatusOf(r); err == nil {
				t.Logf("%s SHOW SLAVE STATUS: IO %s SQL %s io_err %q sql_err %q", name, st["Slave_IO_Running"], st["Slave_SQL_Running"], st["Last_IO_Error"], st["Last_SQL_Error"])
			}
			// The IO thread's own reason (e.g. why an event could not be
			// queued) is only in the replica's error log.
			t.Logf("%s error log (tail):\n%s", name, r.ErrorLogTail(30))
		}
		r.Stop(context.Background())
	})
	for _, q := range []string{
		"CREATE DATABASE test",
		"CREATE TABLE test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, payload VARCHAR(200)) ENGINE=InnoDB",
		"CREATE TABLE test.nudge (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB",
		"RESET MASTER", // the setup is not part of the replicated history
		"SET GLOBAL gtid_slave_pos = '" + state + "'",
	} {
		if err := r.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	se.changeMaster(r, se.servePW, "START SLAVE")
	return r
}

func (se *serveEnv) changeMaster(r *sandbox.Server, password, start string) {
	se.t.Helper()
	q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='downstream', MASTER_PASSWORD='%s', "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.2", se.servePort, password)
	if err := r.Exec(context.Background(), q); err != nil {
		se.t.Fatal(err)
	}
	if err := r.Exec(context.Background(), start); err != nil {
		se.t.Fatal(err)
	}
}

func slaveStatusOf(s *sandbox.Server) (map[string]string, error) {
	st, err := replica.ReadSlaveStatus(context.Background(), s.DB())
	if err == nil && st == nil {
		return nil, errors.New("SHOW SLAVE STATUS: no row")
	}
	return st, err
}

// waitReplicaEqual waits until the replica applied everything the master
// has (gtid_slave_pos = the master's gtid_binlog_pos) with both threads
// running, then compares the table.
func (se *serveEnv) waitReplicaEqual(r *sandbox.Server, what string) {
	t := se.t
	t.Helper()
	var want string
	harness.Poll(t, what+" to reach the master's gtid_binlog_pos", 120*time.Second, 50*time.Millisecond, func() (bool, error) {
		// Re-read the master: commits of cancelled clients may still land.
		want = se.masterGTID()
		st, err := slaveStatusOf(r)
		if err != nil {
			return false, nil // restarting
		}
		if st["Last_SQL_Errno"] != "0" || st["Last_IO_Errno"] != "0" && st["Slave_IO_Running"] == "No" {
			return false, fmt.Errorf("%s stopped: IO %q, SQL %q", what, st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		got, err := r.QueryString(context.Background(), "SELECT @@gtid_slave_pos")
		return err == nil && got == want, nil
	})
	if a, b := tableDigest(t, se.master), tableDigest(t, r); a != b {
		t.Fatalf("%s: test.t differs from the master: master %s, replica %s", what, a, b)
	}
	// The replica's own binlog (log_slave_updates) has the master's GTIDs.
	got, err := r.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
	if err != nil || got != want {
		t.Fatalf("%s: gtid_binlog_pos %q, want the master's %q (%v)", what, got, want, err)
	}
}

// tableDigest is the row count and a digest over every stored column of
// test.t.
func tableDigest(t *testing.T, s *sandbox.Server) string {
	t.Helper()
	v, err := s.QueryString(context.Background(),
		"SELECT CONCAT(COUNT(*), ':', COALESCE(SUM(CRC32(CONCAT_WS('#', id, c, payload))), 0)) FROM test.t")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (se *serveEnv) loadN(n int) {
	se.t.Helper()
	if _, err := se.load(context.Background(), 8, n); err != nil {
		se.t.Fatal(err)
	}
}

// TestServeReplicaFollowsAgent: a stock MariaDB replica (gtid_strict_mode)
// replicates from the agent's binlog server through load, relay segment
// rolls, master binlog rotations, a restart of the replica in the middle of
// the load and idle heartbeats, and ends with the master's rows and GTIDs.
// A second replica asking for a GTID the relay does not hold is refused
// with 1236 naming it, then replicates beside the first; a wrong password
// is refused.
func TestServeReplicaFollowsAgent(t *testing.T) {
	se, _ := newServeEnv(t, false)
	ctx := context.Background()
	r1 := se.newReplica("r1", 31, se.startGTID)
	se.loadN(1500)
	se.exec("FLUSH BINARY LOGS")
	se.loadN(1000)
	se.waitReplicaEqual(r1, "replica r1")

	// A restart of the replica in the middle of the load: it resumes from
	// its GTID state; strict mode stops it on any duplicate or gap.
	loadDone := make(chan error, 1)
	go func() { _, err := se.load(ctx, 8, 3000); loadDone <- err }()
	harness.Poll(t, "replica r1 to receive part of the load", 60*time.Second, 20*time.Millisecond, func() (bool, error) {
		n, err := r1.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
		c, _ := strconv.Atoi(n)
		return err == nil && c > 3000, nil
	})
	if err := r1.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	se.exec("FLUSH BINARY LOGS")
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	se.waitReplicaEqual(r1, "replica r1 after its restart")
	segs := relaySegments(t, se.config().RelayDir())
	if segs < 3 {
		t.Fatalf("the relay log has %d segments: the test meant to cross segment rolls", segs)
	}

	// Idle master: the replica keeps receiving heartbeats from the agent.
	hb := func() int64 {
		v, err := r1.Status(ctx, "Slave_received_heartbeats")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	before := hb()
	harness.WaitFor(t, "replica r1 to receive heartbeats from the agent", 30*time.Second, func() bool { return hb() >= before+3 })
	if st, _ := slaveStatusOf(r1); st["Slave_IO_Running"] != "Yes" {
		t.Fatalf("r1's IO thread after heartbeats: %q (%s)", st["Slave_IO_Running"], st["Last_IO_Error"])
	}

	// A replica asking for transactions from before the relay log: 1236
	// with the GTID named.
	purged := "0-1-1"
	r2 := se.newReplica("r2", 32, purged)
	var ioErr string
	harness.Poll(t, "replica r2's IO thread to stop with 1236", 60*time.Second, 50*time.Millisecond, func() (bool, error) {
		st, err := slaveStatusOf(r2)
		if err != nil {
			return false, err
		}
		ioErr = st["Last_IO_Error"]
		return st["Last_IO_Errno"] == "1236" && st["Slave_IO_Running"] == "No", nil
	})
	if !strings.Contains(ioErr, "GTID "+purged) || !strings.Contains(ioErr, "relay log") {
		t.Fatalf("r2's Last_IO_Error does not name the GTID and the relay log: %q", ioErr)
	}
	t.Logf("r2 refused as expected: %s", ioErr)

	// Started from the relay's start, r2 replicates beside r1.
	if err := r2.Exec(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	if err := r2.Exec(ctx, "SET GLOBAL gtid_slave_pos = '"+se.startGTID+"'"); err != nil {
		t.Fatal(err)
	}
	if err := r2.Exec(ctx, "START SLAVE"); err != nil {
		t.Fatal(err)
	}
	se.loadN(1000)
	se.waitReplicaEqual(r1, "replica r1 beside r2")
	se.waitReplicaEqual(r2, "replica r2 beside r1")
	rep := se.agent.a.liveReport()
	if rep.Serve == nil || len(rep.Serve.Replicas) != 2 {
		t.Fatalf("status lists %+v, want the two replicas", rep.Serve)
	}
	for _, rr := range rep.Serve.Replicas {
		if rr.SentGTID != se.masterGTID() || !rr.CaughtUp {
			t.Fatalf("status: replica %d sent %q (caught up %v), want %s", rr.ServerID, rr.SentGTID, rr.CaughtUp, se.masterGTID())
		}
	}

	// A wrong password is refused, and no password reaches the log.
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr = "downstream", "not-the-password", "tcp", fmt.Sprintf("127.0.0.1:%d", se.servePort)
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.PingContext(ctx)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1045 {
		t.Fatalf("wrong password: got %v, want error 1045 access denied", err)
	}
	harness.WaitFor(t, "the refused login in the agent's log", 10*time.Second, func() bool {
		return strings.Contains(se.agent.log.String(), "replica connection refused")
	})
	if log := se.agent.log.String(); strings.Contains(log, se.servePW) || strings.Contains(log, "not-the-password") {
		t.Fatal("a password reached the agent's log")
	}
}

func relaySegments(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "relay-") {
			n++
		}
	}
	return n
}

// cutProxy forwards TCP to target; once armed, it cuts the first
// connection after `after` more bytes from target, then forwards
// normally again.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  atomic.Int64 // bytes left before the cut; 0: not armed
	cuts   atomic.Int32
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
	return p
}

func (p *cutProxy) pipe(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	var once sync.Once
	done := func() { once.Do(func() { c.Close(); up.Close() }) }
	go func() { _, _ = io.Copy(up, c); done() }()
	buf := make([]byte, 16<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if left := p.armed.Load(); left > 0 {
				if int64(n) >= left {
					_, _ = c.Write(buf[:left])
					p.armed.Store(0)
					p.cuts.Add(1)
					done()
					return
				}
				p.armed.Add(-int64(n))
			}
			if _, werr := c.Write(buf[:n]); werr != nil {
				done()
				return
			}
		}
		if err != nil {
			done()
			return
		}
	}
}

// TestServeResendsCutTransaction: the replica's connection is cut in the
// middle of a large transaction; on reconnect the agent sends the
// transaction again from its GTID event and the replica applies it once.
func TestServeResendsCutTransaction(t *testing.T) {
	se, _ := newServeEnv(t, false)
	ctx := context.Background()
	proxy := newCutProxy(t, fmt.Sprintf("127.0.0.1:%d", se.servePort))
	_, proxyPort, _ := net.SplitHostPort(proxy.ln.Addr().String())
	se.servePort, _ = strconv.Atoi(proxyPort) // the replica goes through the proxy
	r := se.newReplica("r1", 31, se.startGTID)
	se.loadN(200)
	se.waitReplicaEqual(r, "replica before the big transaction")
	// One transaction of about 3 MB; cut after 1 MB of it.
	proxy.armed.Store(1 << 20)
	se.exec("INSERT INTO test.t (c, payload) SELECT seq, REPEAT('y', 150) FROM test.seq_1_to_20000")
	se.waitReplicaEqual(r, "replica after the cut transaction")
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the proxy cut %d connections, want 1", proxy.cuts.Load())
	}
	if n, _ := r.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE c <= 20000 AND payload = REPEAT('y', 150)"); n != "20000" {
		t.Fatalf("the replica has %s rows of the big transaction, want 20000", n)
	}
	if !strings.Contains(se.agent.log.String(), "replica asks for a dump") {
		t.Fatal("no dump logged")
	}
}

// TestServePurgeKeepsWhatAReplicaReads: a downstream replica whose SQL
// thread is stopped (and whose relay log space is limited) stops reading
// in an old relay segment; the agent applies everything to its standby,
// and purge, which would otherwise delete up to the applied segment, keeps
// the replica's segment and every later one. Started again, the replica
// catches up with the master.
func TestServePurgeKeepsWhatAReplicaReads(t *testing.T) {
	se, standby := newServeEnv(t, true)
	ctx := context.Background()
	r := se.newReplica("r1", 31, se.startGTID, "relay_log_space_limit=1048576")
	if err := r.Exec(ctx, "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	if err := r.Exec(ctx, "START SLAVE IO_THREAD"); err != nil {
		t.Fatal(err)
	}
	// About 40 MB in 3.4 MB transactions: more than the replica's relay
	// limit and the loopback socket buffers hold, one segment each.
	for range 12 {
		se.exec("INSERT INTO test.t (c, payload) SELECT seq, REPEAT('z', 150) FROM test.seq_1_to_20000")
	}
	se.waitApplied(standby, 120*time.Second)
	var seg uint64
	harness.Poll(t, "the replica to stop reading (its relay log is full)", 60*time.Second, 200*time.Millisecond, func() (bool, error) {
		rep := se.agent.a.liveReport()
		if rep.Serve == nil || len(rep.Serve.Replicas) != 1 {
			return false, nil
		}
		prev := seg
		seg = rep.Serve.Replicas[0].Segment
		return seg != 0 && seg == prev, nil
	})
	stored, err := se.agent.a.store.Load()
	must(t, err)
	h, ok := se.agent.a.mode.purgeHorizon(stored) // what the standby's apply mode would let go
	applied := h.keepFrom
	if !ok || applied <= seg+1 {
		t.Fatalf("the replica reads segment %d and the standby applied segment %d: the test needs the replica further behind", seg, applied)
	}
	// Purge now, as if every segment were past its retention.
	se.agent.a.purgeRelay(time.Now().Add(48 * time.Hour))
	segs, err := relay.ListSegments(se.config().RelayDir())
	if err != nil {
		t.Fatal(err)
	}
	if segs[0].Seq != seg {
		t.Fatalf("after purge the oldest segment is %d; the replica reads %d (applied: %d)", segs[0].Seq, seg, applied)
	}
	if err := r.Exec(ctx, "START SLAVE SQL_THREAD"); err != nil {
		t.Fatal(err)
	}
	se.waitReplicaEqual(r, "the replica after the purge")
}

// TestServeConfigErrors: the [serve] section's mistakes are one line that
// names the key; a listen address without a host is loopback.
func TestServeConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "serve.pw"), []byte("down-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\npassword = \"hunter2-secret\"\n[serve]\n"
	tests := []struct {
		name, body, wantErr, wantListen string
	}{
		{name: "port only", body: "listen = \":3307\"\nuser = \"d\"\npassword_file = \"serve.pw\"\n", wantListen: "127.0.0.1:3307"},
		{name: "explicit address", body: "listen = \"0.0.0.0:3307\"\nuser = \"d\"\npassword_file = \"serve.pw\"\n", wantListen: "0.0.0.0:3307"},
		{name: "no port", body: "listen = \"3307\"\nuser = \"d\"\npassword = \"x\"\n", wantErr: `serve.listen = "3307": want host:port or :port`},
		{name: "host name", body: "listen = \"db.example:3307\"\nuser = \"d\"\npassword = \"x\"\n", wantErr: "the host must be an IP address"},
		{name: "no user", body: "listen = \":3307\"\npassword = \"x\"\n", wantErr: "serve.user is required"},
		{name: "no password", body: "listen = \":3307\"\nuser = \"d\"\n", wantErr: "serve.password or serve.password_file is required"},
		{name: "both passwords", body: "listen = \":3307\"\nuser = \"d\"\npassword = \"x\"\npassword_file = \"serve.pw\"\n", wantErr: "serve.password and serve.password_file are both set"},
		{name: "missing password file", body: "listen = \":3307\"\nuser = \"d\"\npassword_file = \"nope.pw\"\n", wantErr: "serve.password_file"},
		{name: "off", body: "", wantListen: ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
			if err := os.WriteFile(p, []byte(base+tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				assertNoSecret(t, "a config error", err.Error(), "down-secret-pw")
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Serve.Enabled(); got != (tt.wantListen != "") {
				t.Fatalf("enabled = %v", got)
			}
			if tt.wantListen != "" && cfg.ServeListen() != tt.wantListen {
				t.Fatalf("listen %q, want %q", cfg.ServeListen(), tt.wantListen)
			}
			if tt.wantListen != "" && cfg.servePassword != "down-secret-pw" && !strings.Contains(tt.body, "password = ") {
				t.Fatalf("password from the file: %q", cfg.servePassword)
			}
		})
	}
}

// TestServeSameServerIDEndsOlder: a second replica with a server_id that
// is already dumping ends the older connection, as MariaDB's master does;
// the registry never holds two dumps of one server_id.
func TestServeSameServerIDEndsOlder(t *testing.T) {
	se, _ := newServeEnv(t, false)
	r1 := se.newReplica("r1", 31, se.startGTID)
	se.loadN(100)
	se.waitReplicaEqual(r1, "replica r1")
	r2 := se.newReplica("r2", 31, se.startGTID)
	harness.WaitFor(t, "the agent to end the older dump of server_id 31", 30*time.Second, func() bool {
		return strings.Contains(se.agent.log.String(), "a second replica connected with the same server_id")
	})
	n := 0
	for _, r := range se.agent.a.liveReport().Serve.Replicas {
		if r.ServerID == 31 {
			n++
		}
	}
	if n > 1 {
		t.Fatalf("the registry holds %d dumps of server_id 31", n)
	}
	if err := r2.Exec(context.Background(), "STOP SLAVE"); err != nil {
		t.Fatal(err)
	}
	se.loadN(100)
	se.waitReplicaEqual(r1, "replica r1 once r2 stopped")
}

// TestServeNeverBeyondDurable: with the agent's fsync held back, a
// transaction's events are in the relay segment file but not durable; the
// downstream replica keeps getting heartbeats and not the transaction.
// Released, it gets it.
func TestServeNeverBeyondDurable(t *testing.T) {
	var held atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	hooks := ingest.Hooks{Sync: func(f *os.File) error {
		if held.Load() {
			<-release
		}
		return f.Sync()
	}}
	se, _ := newServeEnv(t, false, hooks)
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	ctx := context.Background()
	r := se.newReplica("r1", 31, se.startGTID)
	se.loadN(50)
	se.waitReplicaEqual(r, "replica r1")
	rows := tableDigest(t, r)
	durableGTID := se.masterGTID()

	held.Store(true)
	marker := "not-yet-durable-" + harness.RandHex(8)
	commit := make(chan error, 1)
	go func() { commit <- se.master.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (1, ?)", marker) }()
	relayDir := se.config().RelayDir()
	harness.Poll(t, "the transaction's bytes to reach the relay segment file", 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		segs, err := relay.ListSegments(relayDir)
		if err != nil || len(segs) == 0 {
			return false, err
		}
		data, err := os.ReadFile(segs[len(segs)-1].Path)
		return err == nil && strings.Contains(string(data), marker), nil
	})
	// The replica is caught up with what is durable: it gets heartbeats,
	// which go out only when there is nothing durable to send.
	hb := func() int64 {
		v, _ := r.Status(ctx, "Slave_received_heartbeats")
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	before := hb()
	harness.WaitFor(t, "two heartbeats while the fsync is held", 30*time.Second, func() bool { return hb() >= before+2 })
	// What the IO thread received, not only what the SQL thread applied.
	if st, err := slaveStatusOf(r); err != nil || st["Gtid_IO_Pos"] != durableGTID {
		t.Fatalf("the replica's IO thread received up to %q while the agent's durable end is %s (%v)", st["Gtid_IO_Pos"], durableGTID, err)
	}
	if got := tableDigest(t, r); got != rows {
		t.Fatalf("the replica got a transaction that is not durable on the agent: %s, was %s", got, rows)
	}
	if n, _ := r.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = ?", marker); n != "0" {
		t.Fatal("the replica has the row whose events are not durable on the agent")
	}
	held.Store(false)
	once.Do(func() { close(release) })
	if err := <-commit; err != nil {
		t.Fatal(err)
	}
	se.waitReplicaEqual(r, "replica r1 after the fsync was released")
}

// TestServeFromFilePosition: a replica with MASTER_USE_GTID=no replicates
// from a master file position through the agent, across a rotation.
func TestServeFromFilePosition(t *testing.T) {
	se, _ := newServeEnv(t, false)
	ctx := context.Background()
	r := se.newReplica("r1", 31, se.startGTID)
	file, pos, _ := strings.Cut(se.startPos, ":")
	for _, q := range []string{"STOP SLAVE", "RESET SLAVE ALL",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='downstream', MASTER_PASSWORD='%s', "+
			"MASTER_LOG_FILE='%s', MASTER_LOG_POS=%s, MASTER_USE_GTID=no, MASTER_CONNECT_RETRY=1", se.servePort, se.servePW, file, pos),
		"START SLAVE"} {
		if err := r.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	se.loadN(500)
	se.exec("FLUSH BINARY LOGS")
	se.loadN(500)
	se.waitReplicaEqual(r, "replica in file mode")
	st, err := slaveStatusOf(r)
	if err != nil {
		t.Fatal(err)
	}
	if end := se.masterPos(); st["Using_Gtid"] != "No" || st["Master_Log_File"] != end.File || st["Read_Master_Log_Pos"] != strconv.FormatUint(end.Pos, 10) {
		t.Fatalf("replica at %s:%s (Using_Gtid %s), master at %s", st["Master_Log_File"], st["Read_Master_Log_Pos"], st["Using_Gtid"], end)
	}
}

// TestServeMariadbBinlogReadsSameEvents: `mariadb-binlog
// --read-from-remote-server --to-last-log` reads the same events from the
// agent as from the master (the master's own events, by position: the
// artificial rotate and format description in front of each file aside).
func TestServeMariadbBinlogReadsSameEvents(t *testing.T) {
	se, _ := newServeEnv(t, false)
	se.loadN(300)
	se.exec("FLUSH BINARY LOGS")
	se.loadN(300)
	want := se.masterGTID()
	harness.WaitFor(t, "the agent to hold "+want, 30*time.Second, func() bool {
		return se.agent.a.recv.Durable().Pos.GTID.String() == want
	})
	file, pos, _ := strings.Cut(se.startPos, ":")
	read := func(port int, user, pw string) []string {
		cmd := exec.Command("mariadb-binlog", "--read-from-remote-server", "--host=127.0.0.1", "--port="+strconv.Itoa(port),
			"--user="+user, "--start-position="+pos, "--to-last-log", file)
		cmd.Env = append(os.Environ(), "MYSQL_PWD="+pw) // not in argv
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("mariadb-binlog from port %d: %v\n%s", port, err, ee.Stderr)
			}
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			// The master's events: server id 1, a position in its file.
			if strings.Contains(l, "server id 1 ") && !strings.Contains(l, "end_log_pos 0 ") && !strings.Contains(l, "Start: binlog") {
				lines = append(lines, l)
			}
		}
		return lines
	}
	fromMaster := read(se.master.Port(), "repl", se.password)
	fromAgent := read(se.servePort, "downstream", se.servePW)
	if len(fromMaster) < 600 {
		t.Fatalf("mariadb-binlog read only %d events from the master", len(fromMaster))
	}
	if strings.Join(fromMaster, "\n") != strings.Join(fromAgent, "\n") {
		n := min(len(fromMaster), len(fromAgent))
		for i := range n {
			if fromMaster[i] != fromAgent[i] {
				t.Fatalf("event %d differs:\nmaster: %s\nagent:  %s", i, fromMaster[i], fromAgent[i])
			}
		}
		t.Fatalf("master: %d events, agent: %d", len(fromMaster), len(fromAgent))
	}
}

// TestServeAgentKilled: the agent's process is killed (kill -9) three times
// while the master takes load and a downstream replica (gtid_strict_mode)
// replicates from it; the replica reconnects to each new agent and ends
// with the master's rows and GTIDs: nothing doubled, nothing skipped.
func TestServeAgentKilled(t *testing.T) {
	se, _ := serveConfig(t, false)
	ctx := context.Background()
	p := se.startProcess()
	se.waitSemiSyncClient()
	r := se.newReplica("r1", 31, se.startGTID)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	go func() { _, err := se.load(loadCtx, 8, 1_000_000); loadDone <- err }()
	rows := func() int {
		n, _ := r.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
		c, _ := strconv.Atoi(n)
		return c
	}
	dumps := func() int { return strings.Count(readFile(t, p.LogPath), "replica asks for a dump") }
	for i := range 3 {
		at := rows()
		harness.WaitFor(t, fmt.Sprintf("agent process %d to serve the replica and the replica to apply more rows", i+1), 60*time.Second,
			func() bool { return dumps() >= i+1 && rows() > at+200 })
		p.kill()
		p.start()
	}
	harness.WaitFor(t, "the last agent process to serve the replica", 60*time.Second, func() bool { return dumps() >= 4 })
	at := rows()
	harness.WaitFor(t, "the replica to apply more rows from the last agent", 60*time.Second, func() bool { return rows() > at+200 })
	stopLoad()
	if err := <-loadDone; err != nil {
		t.Fatal(err)
	}
	se.waitReplicaEqual(r, "the replica after three kills of the agent")
}

// TestServeSemiSyncReplica: a stock MariaDB replica with
// rpl_semi_sync_slave_enabled=ON replicates from the agent in semi-sync
// (Rpl_semi_sync_slave_status ON on the replica) through load and a master
// rotation, ends with the master's rows, and its ACKs are counted in status
// and metrics. (Before, it stopped on the first event with error 1593,
// "Missing magic number for semi-sync packet".)
func TestServeSemiSyncReplica(t *testing.T) {
	se, _ := newServeEnv(t, false)
	ctx := context.Background()
	r := se.newReplica("r1", 31, se.startGTID, "rpl_semi_sync_slave_enabled=ON")
	se.loadN(800)
	se.exec("FLUSH BINARY LOGS")
	se.loadN(400)
	se.waitReplicaEqual(r, "the semi-sync replica")
	if v, err := r.Status(ctx, "Rpl_semi_sync_slave_status"); err != nil || v != "ON" {
		t.Fatalf("the replica's Rpl_semi_sync_slave_status is %q (%v): it fell back to async", v, err)
	}
	var acks uint64
	harness.WaitFor(t, "status to count an ACK for each of the 1200 transactions", 30*time.Second, func() bool {
		rep := se.agent.a.liveReport()
		if rep.Serve == nil || len(rep.Serve.Replicas) != 1 || !rep.Serve.Replicas[0].SemiSync {
			return false
		}
		acks = rep.Serve.Replicas[0].Acks
		return acks >= 1200 && rep.Serve.Acks == acks && rep.Serve.Replicas[0].AckedFile != ""
	})
	fams := scrape(t, se.config().Status.Listen)
	if m := fams["hotstandby_serve_acks_total"]; m == nil || m.Metric[0].GetCounter().GetValue() < 1200 {
		t.Fatalf("hotstandby_serve_acks_total: %v, want >= 1200", m)
	}
	var txt strings.Builder
	se.agent.a.liveReport().WriteText(&txt, status.TextOptions{})
	if !strings.Contains(txt.String(), "semi-sync, ") {
		t.Fatalf("status text does not say the replica is semi-sync:\n%s", txt.String())
	}
}

// TestReplicaModeStandbySemiSyncSlave: the seeds' DB2 was the master's
// semi-sync replica and keeps rpl_semi_sync_slave_enabled=ON in its option
// file. In replica mode (the default) the agent makes it replicate from its
// private binlog server: it must apply, in semi-sync with the agent, not
// loop on "standby IO thread stopped: error 1593".
func TestReplicaModeStandbySemiSyncSlave(t *testing.T) {
	e := newEnv(t)
	first := e.withStandbyMode(ModeReplica)
	ctx := context.Background()
	// The same server (datadir, port, account) with the line in its
	// option file.
	if err := first.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	standby, err := sandbox.Start(ctx, sandbox.Config{Dir: first.Dir(), Port: first.Port(), ServerID: 2, Log: t.Logf,
		Extra: []string{"rpl_semi_sync_slave_enabled=ON"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop(context.Background()) })
	if v, err := standby.QueryString(ctx, "SELECT @@GLOBAL.rpl_semi_sync_slave_enabled"); err != nil || v != "1" {
		t.Fatalf("the standby's rpl_semi_sync_slave_enabled is %q (%v)", v, err)
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	if _, err := e.load(ctx, 8, 1000); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 120*time.Second)
	assertSameRows(t, e.master, standby, 1000)
	if v, err := standby.Status(ctx, "Rpl_semi_sync_slave_status"); err != nil || v != "ON" {
		t.Fatalf("the standby's Rpl_semi_sync_slave_status is %q (%v)", v, err)
	}
	if log := p.log.String(); strings.Contains(log, "error 1593") || strings.Contains(log, "Missing magic number") { // not a bare "1593": temp dir names hold digits
		t.Fatalf("the agent logged error 1593:\n%s", log)
	}
}
