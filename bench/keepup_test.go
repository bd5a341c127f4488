package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// Setups of TestBenchKeepUp, in the order they run.
const (
	keepupReplica = "hotstandby replica mode, 4 optimistic"
	keepupDirect  = "hotstandby direct mode"
	keepupNative  = "native replica, 4 optimistic, semi-sync ACKer"
)

// keepupAccounts is the number of rows in bench.accounts, as oltp expects.
const keepupAccounts = 10000

// keepupChunk is how many transactions one oltp call commits (about a
// second at the rates measured here): the load repeats such calls until its
// time is up.
const keepupChunk = 16 * 300

// keepupRun is what one setup measured.
type keepupRun struct {
	loadSecs float64   // from the first client's start until the last one returned
	commits  int64     // GTIDs the master wrote during the load
	rate     float64   // commits / loadSecs
	lagTxns  int64     // at the end of the load: the master's GTID seq_no minus the standby's applied one
	behind   string    // at the end of the load: Seconds_Behind_Master (direct: the agent's event-time lag)
	end      time.Time // when the last client returned
	drain    float64   // from end until the standby had applied everything
	samples  []int64   // the lag in transactions, sampled every second during the load
	// masterEach and appliedEach are the transactions the master committed
	// and the standby applied between consecutive samples.
	masterEach, appliedEach []int64
	noTx                    int64 // Rpl_semi_sync_master_no_tx moved by this much during the load
	yesTx                   int64 // Rpl_semi_sync_master_yes_tx moved by this much during the load
	same                    bool  // every table's checksum matched the master's after the drain
}

func (r keepupRun) lagSecs() float64 { return float64(r.lagTxns) / r.rate }

// keepupSide is one setup's running master and standby: how to read what
// the standby has applied, its own lag figure, and its apply errors.
type keepupSide struct {
	master, standby *sandbox.Server
	// applied returns the GTID sequence number of the last transaction whose
	// commit on the standby has returned (its data is visible).
	applied func() (int64, error)
	// behind returns the standby's own lag figure in seconds, as text.
	behind func() string
	// check returns an error once the standby stopped applying with one.
	check func() error
}

// lag returns the transactions committed on the master and not yet applied
// on the standby. The standby is read first: a commit on the master in
// between makes the lag larger, never smaller.
func (k *keepupSide) lag() (int64, error) {
	a, m, err := k.positions()
	return m - a, err
}

// positions returns the standby's applied and the master's GTID sequence
// numbers, the standby's read first.
func (k *keepupSide) positions() (applied, master int64, err error) {
	if applied, err = k.applied(); err != nil {
		return 0, 0, err
	}
	master, err = gtidPosSeq(k.master, "@@gtid_binlog_pos")
	return applied, master, err
}

