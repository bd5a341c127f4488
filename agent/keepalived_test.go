package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// nsPort is the port of both servers: each lives in a network namespace of
// its own, so they do not collide with each other or with anything else.
const nsPort = 3306

// nsStatusListen is the agent's status listener, on the loopback of the
// standby's namespace.
const nsStatusListen = "127.0.0.1:8910"

// nsEnv is the seeds' own two-host setup in network namespaces of one
// private network: the master alone in host a, the standby and the agent
// process in host b. vip is an address of the network that no host holds
// until a test gives it to one; both servers also listen on it (with
// ip_nonlocal_bind in their namespaces), so that whichever host holds the
// VIP answers on it. The test's own connections to the servers use their
// unix sockets, which do not depend on the namespace.
type nsEnv struct {
	t        *testing.T
	dir      string
	net      *harness.Net
	a, b     *harness.Host
	vip      string
	master   *sandbox.Server
	standby  *sandbox.Server
	password string
	cfgPath  string
	agent    *harness.Process
	http     *http.Client // dials from inside b
}

// newNsEnv starts both servers, the tables, the users, and the agent in b
// with the given [failover] keys; it returns once the master counts the
// agent as its semi-sync replica and a promotion is proven lossless.
func newNsEnv(t *testing.T, failoverTOML string) *nsEnv {
	t.Helper()
	return newNsEnvWith(t, func(*nsEnv) string { return failoverTOML })
}

// newNsEnvWith is newNsEnv with [failover] keys that depend on the servers
// (their paths), rendered once both run.
func newNsEnvWith(t *testing.T, failoverTOML func(*nsEnv) string) *nsEnv {
	t.Helper()
	needServers(t)
	n := harness.NewNet(t)
	e := &nsEnv{t: t, dir: t.TempDir(), net: n, password: "pw-" + harness.RandHex(12)}
	e.a, e.b = n.AddHost("a"), n.AddHost("b")
	e.vip = n.Addr(100)
	for _, h := range []*harness.Host{e.a, e.b} {
		h.Run("sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1")
	}
	e.http = &http.Client{Transport: &http.Transport{DialContext: e.b.DialContext, DisableKeepAlives: true}, Timeout: 2 * time.Second}
	ctx := context.Background()
	var err error
	e.master, err = sandbox.Start(ctx, sandbox.Config{
		Dir: filepath.Join(e.dir, "m"), ServerID: 1, Master: true, Port: nsPort, Log: t.Logf,
		BindAddress: "127.0.0.1," + e.a.Addr + "," + e.vip, Wrapper: e.a.Wrapper(),
		Extra: []string{"rpl_semi_sync_master_timeout=100"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.master.Kill() })
	e.standby, err = sandbox.Start(ctx, sandbox.Config{
		Dir: filepath.Join(e.dir, "s"), ServerID: 2, Port: nsPort, Log: t.Logf,
		BindAddress: "127.0.0.1," + e.b.Addr + "," + e.vip, Wrapper: e.b.Wrapper(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.standby.Stop(context.Background()) })
	// The agent's user comes from b's address; the application's from
	// anywhere on the private network (the client host, through the VIP).
	// Both servers get them with sql_log_bin=0: nothing replays them.
	subnet := strings.TrimSuffix(n.Addr(0), "0") + "%"
	e.execOn(e.master, "SET SESSION sql_log_bin=0",
		fmt.Sprintf("CREATE USER 'repl'@'%s' IDENTIFIED BY '%s'", e.b.Addr, e.password),
		fmt.Sprintf("GRANT REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN ON *.* TO 'repl'@'%s'", e.b.Addr),
		"SET SESSION sql_log_bin=1") // the connection goes back to the pool
	for _, s := range []*sandbox.Server{e.master, e.standby} {
		e.execOn(s, "SET SESSION sql_log_bin=0",
			fmt.Sprintf("CREATE USER 'app'@'%s' IDENTIFIED BY '%s'", subnet, e.password),
			fmt.Sprintf("GRANT ALL ON test.* TO 'app'@'%s'", subnet),
			"SET SESSION sql_log_bin=1")
	}
	if err := e.standby.CreateUser(ctx, "applier", e.password, "ALL PRIVILEGES"); err != nil {
		t.Fatal(err)
	}
	e.execOn(e.master, "CREATE DATABASE test",
		"CREATE TABLE test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, payload VARCHAR(200)) ENGINE=InnoDB",
		"CREATE TABLE test.nudge (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB",
		"SET GLOBAL rpl_semi_sync_master_timeout=10000")
	e.writeConfig(failoverTOML(e))
	e.agent = e.b.Start(t, hsBinary, []string{"run", "--config", e.cfgPath}, filepath.Join(e.dir, "agent.log"), nil,
		func(line string) { t.Logf("agent: %s\n%s", line, e.master.Diagnose(context.Background())) })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log (tail):\n%s", e.agent.LogTail(200))
		}
	})
	e.waitSemiSync()
	harness.WaitFor(t, "a promotion to be proven lossless", 60*time.Second, func() bool {
		r, err := e.report()
		return err == nil && r.Failover != nil && r.Failover.LosslessNow
	})
	return e
}

