package agent

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/checkpoint"
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
# The test's master has no certificate, and its address is not loopback
# (where TLS would default to required): the network is the test's own
# namespaces. TLS is tested in tls_test.go.
tls = "off"

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

// keepalivedConf renders one node's keepalived configuration: one VRRP
// instance with the VIP, unicast adverts to the peer (no multicast), both
// nodes state BACKUP with nopreempt so that the VIP never moves back by
// itself. With track non-empty the instance tracks the agent's role with a
// vrrp_script and no weight: while the script fails the instance is in
// FAULT, never MASTER, whatever the other node does, so the VIP can come to
// this node only after the agent recorded its promotion. (A positive weight
// would only raise this node's priority: with the other node dead, a
// BACKUP takes the VIP after 3 x advert_int whatever its priority, before
// any promotion.)
//
// Nothing rides on keepalived's notify scripts: they may run out of order
// (keepalived#1884) and run on keepalived's view, which lost adverts can
// make wrong on both nodes at once (keepalived#2370); the promotion is the
// agent's decision, made with its proof, and the VIP follows it.
func keepalivedConf(router string, self, peer *harness.Host, vip string, priority int, track string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global_defs {
    router_id %s
    script_user root
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 6
    vrrp_garp_interval 0.25
}
`, router)
	if track != "" {
		// keepalived runs scripts at most once a second (interval is an
		// integer): up to 1 s between the promotion and the VIP's move.
		fmt.Fprintf(&b, `vrrp_script chk_promoted {
    script "%s"
    interval 1
    timeout 2
    fall 1
    rise 1
}
`, track)
	}
	fmt.Fprintf(&b, `vrrp_instance hotstandby {
    state BACKUP
    nopreempt
    interface eth0
    virtual_router_id 51
    version 3
    advert_int 0.2
    priority %d
    unicast_src_ip %s
    unicast_peer {
        %s
    }
    virtual_ipaddress {
        %s/24 dev eth0
    }
`, priority, self.Addr, peer.Addr, vip)
	if track != "" {
		b.WriteString("    track_script {\n        chk_promoted\n    }\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// startKeepalived runs keepalived inside h in the foreground (-n), VRRP only
// (-P), logging to the console (-l -D), with its configuration and pid files
// in the test's directory, so that it collides with no other instance.
func (e *nsEnv) startKeepalived(h, peer *harness.Host, priority int, track string) *harness.Process {
	e.t.Helper()
	base := filepath.Join(e.dir, "keepalived-"+filepath.Base(h.Name))
	writeFile(e.t, base+".conf", keepalivedConf("hs_"+filepath.Base(h.Name), h, peer, e.vip, priority, track))
	p := h.Start(e.t, "keepalived", []string{"-n", "-l", "-D", "-P", "-f", base + ".conf", "-p", base + ".pid", "-r", base + ".vrrp.pid"},
		base+".log", nil, nil)
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("keepalived in %s (tail):\n%s", h.Name, p.LogTail(40))
		}
	})
	return p
}

// vipSample is one observation of who holds the VIP and who is writable.
type vipSample struct {
	at         time.Time // when the VIP was looked at (after the role)
	role       string    // the agent's role, read first
	vipA, vipB bool
	bErr       bool   // looking at b failed: vipB tells nothing
	roA, roB   string // @@read_only of master and standby; "down" if it does not answer
}

// failoverRun is what one kill measured.
type failoverRun struct {
	toPromotion time.Duration // kill → the promotion recorded by the agent
	toWrite     time.Duration // kill → first write OK on the new master (its own address)
	toVIP       time.Duration // kill → VIP seen on the standby's host
	toFirstOK   time.Duration // kill → first commit OK through the VIP
	outage      time.Duration // last commit OK through the VIP before the kill → first after
	lagTxns     int64         // applier lag (transactions) at the kill
	oks         int
}

// vipClients writes through the VIP from host c with n clients: each
// commit gets a fresh id, and every id whose COMMIT returned OK is recorded
// with the time it returned. A commit that fails has an unknown outcome and
// is not recorded; the client tries the next id.
type vipClients struct {
	mu   sync.Mutex
	ok   []int64     // ids whose COMMIT returned OK
	at   []time.Time // when each returned
	wg   sync.WaitGroup
	stop context.CancelFunc
}

func (e *nsEnv) startVIPClients(c *harness.Host, n int) *vipClients {
	db := e.appDB(c, e.vip, n)
	ctx, stop := context.WithCancel(context.Background())
	v := &vipClients{stop: stop}
	var next atomic.Int64
	next.Store(1_000_000)
	for range n {
		v.wg.Add(1)
		go func() {
			defer v.wg.Done()
			for ctx.Err() == nil {
				id := next.Add(1)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := db.ExecContext(cctx, "INSERT INTO t (id, c, payload) VALUES (?, 1, 'through the VIP')", id)
				cancel()
				if err != nil {
					// Pace the retries of a client whose server is gone
					// (refused at once): a client's behaviour, not a wait.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				now := time.Now()
				v.mu.Lock()
				v.ok, v.at = append(v.ok, id), append(v.at, now)
				v.mu.Unlock()
			}
		}()
	}
	return v
}

// count returns how many commits returned OK, and how many of them after t.
func (v *vipClients) count(t time.Time) (all, after int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, at := range v.at {
		if at.After(t) {
			after++
		}
	}
	return len(v.at), after
}

// finish stops the clients and returns the OK'd ids with their times.
func (v *vipClients) finish() ([]int64, []time.Time) {
	v.stop()
	v.wg.Wait()
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ok, v.at
}

// failoverKills is how many kills TestKeepalivedFailover makes:
// HOTSTANDBY_FAILOVER_KILLS (make bench-failover: 30, make soak-failover:
// 100), 1 in make test.
func failoverKills(t *testing.T) int {
	s := os.Getenv("HOTSTANDBY_FAILOVER_KILLS")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("HOTSTANDBY_FAILOVER_KILLS=%q: want a positive number of kills", s)
	}
	return n
}

// TestKeepalivedFailover is the seeds' own setup end to end: the master
// alone in host a, the standby and the agent in host b, keepalived on both
// with a VIP (b's tracking the agent's role), and 16 clients in host c
// writing through the VIP. Everything in a is killed with kill -9 (mariadbd
// and keepalived). The VIP moves to b only after the agent recorded the
// promotion; every commit a client saw succeed is on the promoted standby;
// the clients' writes through the VIP succeed again; and at no sample do
// two writable servers hold the VIP. It logs the client-observed outage.
func TestKeepalivedFailover(t *testing.T) {
	harness.NeedNetns(t, "keepalived")
	needServers(t)
	kills := failoverKills(t)
	runs := make([]failoverRun, 0, kills)
	for i := range kills {
		t.Run(fmt.Sprintf("kill %d", i+1), func(t *testing.T) {
			runs = append(runs, keepalivedKill(t, 300+37*(i%10)))
		})
	}
	if len(runs) == kills && kills > 1 {
		logFailoverRuns(t, runs)
	}
}

func keepalivedKill(t *testing.T, commitsBefore int) failoverRun {
	e := newNsEnv(t, `mode = "auto"`)
	c := e.net.AddHost("c")
	track := fmt.Sprintf("%s status --is-master --config %s", hsBinary, e.cfgPath)
	// b's keepalived starts once a holds the VIP: both are BACKUP with
	// nopreempt, so whichever comes up first keeps it (b could not take it
	// anyway: it stays in FAULT until the promotion).
	kaA := e.startKeepalived(e.a, e.b, 100, "")
	harness.WaitFor(t, "the VIP on a", 60*time.Second, func() bool { on, _ := e.a.HasAddr(e.vip); return on })
	kaB := e.startKeepalived(e.b, e.a, 50, track)
	viaVIP := e.appDB(c, e.vip, 1)
	harness.WaitFor(t, "the VIP on the master's host, answering for the master", 60*time.Second, func() bool {
		var id string
		return viaVIP.QueryRow("SELECT @@server_id").Scan(&id) == nil && id == "1"
	})
	harness.WaitFor(t, "b's keepalived to find the agent not promoted (FAULT)", 30*time.Second, func() bool {
		return strings.Contains(kaB.Log(), "VRRP_Script(chk_promoted) failed")
	})
	if on, err := e.b.HasAddr(e.vip); err != nil || on {
		t.Fatalf("VIP on the standby's host before any failover (%v)", err)
	}

	// Sample the VIP's holders, the role and who is writable until the end.
	var samples []vipSample
	sampling, stopSampling := context.WithCancel(context.Background())
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			var s vipSample
			if r, err := e.report(); err == nil {
				s.role = r.Role
			}
			s.roA, s.roB = readOnly(e.master), readOnly(e.standby)
			s.at = time.Now()
			s.vipA, _ = e.a.HasAddr(e.vip)
			var err error
			if s.vipB, err = e.b.HasAddr(e.vip); err != nil {
				s.bErr = true
			}
			samples = append(samples, s)
		}
	}()
	defer func() { stopSampling(); <-sampled }()

	clients := e.startVIPClients(c, 16)
	defer clients.finish()
	harness.WaitFor(t, "the clients to commit through the VIP", 60*time.Second, func() bool {
		n, _ := clients.count(time.Time{})
		return n >= commitsBefore
	})
	before := e.mustReport()
	var lag int64
	if before.Lag.AppliedTransactions != nil {
		lag = *before.Lag.AppliedTransactions
	}

	// Kill everything in a: mariadbd, keepalived and its VRRP child. The
	// clock starts once mariadbd is gone (reaped).
	must(t, e.a.KillAll())
	must(t, e.master.Kill())
	killedAt := time.Now()
	if err := kaA.Wait(30 * time.Second); err == nil {
		t.Fatal("a's keepalived exited cleanly after kill -9")
	}
	var run failoverRun
	run.lagTxns = lag
	firstWrite := make(chan time.Duration, 1)
	direct := e.appDB(e.b, e.b.Addr, 1)
	go func() {
		// The new master's first write, straight to its address as the
		// application's user (root would bypass read_only): refused while
		// it is read-only, OK from the moment it is writable.
		for {
			if _, err := direct.Exec("REPLACE INTO test.nudge VALUES (2, NOW(6))"); err == nil {
				firstWrite <- time.Since(killedAt)
				return
			}
			if time.Since(killedAt) > 2*time.Minute {
				firstWrite <- -1
				return
			}
			time.Sleep(2 * time.Millisecond) // a client retrying, not a wait
		}
	}()
	var seen string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("after the kill: %s", seen)
		}
	})
	harness.WaitFor(t, "the promotion, the VIP on b and 100 commits through it", 120*time.Second, func() bool {
		r, err := e.report()
		on, _ := e.b.HasAddr(e.vip)
		_, after := clients.count(killedAt)
		seen = fmt.Sprintf("role %q (status error %v), VIP on b %v, %d commits OK'd through the VIP", r.Role, err, on, after)
		return err == nil && r.Role == checkpoint.RoleMaster && on && after >= 100
	})
	ok, okAt := clients.finish()
	stopSampling()
	<-sampled
	run.toWrite = <-firstWrite

	r := e.mustReport()
	if r.Failover == nil || r.Failover.Promotion == nil || r.Failover.Promotion.UpdatedAt == nil {
		t.Fatalf("role %s without a recorded promotion: %+v", r.Role, r.Failover)
	}
	promotedAt := *r.Failover.Promotion.UpdatedAt
	run.toPromotion = promotedAt.Sub(killedAt)

	// The VIP came to b only after the promotion was recorded.
	var vipAt time.Time
	for _, s := range samples {
		if s.vipB && vipAt.IsZero() {
			vipAt = s.at
		}
		if s.vipB && s.role != checkpoint.RoleMaster && s.at.Before(promotedAt) {
			t.Fatalf("at %s the VIP was on the standby's host while the agent's role was %q (promotion recorded at %s)",
				s.at.Format(time.RFC3339Nano), s.role, promotedAt.Format(time.RFC3339Nano))
		}
		writers := 0
		if s.vipA && s.roA == "0" {
			writers++
		}
		if s.vipB && s.roB == "0" {
			writers++
		}
		if writers > 1 {
			t.Fatalf("at %s two writable servers held the VIP: %+v", s.at.Format(time.RFC3339Nano), s)
		}
	}
	if vipAt.IsZero() || vipAt.Before(promotedAt) {
		t.Fatalf("VIP first seen on b at %v, promotion recorded at %s: the VIP must follow the promotion", vipAt, promotedAt)
	}
	// The proof of the order: a sample begun after the promotion was
	// recorded still found the VIP absent from b, so it arrived later.
	absentAfter := false
	for _, s := range samples {
		if s.at.After(promotedAt) && !s.vipB && !s.bErr && s.at.Before(vipAt) {
			absentAfter = true
			break
		}
	}
	if !absentAfter {
		t.Fatalf("no sample between the promotion (%s) and the VIP first seen on b (%s) found b without the VIP: the order is not shown",
			promotedAt.Format(time.RFC3339Nano), vipAt.Format(time.RFC3339Nano))
	}
	run.toVIP = vipAt.Sub(killedAt)

	// Every commit a client saw succeed is on the promoted standby.
	if missing := missingIDs(t, e.standby, ok); len(missing) > 0 {
		t.Fatalf("%d of %d commits OK'd through the VIP are not on the promoted standby, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
	}
	run.oks = len(ok)
	// The outage: from the last commit OK'd before the kill to the first
	// one OK'd by the new master, that is after the promotion started (a
	// reply already on its way from the old master may land a moment after
	// the kill; nothing but the new master answers after the promotion
	// began).
	if r.Failover.Promotion.StartedAt == nil {
		t.Fatalf("promotion without a start time: %+v", r.Failover.Promotion)
	}
	started := *r.Failover.Promotion.StartedAt
	var lastBefore, firstAfter time.Time
	for _, at := range okAt {
		if !at.After(killedAt) && at.After(lastBefore) {
			lastBefore = at
		}
		if at.After(started) && (firstAfter.IsZero() || at.Before(firstAfter)) {
			firstAfter = at
		}
	}
	run.outage, run.toFirstOK = firstAfter.Sub(lastBefore), firstAfter.Sub(killedAt)
	// The VIP now reaches the new master (a new connection: the pool's
	// idle one went to the old master).
	var id string
	if err := e.appDB(c, e.vip, 1).QueryRow("SELECT @@server_id").Scan(&id); err != nil || id != "2" {
		t.Fatalf("through the VIP after the failover: server_id %q, %v; want the promoted standby (2)", id, err)
	}
	if !strings.Contains(kaB.Log(), "VRRP_Script(chk_promoted) succeeded") {
		t.Fatalf("b's keepalived never saw the promotion:\n%s", kaB.LogTail(20))
	}
	t.Logf("%d commits OK'd through the VIP, all on the promoted standby; applier lag at the kill %d txns; kill → promotion %s, → first write on the new master %s, → VIP on b %s, → first commit OK through the VIP %s; client-observed write outage through the VIP %s",
		len(ok), lag, ms(run.toPromotion), ms(run.toWrite), ms(run.toVIP), ms(run.toFirstOK), ms(run.outage))
	return run
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// logFailoverRuns prints the distribution of the runs' times, the loss (0:
// each run failed otherwise) and, measured in the same run, keepalived's
// own VIP move without the agent, with the ratio.
func logFailoverRuns(t *testing.T, runs []failoverRun) {
	pick := func(f func(failoverRun) time.Duration) []time.Duration {
		var ds []time.Duration
		for _, r := range runs {
			ds = append(ds, f(r))
		}
		slices.Sort(ds)
		return ds
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d kills under 16 clients writing through the VIP; OK'd transactions lost: 0\n", len(runs))
	fmt.Fprintf(&b, "%-46s %9s %9s %9s\n", "", "p50", "p99", "max")
	line := func(name string, ds []time.Duration) {
		fmt.Fprintf(&b, "%-46s %9s %9s %9s\n", name, ms(pct(ds, 50)), ms(pct(ds, 99)), ms(ds[len(ds)-1]))
	}
	promo := pick(func(r failoverRun) time.Duration { return r.toPromotion })
	write := pick(func(r failoverRun) time.Duration { return r.toWrite })
	vip := pick(func(r failoverRun) time.Duration { return r.toVIP })
	firstOK := pick(func(r failoverRun) time.Duration { return r.toFirstOK })
	outage := pick(func(r failoverRun) time.Duration { return r.outage })
	line("kill → promotion recorded", promo)
	line("kill → first write on the new master", write)
	line("kill → VIP on the standby's host", vip)
	line("kill → first commit OK through the VIP", firstOK)
	line("client-observed write outage through the VIP", outage)
	b.WriteString("per kill (applier lag at the kill, kill → first write, outage through the VIP):\n")
	for i, r := range runs {
		fmt.Fprintf(&b, "  kill %3d: lag %4d txns, first write %8s, outage %8s, %6d commits OK'd\n", i+1, r.lagTxns, ms(r.toWrite), ms(r.outage), r.oks)
	}
	alone := make([]time.Duration, 0, 5)
	for i := range cap(alone) {
		t.Run(fmt.Sprintf("keepalived alone %d", i+1), func(t *testing.T) { alone = append(alone, keepalivedAloneMove(t)) })
	}
	if len(alone) == cap(alone) {
		slices.Sort(alone)
		line("keepalived alone (no agent): kill → VIP answers", alone)
		fmt.Fprintf(&b, "ratio of the p50s, outage through the VIP with the agent / keepalived alone: %.2f (keepalived alone moves the VIP to a read-only standby, with no data guarantee)\n",
			float64(pct(outage, 50))/float64(pct(alone, 50)))
	}
	t.Log("\n" + b.String())
}

// pct returns the p-th percentile of sorted ds (nearest rank).
func pct(ds []time.Duration, p int) time.Duration {
	i := (p*len(ds) + 99) / 100
	return ds[max(0, min(len(ds)-1, i-1))]
}

// keepalivedAloneMove measures keepalived's own VIP move, the comparison:
// the same two keepalived nodes and VRRP settings, no agent and no track
// script; everything in a killed; the time until the VIP answers from c for
// b's server.
func keepalivedAloneMove(t *testing.T) time.Duration {
	needServers(t)
	n := harness.NewNet(t)
	e := &nsEnv{t: t, dir: t.TempDir(), net: n, password: "pw-" + harness.RandHex(12)}
	e.a, e.b = n.AddHost("a"), n.AddHost("b")
	c := n.AddHost("c")
	e.vip = n.Addr(100)
	var servers [2]*sandbox.Server
	for i, h := range []*harness.Host{e.a, e.b} {
		h.Run("sysctl", "-q", "-w", "net.ipv4.ip_nonlocal_bind=1")
		s, err := sandbox.Start(context.Background(), sandbox.Config{Dir: filepath.Join(e.dir, h.Name), ServerID: uint32(i + 1), Port: nsPort,
			BindAddress: "127.0.0.1," + h.Addr + "," + e.vip, Wrapper: h.Wrapper(), Log: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Kill() })
		app := fmt.Sprintf("'app'@'%s%%'", strings.TrimSuffix(n.Addr(0), "0"))
		e.execOn(s, "CREATE DATABASE test", "CREATE USER "+app+" IDENTIFIED BY '"+e.password+"'", "GRANT ALL ON test.* TO "+app)
		servers[i] = s
	}
	// b's keepalived starts once a holds the VIP: both are BACKUP with
	// nopreempt, so whichever comes up first keeps it.
	kaA := e.startKeepalived(e.a, e.b, 100, "")
	harness.WaitFor(t, "the VIP on a", 60*time.Second, func() bool { on, _ := e.a.HasAddr(e.vip); return on })
	e.startKeepalived(e.b, e.a, 50, "")
	db := e.appDB(c, e.vip, 1)
	serverID := func() string {
		var id string
		db.QueryRow("SELECT @@server_id").Scan(&id)
		return id
	}
	harness.WaitFor(t, "the VIP on a", 60*time.Second, func() bool { return serverID() == "1" })
	killedAt := time.Now()
	must(t, e.a.KillAll())
	must(t, servers[0].Kill())
	kaA.Wait(30 * time.Second)
	harness.Poll(t, "the VIP to answer on b", 60*time.Second, 5*time.Millisecond, func() (bool, error) { return serverID() == "2", nil })
	took := time.Since(killedAt)
	t.Logf("keepalived alone: kill → VIP answers on b %s", ms(took))
	return took
}