// TestBenchKeepUp runs 16 OLTP clients on a semi-sync master as fast as
// they can for HOTSTANDBY_BENCH_KEEPUP_SECS (default 60) and measures how
// far the standby is behind at the end (transactions, and seconds of the
// master's commits) and how long it then takes to apply everything (the
// drain a failover waits for), with the agent in replica mode, in direct
// mode, and with a native 4-thread optimistic replica as the semi-sync
// replica instead of the agent. Each setup gets a fresh master and standby.
// Run it alone: `make bench-keepup`.
func TestBenchKeepUp(t *testing.T) {
	requireBench(t)
	secs := envInt(t, "HOTSTANDBY_BENCH_KEEPUP_SECS", 60)
	runs := envInt(t, "HOTSTANDBY_BENCH_RUNS", 1)
	base := t.TempDir()
	password := "pw-" + harness.RandHex(12)
	src := sourceState()
	bin := buildAgent(t)
	t.Logf("agent built from %s", src)

	setups := []string{keepupReplica, keepupDirect, keepupNative}
	before := machineLoad(base)
	results := make([][]keepupRun, len(setups))
	for round := range runs {
		for j, name := range setups {
			dir := filepath.Join(base, fmt.Sprintf("run-%d-%d", round+1, j))
			r := runKeepUp(t, bin, dir, name, password, time.Duration(secs)*time.Second)
			t.Logf("run %d %-46s %.0f commits/s, lag at end %d txns (%.2f s of commits), behind %s, drain %.2f s\n"+
				"lag each second: %v\nmaster commits each second: %v\nstandby applied each second: %v",
				round+1, name, r.rate, r.lagTxns, r.lagSecs(), r.behind, r.drain, r.samples, r.masterEach, r.appliedEach)
			results[j] = append(results[j], r)
		}
	}
	reportKeepUp(os.Stdout, secs, setups, results)
	fmt.Printf("agent built from %s\n", src)
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(base))
	for j, rs := range results {
		for i, r := range rs {
			if r.noTx != 0 {
				t.Errorf("%s, run %d: Rpl_semi_sync_master_no_tx moved by %d: the master fell back to asynchronous replication; the run is invalid", setups[j], i+1, r.noTx)
			}
			if !r.same {
				t.Errorf("DATA MISMATCH: %s, run %d: the standby's tables differ from the master's", setups[j], i+1)
			}
		}
	}
}

// runKeepUp runs one setup under dir on a fresh master and standby and
// removes them afterwards.
func runKeepUp(t *testing.T, bin, dir, setup, password string, d time.Duration) keepupRun {
	t.Helper()
	// Semi-sync stays off until the schema is in place: with the long
	// timeout, the DDL would otherwise wait for a replica that is not there.
	master := startServer(t, dir, "master", 1, true,
		"rpl_semi_sync_master_enabled=OFF", "rpl_semi_sync_master_timeout=3600000")
	defer dropStandby(t, master)
	requireSettings(t, master, "master", map[string]string{"sync_binlog": "1", "innodb_flush_log_at_trx_commit": "1",
		"log_bin": "1", "log_slave_updates": "1", "gtid_strict_mode": "1",
		"rpl_semi_sync_master_wait_point": "AFTER_SYNC", "rpl_semi_sync_master_timeout": "3600000"})
	if err := master.CreateUser(context.Background(), replUser, password, replPrivs); err != nil {
		t.Fatal(err)
	}
	first := binaryLogs(t, master)[0]
	keepupSchema(t, master)
	mustExec(t, master, "SET GLOBAL rpl_semi_sync_master_enabled=ON")

	ae := &applyEnv{master: master}
	var k *keepupSide
	var agent *agentProc
	switch setup {
	case keepupReplica, keepupDirect:
		mode := "replica"
		if setup == keepupDirect {
			mode = "direct"
		}
		k, agent = startKeepUpAgent(t, ae, bin, dir, mode, password, first)
	case keepupNative:
		k = startKeepUpNative(t, ae, dir, password)
	}
	defer dropStandby(t, k.standby)
	(&semiEnv{master: master}).waitSemiSyncReplica(t)
	k.waitApplied(t, "the standby to apply the schema and the preload", 10*time.Minute)

	r := loadKeepUp(t, k, d)
	k.waitApplied(t, "the standby to apply everything the master committed", 30*time.Minute)
	r.drain = time.Since(r.end).Seconds()
	if st, err := master.Status(context.Background(), "Rpl_semi_sync_master_status"); err != nil || st != "ON" {
		t.Errorf("%s: Rpl_semi_sync_master_status = %q (%v) after the run, want ON", setup, st, err)
	}
	ae.sums = checksums(t, master)
	r.same = ae.sameData(t, setup, k.standby)
	if agent != nil {
		agent.stop(t)
		if n := agent.reviewLog(t, "keepup-"+filepath.Base(dir)); n > 0 {
			t.Logf("%s: %d agent log lines above INFO", setup, n)
		}
	} else {
		mustExec(t, k.standby, "STOP SLAVE")
	}
	return r
}