// execOn runs statements on one connection of s, in order.
func (e *nsEnv) execOn(s *sandbox.Server, stmts ...string) {
	e.t.Helper()
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			e.t.Fatalf("%s: %s: %v", s.Dir(), q, err)
		}
	}
}

func (e *nsEnv) writeConfig(failoverTOML string) {
	e.t.Helper()
	pwFile := filepath.Join(e.dir, "pw")
	writeFile(e.t, pwFile, e.password+"\n")
	cfg := fmt.Sprintf(`data_dir = %q
server_id = 9001
start = "file:mysql-bin.000001:4"

[master]
host = %q
port = %d
user = "repl"
password_file = %q
heartbeat = "250ms"
read_timeout = "2s"

[semisync]
enabled = true

[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q

[status]
listen = %q

[reconnect]
initial = "50ms"
max = "500ms"

[failover]
%s
`, filepath.Join(e.dir, "agent"), e.a.Addr, nsPort, pwFile, nsPort, pwFile, nsStatusListen, failoverTOML)
	e.cfgPath = filepath.Join(e.dir, "hotstandby.toml")
	writeFile(e.t, e.cfgPath, cfg)
}

// report fetches the agent's status from inside b.
func (e *nsEnv) report() (status.Report, error) {
	resp, err := e.http.Get("http://" + nsStatusListen + "/status")
	if err != nil {
		return status.Report{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return status.Report{}, fmt.Errorf("status endpoint: %s", resp.Status)
	}
	var r status.Report
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// mustReport is report that fails the test on error.
func (e *nsEnv) mustReport() status.Report {
	e.t.Helper()
	r, err := e.report()
	if err != nil {
		e.t.Fatalf("the agent's status: %v", err)
	}
	return r
}

// waitSemiSync waits until the master counts the agent as a semi-sync
// replica and is in semi-sync mode (nudging it with commits meanwhile).
func (e *nsEnv) waitSemiSync() {
	e.t.Helper()
	ctx := context.Background()
	harness.WaitFor(e.t, "the master to see a semi-sync replica and be in semi-sync mode", 60*time.Second, func() bool {
		n, _ := harness.StatusInt(e.master, "Rpl_semi_sync_master_clients")
		if v, _ := e.master.Status(ctx, "Rpl_semi_sync_master_status"); n >= 1 && v == "ON" {
			return true
		}
		if n >= 1 {
			e.execOn(e.master, "REPLACE INTO test.nudge VALUES (1, NOW(6))")
		}
		return false
	})
}

// appDB opens a pool of the application's user at addr:nsPort, dialing from
// inside host h.
func (e *nsEnv) appDB(h *harness.Host, addr string, conns int) *sql.DB {
	e.t.Helper()
	mc := mysql.NewConfig()
	mc.User, mc.Passwd = "app", e.password
	mc.Net, mc.Addr, mc.DBName = "tcp", fmt.Sprintf("%s:%d", addr, nsPort), "test"
	mc.DialFunc = h.DialContext
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = 2*time.Second, 5*time.Second, 5*time.Second
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		e.t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	e.t.Cleanup(func() { db.Close() })
	return db
}

// readOnly returns @@read_only of s over its socket; a server that does not
// answer is reported as "down".
func readOnly(s *sandbox.Server) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if !s.Running() {
		return "down"
	}
	v, err := s.QueryString(ctx, "SELECT @@read_only")
	if err != nil {
		return "down"
	}
	return v
}
