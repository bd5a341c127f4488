package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// Setup names of TestBenchSemiSync, in the order they run.
const (
	setupOff        = "master alone, semi-sync OFF"
	setupAgent      = "hotstandby (fsync, then ACK)"
	setupNative     = "native IO thread, sync_relay_log=10000"
	setupNativeSync = "native IO thread, sync_relay_log=1"
	setupAgentAC    = "hotstandby, master AFTER_COMMIT"
)

// commitRuns is what one setup measured at one thread count.
type commitRuns struct {
	setup   string
	threads int
	rates   []float64       // commits/s of each run
	lats    []time.Duration // every commit's latency, all runs
	noTx    int64           // Rpl_semi_sync_master_no_tx moved by this much
	yesTx   int64           // Rpl_semi_sync_master_yes_tx moved by this much
	commits int64
}

// semiEnv is the master, its load pool and the native replica.
type semiEnv struct {
	master, replica *sandbox.Server
	password        string
	db              *sql.DB // root pool on the master, database bench
	runs            int
	commits16       int
	tls             *benchTLS
}

// semiSetup is one way of running the master: connect makes the setup's
// replica the master's only semi-sync replica (or turns semi-sync off),
// disconnect undoes it.
type semiSetup struct {
	name       string
	semisync   bool
	connect    func(*testing.T)
	disconnect func(*testing.T)
}