// requireSettings fails the test unless every variable has the value given.
func requireSettings(t *testing.T, s *sandbox.Server, who string, want map[string]string) {
	t.Helper()
	var cols []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		cols = append(cols, fmt.Sprintf("@@%s AS `%s`", name, name))
	}
	got, err := row(s, "SELECT "+strings.Join(cols, ", "))
	if err != nil || got == nil {
		t.Fatalf("%s settings: %v", who, err)
	}
	for name, v := range want {
		if got[name] != v {
			t.Fatalf("%s: %s = %q, want %q (all: %v)", who, name, got[name], v, got)
		}
	}
}

// keepupSchema creates the tables oltp writes to and fills bench.accounts.
func keepupSchema(t *testing.T, m *sandbox.Server) {
	t.Helper()
	mustExec(t, m, "CREATE DATABASE bench")
	mustExec(t, m, `CREATE TABLE bench.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL, ops INT NOT NULL,
		name VARCHAR(64) NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB`)
	mustExec(t, m, `CREATE TABLE bench.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL,
		amount DECIMAL(12,2) NOT NULL, status INT NOT NULL, payload VARCHAR(255) NOT NULL,
		created_at DATETIME(6) NOT NULL, KEY (account)) ENGINE=InnoDB`)
	mustExec(t, m, fmt.Sprintf(`INSERT INTO bench.accounts (id, balance, ops, name, updated_at)
		SELECT seq, 1000, 0, CONCAT('account-', seq), NOW(6) FROM bench.seq_1_to_%d`, keepupAccounts))
}

// startKeepUpAgent starts a fresh standby and the agent as the master's
// semi-sync replica from the master's first binlog file, applying in mode.
func startKeepUpAgent(t *testing.T, ae *applyEnv, bin, dir, mode, password string, first binlogFile) (*keepupSide, *agentProc) {
	t.Helper()
	standby := ae.startStandby(t, filepath.Join(dir, "standby"))
	if err := standby.CreateUser(context.Background(), "applier", password, "ALL PRIVILEGES"); err != nil {
		t.Fatal(err)
	}
	agentDir := filepath.Join(dir, "agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(agentDir, "standby.pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, bin, agentSpec{Dir: agentDir, Master: ae.master, Password: password, ServerID: 9001,
		Start: "file:" + first.Name + ":4", SemiSync: true, Extra: standbySection(standby.Port(), pwFile, mode)})
	p.waitStatus(t, "the agent to stream", 60*time.Second, 20*time.Millisecond,
		func(st agentStatus) bool { return st.Stream.State == "streaming" })
	k := &keepupSide{master: ae.master, standby: standby}
	if mode == "replica" {
		k.applied = func() (int64, error) { return gtidPosSeq(standby, "@@gtid_slave_pos") }
		k.behind = func() string { return secondsBehindMaster(standby) }
		k.check = func() error {
			if err := agentExited(p); err != nil {
				return err
			}
			return sqlThreadError(standby)
		}
		return k, p
	}
	// Direct mode: the standby's gtid_binlog_pos moves when a transaction is
	// written to its binlog, a moment before InnoDB makes it visible; the
	// agent's applied frontier moves once COMMIT has returned.
	report := func() (status.Report, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return status.Fetch(ctx, p.listen)
	}
	k.applied = func() (int64, error) {
		rep, err := report()
		if err != nil {
			return 0, err
		}
		if rep.Applied == nil {
			return 0, nil
		}
		return gtidSeq(rep.Applied.GTID)
	}
	k.behind = func() string {
		rep, err := report()
		if err != nil || rep.Lag.AppliedSeconds == nil {
			return "unknown"
		}
		return strconv.FormatInt(*rep.Lag.AppliedSeconds, 10)
	}
	k.check = func() error {
		if err := agentExited(p); err != nil {
			return err
		}
		st, err := p.applierStatus()
		if err == nil && st.Applier != nil && st.Applier.State == "error" {
			return fmt.Errorf("APPLY ERROR: applier.state=error, failed GTID %s, last_error: %s", st.Applier.FailedGTID, st.Applier.LastError)
		}
		return nil
	}
	return k, p
}

// startKeepUpNative starts a fresh standby as a native replica of the
// master with 4 optimistic parallel workers, the master's semi-sync
// replica, from an empty gtid_slave_pos (the master's first binlog).
func startKeepUpNative(t *testing.T, ae *applyEnv, dir, password string) *keepupSide {
	t.Helper()
	standby := ae.startStandby(t, filepath.Join(dir, "standby"),
		"slave_parallel_threads=4", "slave_parallel_mode=optimistic", "rpl_semi_sync_slave_enabled=ON")
	mustExec(t, standby, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_USE_GTID=slave_pos`, ae.master.Port(), replUser, password)
	mustExec(t, standby, "START SLAVE")
	harness.Poll(t, "the native replica to be a semi-sync replica", 60*time.Second, 20*time.Millisecond, func() (bool, error) {
		v, err := standby.Status(context.Background(), "Rpl_semi_sync_slave_status")
		return v == "ON", err
	})
	return &keepupSide{master: ae.master, standby: standby,
		applied: func() (int64, error) { return gtidPosSeq(standby, "@@gtid_slave_pos") },
		behind:  func() string { return secondsBehindMaster(standby) },
		check:   func() error { return replicationError(standby) },
	}
}

// replicationError returns the native replica's SQL thread error, or its
// IO thread's once that thread has stopped.
func replicationError(s *sandbox.Server) error {
	if err := sqlThreadError(s); err != nil {
		return err
	}
	m, err := row(s, "SHOW SLAVE STATUS")
	if err != nil || m == nil {
		return err
	}
	if m["Slave_IO_Running"] == "No" && m["Last_IO_Errno"] != "0" {
		return fmt.Errorf("IO thread stopped with error %s: %s", m["Last_IO_Errno"], m["Last_IO_Error"])
	}
	return nil
}

func agentExited(p *agentProc) error {
	if p.Exited() {
		return fmt.Errorf("agent exited (%v); log:\n%s", p.Err(), p.LogTail(30))
	}
	return nil
}

// sqlThreadError returns the standby's replication error, if any.
func sqlThreadError(s *sandbox.Server) error {
	m, err := row(s, "SHOW SLAVE STATUS")
	if err != nil || m == nil {
		return err
	}
	if m["Last_SQL_Errno"] != "0" {
		return fmt.Errorf("SQL thread error %s: %s", m["Last_SQL_Errno"], m["Last_SQL_Error"])
	}
	return nil
}

// secondsBehindMaster returns SHOW SLAVE STATUS's Seconds_Behind_Master
// ("NULL" when the server does not know it).
func secondsBehindMaster(s *sandbox.Server) string {
	m, err := row(s, "SHOW SLAVE STATUS")
	if err != nil || m == nil {
		return "unknown"
	}
	if v := m["Seconds_Behind_Master"]; v != "" {
		return v
	}
	return "NULL"
}

// gtidPosSeq returns the sequence number of a single-domain GTID position
// variable of s (0 when it is empty).
func gtidPosSeq(s *sandbox.Server, variable string) (int64, error) {
	v, err := s.QueryString(context.Background(), "SELECT "+variable)
	if err != nil {
		return 0, err
	}
	return gtidSeq(v)
}

// waitApplied polls every 10 ms until the standby has applied the master's
// whole binlog, failing on an apply error.
func (k *keepupSide) waitApplied(t *testing.T, what string, d time.Duration) {
	t.Helper()
	polls := 0
	harness.Poll(t, what, d, 10*time.Millisecond, func() (bool, error) {
		if polls++; polls%10 == 1 {
			if err := k.check(); err != nil {
				return false, err
			}
		}
		lag, err := k.lag()
		return err == nil && lag <= 0, err
	})
}

// loadKeepUp runs the OLTP clients for at least d, sampling the lag every
// second, and measures the master's rate and the standby's lag at the end.
func loadKeepUp(t *testing.T, k *keepupSide, d time.Duration) keepupRun {
	t.Helper()
	db, err := sql.Open("mysql", k.master.RootDSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)

	startSeq, err := gtidPosSeq(k.master, "@@gtid_binlog_pos")
	if err != nil {
		t.Fatal(err)
	}
	noTx := statusInt(t, k.master, "Rpl_semi_sync_master_no_tx")
	yesTx := statusInt(t, k.master, "Rpl_semi_sync_master_yes_tx")
	samples := sampleLag(k)
	var rows atomic.Int64
	var commits int64
	start := time.Now()
	for time.Since(start) < d {
		n, err := oltp(context.Background(), db, keepupChunk, keepupAccounts, &rows)
		commits += int64(n)
		if err != nil {
			samples.finish()
			t.Fatal(err)
		}
	}
	end := time.Now()
	elapsed := end.Sub(start)
	sampleErr := samples.finish()
	if sampleErr != nil {
		t.Fatalf("sampling the lag: %v", sampleErr)
	}
	lag, err := k.lag()
	if err != nil {
		t.Fatal(err)
	}
	r := keepupRun{loadSecs: elapsed.Seconds(), end: end, lagTxns: lag, behind: k.behind()}
	prevA, prevM := startSeq, startSeq
	for _, p := range samples.points {
		r.samples = append(r.samples, p.master-p.applied)
		r.masterEach = append(r.masterEach, p.master-prevM)
		r.appliedEach = append(r.appliedEach, p.applied-prevA)
		prevA, prevM = p.applied, p.master
	}
	endSeq, err := gtidPosSeq(k.master, "@@gtid_binlog_pos")
	if err != nil {
		t.Fatal(err)
	}
	r.commits = endSeq - startSeq
	if r.commits != commits {
		t.Fatalf("the master's binlog has %d new GTIDs; the clients committed %d transactions", r.commits, commits)
	}
	r.rate = float64(r.commits) / r.loadSecs
	r.noTx = statusInt(t, k.master, "Rpl_semi_sync_master_no_tx") - noTx
	r.yesTx = statusInt(t, k.master, "Rpl_semi_sync_master_yes_tx") - yesTx
	return r
}

// lagSampler reads a setup's positions once a second in its own goroutine.
type lagSampler struct {
	stop, done chan struct{}
	points     []struct{ applied, master int64 }
	err        error
}

func sampleLag(k *keepupSide) *lagSampler {
	s := &lagSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			a, m, err := k.positions()
			if err != nil {
				s.err = err
				return
			}
			s.points = append(s.points, struct{ applied, master int64 }{a, m})
		}
	}()
	return s
}

// finish stops the sampler and returns its error; points are complete then.
func (s *lagSampler) finish() error {
	close(s.stop)
	<-s.done
	return s.err
}

// sampleStats returns the min, median and max of the samples, and the
// median of their last quarter (whether the lag still grows at the end).
func sampleStats(xs []int64) (lo, mid, hi, lastQuarter float64) {
	if len(xs) == 0 {
		return 0, 0, 0, 0
	}
	fs := make([]float64, len(xs))
	for i, x := range xs {
		fs[i] = float64(x)
	}
	tail := fs[len(fs)-max(1, len(fs)/4):]
	return slices.Min(fs), median(fs), slices.Max(fs), median(tail)
}

// rateOrDash formats a rate, or "-" for none (NaN).
func rateOrDash(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.0f", x)
}

// reportKeepUp prints the table of medians and the ratios to the native
// replica.
func reportKeepUp(w io.Writer, secs int, names []string, results [][]keepupRun) {
	type med struct{ rate, lag, lagSecs, drain float64 }
	meds := make([]med, len(results))
	var rows [][]string
	for j, rs := range results {
		var rate, lag, lagSecs, drain, during, drainRate []float64
		var all []int64
		var behind, runs []string
		var noTx, yesTx, commits int64
		same := true
		for _, r := range rs {
			rate = append(rate, r.rate)
			lag = append(lag, float64(r.lagTxns))
			lagSecs = append(lagSecs, r.lagSecs())
			drain = append(drain, r.drain)
			during = append(during, float64(r.commits-r.lagTxns)/r.loadSecs)
			if r.drain > 0 {
				drainRate = append(drainRate, float64(r.lagTxns)/r.drain)
			}
			all = append(all, r.samples...)
			behind = append(behind, r.behind)
			noTx += r.noTx
			yesTx += r.yesTx
			commits += r.commits
			same = same && r.same
			runs = append(runs, fmt.Sprintf("%.0f/s %d txns %.2fs", r.rate, r.lagTxns, r.drain))
		}
		meds[j] = med{median(rate), median(lag), median(lagSecs), median(drain)}
		lo, mid, hi, tail := sampleStats(all)
		target := "yes"
		if meds[j].lagSecs > 1 {
			target = "NO"
		}
		semi := fmt.Sprintf("%d/%d ok", yesTx, commits)
		if noTx != 0 {
			semi = fmt.Sprintf("INVALID (no_tx +%d)", noTx)
		}
		check := "identical"
		if !same {
			check = "MISMATCH"
		}
		rows = append(rows, []string{names[j], fmt.Sprintf("%.0f", meds[j].rate), fmt.Sprintf("%.0f", meds[j].lag),
			fmt.Sprintf("%.2f", meds[j].lagSecs), strings.Join(behind, " "), fmt.Sprintf("%.2f", meds[j].drain),
			fmt.Sprintf("%.0f", median(during)), rateOrDash(median(drainRate)),
			fmt.Sprintf("%.0f / %.0f / %.0f", lo, mid, hi), fmt.Sprintf("%.0f", tail), target, semi, check,
			strings.Join(runs, "; ")})
	}
	fmt.Fprintf(w, "\nKeeping up: 16 OLTP clients (single-row INSERT/UPDATE/DELETE, 3-statement transfers) for %d s on a fresh "+
		"AFTER_SYNC semi-sync master and a fresh standby per setup (sync_binlog=1, innodb_flush_log_at_trx_commit=1, "+
		"log_slave_updates=ON, gtid_strict_mode=ON); median of %d run(s)\n", secs, len(results[0]))
	printTable(w, []string{"setup", "master commits/s", "lag at end txns", "lag at end s of commits",
		"Seconds_Behind_Master at end (direct: agent event-time lag)", "drain s", "standby applied/s during the load", "standby applied/s during the drain", "lag each second min / median / max txns",
		"lag last quarter median txns", "lag <= 1 s", "semi-sync yes_tx/commits", "data", "runs (rate, lag, drain)"}, rows)
	fmt.Fprintln(w, "lag = the master's gtid_binlog_pos seq_no - the last transaction committed on the standby (replica mode and native: "+
		"its gtid_slave_pos; direct: the agent's applied frontier); s of commits = lag / the master's commits/s; drain = end of the load "+
		"until the standby has applied everything. The native replica's IO thread ACKs before it fsyncs its relay log "+
		"(sync_relay_log=10000, the default); the agent ACKs after fsync.")
	// names: replica, direct, native.
	nat := meds[2]
	ratio := func(a, b float64) string {
		if b == 0 {
			return fmt.Sprintf("%.2f vs 0 (no ratio)", a)
		}
		return fmt.Sprintf("x%.2f", a/b)
	}
	for _, j := range []int{0, 1} {
		fmt.Fprintf(w, "%s / %s: master commits/s %s, lag at end (s) %s, drain %s\n", names[j], names[2],
			ratio(meds[j].rate, nat.rate), ratio(meds[j].lagSecs, nat.lagSecs), ratio(meds[j].drain, nat.drain))
	}
}