func TestBenchSemiSync(t *testing.T) {
	requireBench(t)
	e := &semiEnv{
		password:  "pw-" + harness.RandHex(12),
		runs:      envInt(t, "HOTSTANDBY_BENCH_RUNS", 3),
		commits16: envInt(t, "HOTSTANDBY_BENCH_COMMITS", 20000),
	}
	bin := buildAgent(t)
	base := t.TempDir()
	e.tls = newBenchTLS(t, base)
	e.master = startServerTLS(t, base, "master", 1, true, e.tls.server(),
		"rpl_semi_sync_master_wait_point=AFTER_SYNC", "rpl_semi_sync_master_timeout=10000")
	e.replica = startServer(t, base, "replica", 2, false, "rpl_semi_sync_slave_enabled=ON")
	if err := e.master.CreateUser(context.Background(), replUser, e.password, replPrivs); err != nil {
		t.Fatal(err)
	}
	// No semi-sync replica yet: without this the DDL would wait 10 s.
	mustExec(t, e.master, "SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	mustExec(t, e.master, "CREATE DATABASE bench")
	mustExec(t, e.master, `CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT NOT NULL,
		payload VARCHAR(100) NOT NULL) ENGINE=InnoDB`)
	db, err := sql.Open("mysql", e.master.RootDSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	e.db = db

	agent := &agentSetup{e: e, bin: bin, base: base}
	setups := []semiSetup{
		{setupOff, false,
			func(t *testing.T) { mustExec(t, e.master, "SET GLOBAL rpl_semi_sync_master_enabled=OFF") },
			func(*testing.T) {}},
		{setupAgent, true, agent.connect, agent.disconnect},
		{setupNative, true, func(t *testing.T) { e.startNative(t, 10000) }, e.stopNative},
		{setupNativeSync, true, func(t *testing.T) { e.startNative(t, 1) }, e.stopNative},
	}
	if os.Getenv("HOTSTANDBY_BENCH_WAITPOINT") == "1" {
		// The same agent with the master waiting after its engine commit
		// (what some tools advise): what AFTER_SYNC costs in commits/s.
		setups = append(setups, semiSetup{setupAgentAC, true,
			func(t *testing.T) {
				mustExec(t, e.master, "SET GLOBAL rpl_semi_sync_master_wait_point=AFTER_COMMIT")
				agent.connect(t)
			},
			func(t *testing.T) {
				agent.disconnect(t)
				mustExec(t, e.master, "SET GLOBAL rpl_semi_sync_master_wait_point=AFTER_SYNC")
			}})
	}
	before := machineLoad(base)
	results := map[string]*commitRuns{}
	var order []string
	for round := range e.runs {
		for _, s := range setups {
			s.connect(t)
			for _, threads := range []int{1, 16} {
				k := fmt.Sprintf("%s/%d", s.name, threads)
				if results[k] == nil {
					results[k] = &commitRuns{setup: s.name, threads: threads}
					order = append(order, k)
				}
				e.measure(t, results[k], round, s.semisync)
			}
			s.disconnect(t)
		}
	}
	var list []commitRuns
	for _, k := range order {
		list = append(list, *results[k])
	}
	fmt.Printf("\ntransport: %s\n", e.tls.label())
	report(os.Stdout, list)
	fmt.Printf("hotstandby: peak RSS (VmHWM, highest of the runs) %.1f MiB, %d ACKs sent, %d events received, %d log lines above INFO\n",
		float64(agent.rss)/1024, agent.acks, agent.events, agent.logIssues)
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(base))
	for _, r := range list {
		if r.noTx != 0 {
			t.Errorf("%s, %d threads: Rpl_semi_sync_master_no_tx moved by %d: the master fell back to asynchronous replication; the run is invalid", r.setup, r.threads, r.noTx)
		}
	}
}

// agentSetup runs a fresh agent, starting at the master's current position,
// for each round, and keeps what its processes reported.
type agentSetup struct {
	e    *semiEnv
	bin  string
	base string

	p         *agentProc // the running agent
	rounds    int
	rss       int64 // highest VmHWM, KiB
	acks      uint64
	events    uint64
	logIssues int
}

func (a *agentSetup) connect(t *testing.T) {
	t.Helper()
	a.rounds++
	mustExec(t, a.e.master, "SET GLOBAL rpl_semi_sync_master_enabled=ON")
	dir := filepath.Join(a.base, fmt.Sprintf("agent-%d", a.rounds))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	a.p = startAgent(t, a.bin, agentSpec{
		Dir: dir, Master: a.e.master, Password: a.e.password, ServerID: 9001, Start: "current", SemiSync: true,
		MasterTLS: a.e.tls.agentMaster(),
	})
	a.p.waitStatus(t, "the agent to stream", 30*time.Second, 20*time.Millisecond,
		func(st agentStatus) bool { return st.Stream.State == "streaming" })
	a.e.waitSemiSyncReplica(t)
}

func (a *agentSetup) disconnect(t *testing.T) {
	t.Helper()
	a.rss = max(a.rss, a.p.peakRSS(t))
	st, err := a.p.status()
	if err != nil {
		t.Fatal(err)
	}
	a.acks += u64(st.SemiSync.AcksSent)
	a.events += u64(st.Stream.Events)
	a.p.stop(t)
	a.logIssues += a.p.reviewLog(t, fmt.Sprintf("semisync-agent-%d", a.rounds))
	a.e.waitNoSemiSyncReplica(t)
}

// startNative points the replica, with the given sync_relay_log, at the
// master's current end and starts its IO thread as a semi-sync replica.
func (e *semiEnv) startNative(t *testing.T, syncRelayLog int) {
	t.Helper()
	mustExec(t, e.master, "SET GLOBAL rpl_semi_sync_master_enabled=ON")
	_ = e.replica.Exec(context.Background(), "STOP SLAVE")
	mustExec(t, e.replica, "RESET SLAVE ALL")
	mustExec(t, e.replica, "SET GLOBAL sync_relay_log=?", syncRelayLog)
	end := masterEnd(t, e.master)
	mustExec(t, e.replica, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_LOG_FILE=?, MASTER_LOG_POS=?, MASTER_USE_GTID=no`+e.tls.changeMaster(), e.master.Port(), replUser, e.password, end.File, end.Pos)
	mustExec(t, e.replica, "START SLAVE IO_THREAD")
	e.waitSemiSyncReplica(t)
	if v, err := e.replica.Status(context.Background(), "Rpl_semi_sync_slave_status"); err != nil || v != "ON" {
		t.Fatalf("replica Rpl_semi_sync_slave_status = %q (%v), want ON", v, err)
	}
}

// stopNative stops the IO thread and waits until the master lets it go.
func (e *semiEnv) stopNative(t *testing.T) {
	t.Helper()
	mustExec(t, e.replica, "STOP SLAVE IO_THREAD")
	e.waitNoSemiSyncReplica(t)
}

// waitSemiSyncReplica waits until the master counts exactly one semi-sync
// replica and is in semi-sync mode.
func (e *semiEnv) waitSemiSyncReplica(t *testing.T) {
	t.Helper()
	harness.Poll(t, "the master to count one semi-sync replica", 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		st, err := e.master.Status(context.Background(), "Rpl_semi_sync_master_status")
		if err != nil {
			return false, err
		}
		return statusInt(t, e.master, "Rpl_semi_sync_master_clients") == 1 && st == "ON", nil
	})
}

// waitNoSemiSyncReplica waits until the master counts no semi-sync replica.
// A dump thread whose replica is gone lingers until the master writes to it:
// after 10 s the leftover Binlog Dump threads are killed.
func (e *semiEnv) waitNoSemiSyncReplica(t *testing.T) {
	t.Helper()
	gone := func() bool { return statusInt(t, e.master, "Rpl_semi_sync_master_clients") == 0 }
	deadline := time.Now().Add(10 * time.Second)
	for !gone() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if gone() {
		return
	}
	ids, err := e.master.DB().Query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
	if err != nil {
		t.Fatal(err)
	}
	var kill []int64
	for ids.Next() {
		var id int64
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		kill = append(kill, id)
	}
	ids.Close()
	t.Logf("semi-sync replica still counted 10 s after it stopped: killing dump threads %v", kill)
	for _, id := range kill {
		_ = e.master.Exec(context.Background(), "KILL ?", id)
	}
	harness.Poll(t, "the master to count no semi-sync replica", 10*time.Second, 20*time.Millisecond,
		func() (bool, error) { return gone(), nil })
}

// measure adds one run of the load at r.threads, after a short warm-up.
func (e *semiEnv) measure(t *testing.T, r *commitRuns, round int, semisync bool) {
	t.Helper()
	n := e.commits16
	if r.threads == 1 {
		n = max(1, e.commits16/4)
	}
	if _, _, err := commitLoad(e.db, r.threads, 200); err != nil {
		t.Fatal(err)
	}
	noTx := statusInt(t, e.master, "Rpl_semi_sync_master_no_tx")
	yesTx := statusInt(t, e.master, "Rpl_semi_sync_master_yes_tx")
	elapsed, lats, err := commitLoad(e.db, r.threads, n)
	if err != nil {
		t.Fatal(err)
	}
	dNo := statusInt(t, e.master, "Rpl_semi_sync_master_no_tx") - noTx
	dYes := statusInt(t, e.master, "Rpl_semi_sync_master_yes_tx") - yesTx
	rate := float64(n) / elapsed.Seconds()
	t.Logf("round %d, %s, %2d threads: %d commits in %.2f s = %.0f/s, no_tx +%d, yes_tx +%d",
		round+1, r.setup, r.threads, n, elapsed.Seconds(), rate, dNo, dYes)
	if semisync && dNo != 0 {
		t.Logf("round %d, %s, %d threads: INVALID, Rpl_semi_sync_master_no_tx moved by %d", round+1, r.setup, r.threads, dNo)
	}
	r.rates = append(r.rates, rate)
	r.lats = append(r.lats, lats...)
	r.noTx += dNo
	r.yesTx += dYes
	r.commits += int64(n)
}

// commitLoad commits n single-row INSERTs from `threads` connections, each
// pinned for the whole run, and returns the wall time and every latency.
func commitLoad(db *sql.DB, threads, n int) (time.Duration, []time.Duration, error) {
	ctx := context.Background()
	conns := make([]*sql.Conn, threads)
	for i := range conns {
		c, err := db.Conn(ctx)
		if err != nil {
			return 0, nil, err
		}
		defer c.Close()
		conns[i] = c
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	lats := make([][]time.Duration, threads)
	errs := make(chan error, threads)
	payload := strings.Repeat("p", 64)
	start := time.Now()
	for w, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, n/threads+1)
			for {
				i := next.Add(1)
				if i > int64(n) {
					break
				}
				t0 := time.Now()
				if _, err := c.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (?, ?)", i, payload); err != nil {
					errs <- err
					break
				}
				mine = append(mine, time.Since(t0))
			}
			lats[w] = mine
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, nil, err
	}
	return elapsed, slices.Concat(lats...), nil
}

// report prints the table and the agent's ratios to the native setups.
func report(w io.Writer, results []commitRuns) {
	type key struct {
		setup   string
		threads int
	}
	byKey := map[key]commitRuns{}
	var rows [][]string
	for _, r := range results {
		byKey[key{r.setup, r.threads}] = r
		slices.Sort(r.lats)
		runs := make([]string, len(r.rates))
		for i, x := range r.rates {
			runs[i] = strconv.FormatFloat(x, 'f', 0, 64)
		}
		valid := "ok"
		if r.noTx != 0 {
			valid = fmt.Sprintf("INVALID (no_tx +%d)", r.noTx)
		}
		rows = append(rows, []string{r.setup, strconv.Itoa(r.threads), fmt.Sprintf("%.0f", median(r.rates)),
			fmt.Sprintf("%.3f", ms(percentile(r.lats, 50))), fmt.Sprintf("%.3f", ms(percentile(r.lats, 99))),
			strings.Join(runs, " "), fmt.Sprintf("%d/%d", r.yesTx, r.commits), valid})
	}
	fmt.Fprintf(w, "\nSemi-sync commit rate: single-row autocommit INSERTs; commits/s median of %d runs, p50/p99 over all runs\n", len(results[0].rates))
	printTable(w, []string{"setup", "threads", "commits/s", "p50 ms", "p99 ms", "runs (commits/s)", "yes_tx/commits", "semi-sync"}, rows)
	fmt.Fprintln(w)
	for _, threads := range []int{1, 16} {
		a := byKey[key{setupAgent, threads}]
		for _, other := range []string{setupNative, setupNativeSync, setupOff, setupAgentAC} {
			o, ok := byKey[key{other, threads}]
			if !ok {
				continue
			}
			slices.Sort(o.lats)
			slices.Sort(a.lats)
			fmt.Fprintf(w, "%2d threads: hotstandby / %-40s commits/s x%.2f, p50 latency x%.2f, p99 latency x%.2f\n",
				threads, other+":", median(a.rates)/median(o.rates),
				ms(percentile(a.lats, 50))/ms(percentile(o.lats, 50)), ms(percentile(a.lats, 99))/ms(percentile(o.lats, 99)))
		}
	}
}
