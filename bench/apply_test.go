package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// Appliers of TestBenchApply, in the order they run.
const (
	applierAgent          = "hotstandby"
	applierAgentReplica   = "hotstandby replica mode, 4 optimistic"
	applierNativeSerial   = "native SQL thread, serial"
	applierNativeParallel = "native SQL thread, 4 optimistic"
	applierNativeReplica  = "native replica, 4 optimistic, reading from the master"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// applyEnv is the master with its recorded workload.
type applyEnv struct {
	master   *sandbox.Server
	password string
	base     string
	bin      string

	first     binlogFile // the first binlog file: every run starts at its offset 4
	end       binlogEnd  // SHOW MASTER STATUS after the workload
	startGTID string     // @@gtid_binlog_pos before the schema was created
	endGTID   string     // @@gtid_binlog_pos after the workload
	txns      int64      // GTIDs in the binlog: every transaction a standby applies
	rows      int64      // rows written, updated or deleted, as the generator counted them
	midSeq    int64      // GTID sequence number of the last OLTP transaction
	oltpTxns  int64      // transactions up to midSeq: schema, preload and OLTP
	oltpRows  int64      // rows changed up to midSeq
	bytes     int64      // sum of the binlog files' sizes
	sums      map[string]tableSum
}

// applyRun is one timed replay on a fresh standby.
type applyRun struct {
	secs         float64 // from START SLAVE SQL_THREAD, or from the agent process's start
	midSecs      float64 // the same, until the standby had the last OLTP transaction
	midAgentCPU  float64 // agent only: its CPU seconds until then
	midServerCPU float64 // the standby's mariadbd CPU seconds until then
	startup      float64 // agent only: process start until /status first said applier.state=applying
	agentCPU     float64 // agent process, seconds of CPU (user+system); agent runs only
	serverCPU    float64 // the standby's mariadbd, seconds of CPU during the timed window
	rss          int64   // agent only: VmHWM in KiB
	groupCommits int64   // the standby's Binlog_group_commits during the timed window
	fsyncs       int64   // the standby's Innodb_data_fsyncs during the timed window
	same         bool    // every table's checksum matched the master's

	// Replicating runs only (replica mode, native replica reading from the
	// master): seconds from the start (the agent process's start, or START
	// SLAVE) until the standby's SQL thread ran (Slave_SQL_Running Yes),
	// until its first transaction was applied, and until its IO thread
	// had received everything.
	sqlRunning, firstApplied, ioDone float64
	// settings are the standby's parallel replication settings while it
	// applied (parallelSettings).
	settings string
}

func TestBenchApply(t *testing.T) {
	requireBench(t)
	total := envInt(t, "HOTSTANDBY_BENCH_TXNS", 40000)
	runs := envInt(t, "HOTSTANDBY_BENCH_RUNS", 3)
	e := &applyEnv{base: t.TempDir(), password: "pw-" + harness.RandHex(12)}
	src := sourceState()
	e.bin = buildAgent(t)
	t.Logf("agent built from %s", src)
	e.master = startServer(t, e.base, "master", 1, true,
		"rpl_semi_sync_master_enabled=OFF", "max_binlog_size=1G")
	mustExec(t, e.master, "SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	if v, err := e.master.QueryString(context.Background(), "SELECT @@rpl_semi_sync_master_enabled"); err != nil || v != "0" {
		t.Fatalf("master rpl_semi_sync_master_enabled = %q (%v), want 0", v, err)
	}
	if err := e.master.CreateUser(context.Background(), replUser, e.password, replPrivs); err != nil {
		t.Fatal(err)
	}

	before := machineLoad(e.base)
	began := time.Now()
	e.record(t, total)
	t.Logf("recorded in %s: %s to %s, %.1f MiB, GTIDs %q to %q: %d transactions, %d rows",
		time.Since(began).Round(time.Second), e.first.Name+":4", e.end, float64(e.bytes)/(1<<20),
		e.startGTID, e.endGTID, e.txns, e.rows)

	appliers := selectAppliers(t, []applier{
		{"direct", applierAgent, func(t *testing.T, dir string) applyRun { return e.runAgent(t, dir, "direct") }},
		{"replica", applierAgentReplica, func(t *testing.T, dir string) applyRun { return e.runAgent(t, dir, "replica") }},
		{"native-serial", applierNativeSerial, func(t *testing.T, dir string) applyRun { return e.runNative(t, dir, 0) }},
		{"native-parallel", applierNativeParallel, func(t *testing.T, dir string) applyRun { return e.runNative(t, dir, 4) }},
		{"native-replica", applierNativeReplica, func(t *testing.T, dir string) applyRun { return e.runNativeReplica(t, dir) }},
	})
	results := make([][]applyRun, len(appliers))
	for round := range runs {
		for j, a := range appliers {
			dir := filepath.Join(e.base, fmt.Sprintf("run-%d-%d", round+1, j))
			r := a.run(t, dir)
			t.Logf("run %d %-32s %7.2f s  %8.0f txns/s  %8.0f rows/s  data identical: %t",
				round+1, a.name, r.secs, float64(e.txns)/r.secs, float64(e.rows)/r.secs, r.same)
			results[j] = append(results[j], r)
		}
	}
	names := make([]string, len(appliers))
	for j, a := range appliers {
		names[j] = a.name
	}
	e.report(os.Stdout, names, results)
	fmt.Printf("agent built from %s\n", src)
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(e.base))
	for j, rs := range results {
		for i, r := range rs {
			if !r.same {
				t.Errorf("DATA MISMATCH: %s, run %d: the standby's tables differ from the master's", names[j], i+1)
			}
		}
	}
	// The parallel appliers compared with one another must run with the
	// same settings, or the comparison is unfair either way.
	var want, wantFrom string
	for _, name := range []string{applierNativeParallel, applierNativeReplica, applierAgentReplica} {
		j := slices.Index(names, name)
		if j < 0 {
			continue
		}
		for i, r := range results[j] {
			if wantFrom == "" {
				want, wantFrom = r.settings, name
			}
			if r.settings != want {
				t.Errorf("UNFAIR COMPARISON: %s, run %d, applied with %s; %s with %s", name, i+1, r.settings, wantFrom, want)
			}
		}
	}
}

// applier is one of TestBenchApply's appliers: key names it in
// HOTSTANDBY_BENCH_APPLIERS.
type applier struct {
	key, name string
	run       func(*testing.T, string) applyRun
}

// selectAppliers returns the appliers HOTSTANDBY_BENCH_APPLIERS names
// (comma-separated keys, in the order given; empty: all of them).
func selectAppliers(t *testing.T, all []applier) []applier {
	t.Helper()
	v := os.Getenv("HOTSTANDBY_BENCH_APPLIERS")
	if v == "" {
		return all
	}
	var keys []string
	var out []applier
	for _, a := range all {
		keys = append(keys, a.key)
	}
	for _, k := range strings.Split(v, ",") {
		i := slices.Index(keys, strings.TrimSpace(k))
		if i < 0 {
			t.Fatalf("HOTSTANDBY_BENCH_APPLIERS = %q: %q is no applier; want a comma-separated list of %s", v, k, strings.Join(keys, ", "))
		}
		out = append(out, all[i])
	}
	return out
}

// report prints the table of medians and the ratios.
func (e *applyEnv) report(w io.Writer, names []string, results [][]applyRun) {
	var rows [][]string
	secs := make([]float64, len(results))
	var rss int64
	for j, rs := range results {
		var xs, mids, startups, agentCPU, serverCPU []float64
		var gc, fs, midAgent, midServer []float64
		same := true
		for _, r := range rs {
			xs = append(xs, r.secs)
			mids = append(mids, r.midSecs)
			startups = append(startups, r.startup)
			agentCPU = append(agentCPU, r.agentCPU)
			serverCPU = append(serverCPU, r.serverCPU)
			gc = append(gc, float64(r.groupCommits))
			midAgent = append(midAgent, r.midAgentCPU)
			midServer = append(midServer, r.midServerCPU)
			fs = append(fs, float64(r.fsyncs))
			rss = max(rss, r.rss)
			same = same && r.same
		}
		secs[j] = median(xs)
		all := make([]string, len(xs))
		for i, x := range xs {
			all[i] = strconv.FormatFloat(x, 'f', 2, 64)
		}
		agent, oltpAgent := "-", "-"
		if names[j] == applierAgent || names[j] == applierAgentReplica {
			agent = fmt.Sprintf("%.2f", median(agentCPU))
			oltpAgent = fmt.Sprintf("%.3f", median(midAgent)*1000/float64(e.oltpTxns))
		}
		check := "identical"
		if !same {
			check = "MISMATCH"
		}
		mid := median(mids)
		rows = append(rows, []string{names[j], fmt.Sprintf("%.2f", secs[j]),
			fmt.Sprintf("%.0f", float64(e.txns)/secs[j]), fmt.Sprintf("%.0f", float64(e.rows)/secs[j]),
			fmt.Sprintf("%.2f", mid), fmt.Sprintf("%.0f", float64(e.oltpTxns)/mid),
			fmt.Sprintf("%.2f", secs[j]-mid), fmt.Sprintf("%.0f", float64(e.rows-e.oltpRows)/(secs[j]-mid)),
			fmt.Sprintf("%.3f", mid*1000/float64(e.oltpTxns)), oltpAgent,
			fmt.Sprintf("%.3f", median(midServer)*1000/float64(e.oltpTxns)),
			agent, fmt.Sprintf("%.2f", median(serverCPU)),
			fmt.Sprintf("%.0f", median(gc)), fmt.Sprintf("%.0f", median(fs)), check, strings.Join(all, " ")})
		var sqlRunning []float64
		for _, r := range rs {
			sqlRunning = append(sqlRunning, r.sqlRunning)
		}
		if names[j] == applierAgent || names[j] == applierAgentReplica {
			// The same run, timed from the moment the applier said it
			// applies (direct), or the standby's SQL thread ran (replica).
			st, from := median(startups), ", from applier.state=applying"
			if names[j] == applierAgentReplica {
				st, from = median(sqlRunning), ", from SQL thread running"
			}
			s, m := secs[j]-st, mid-st
			rows = append(rows, []string{names[j] + from, fmt.Sprintf("%.2f", s),
				fmt.Sprintf("%.0f", float64(e.txns)/s), fmt.Sprintf("%.0f", float64(e.rows)/s),
				fmt.Sprintf("%.2f", m), fmt.Sprintf("%.0f", float64(e.oltpTxns)/m), "", "",
				fmt.Sprintf("%.3f", m*1000/float64(e.oltpTxns)), "", "", "", "", "", "", "", ""})
		}
	}
	fmt.Fprintf(w, "\nApply: %s to %s (%.1f MiB), GTIDs %s to %s: %d transactions, %d rows; fresh standby each run "+
		"(sync_binlog=1, innodb_flush_log_at_trx_commit=1, log_slave_updates=ON); median of %d run(s)\n",
		e.first.Name+":4", e.end, float64(e.bytes)/(1<<20), orEmpty(e.startGTID), e.endGTID, e.txns, e.rows, len(results[0]))
	printTable(w, []string{"applier", "seconds", "txns/s", "rows/s", "OLTP part s", "OLTP txns/s",
		"bulk part s", "bulk rows/s", "OLTP wall ms/txn", "OLTP agent CPU ms/txn", "OLTP standby CPU ms/txn", "agent CPU s", "standby mariadbd CPU s",
		"standby binlog group commits", "standby InnoDB fsyncs", "data", "runs (s)"}, rows)
	fmt.Fprintf(w, "OLTP part: %d transactions (schema, 10,000-row preload, OLTP), %d rows; bulk part: %d transactions, %d rows\n",
		e.oltpTxns, e.oltpRows, e.txns-e.oltpTxns, e.rows-e.oltpRows)
	by := func(name string) int { return slices.Index(names, name) }
	have := func(ns ...string) bool {
		for _, n := range ns {
			if by(n) < 0 {
				return false
			}
		}
		return true
	}
	ratio := func(a, b string) {
		if have(a, b) {
			fmt.Fprintf(w, "%s throughput / %s: %.2f\n", a, b, secs[by(b)]/secs[by(a)])
		}
	}
	ratio(applierAgent, applierNativeSerial)
	ratio(applierAgent, applierNativeParallel)
	ratio(applierAgentReplica, applierNativeReplica)
	ratio(applierAgentReplica, applierNativeParallel)
	ratio(applierNativeReplica, applierNativeParallel)
	ratio(applierAgentReplica, applierAgent)
	field := func(name string, f func(applyRun) float64) float64 {
		var xs []float64
		for _, r := range results[by(name)] {
			xs = append(xs, f(r))
		}
		return median(xs)
	}
	if have(applierAgent, applierNativeSerial, applierNativeParallel) {
		a := secs[by(applierAgent)] - field(applierAgent, func(r applyRun) float64 { return r.startup })
		fmt.Fprintf(w, "%s (from applier.state=applying) throughput / %s: %.2f, / %s: %.2f\n", applierAgent,
			applierNativeSerial, secs[by(applierNativeSerial)]/a, applierNativeParallel, secs[by(applierNativeParallel)]/a)
	}
	if have(applierAgentReplica, applierNativeReplica) {
		r := secs[by(applierAgentReplica)] - field(applierAgentReplica, func(r applyRun) float64 { return r.sqlRunning })
		fmt.Fprintf(w, "%s (from SQL thread running) throughput / %s: %.2f\n", applierAgentReplica,
			applierNativeReplica, secs[by(applierNativeReplica)]/r)
	}
	if have(applierAgent) {
		fmt.Fprintf(w, "%s peak RSS while applying (VmHWM, highest of the runs): %.1f MiB\n", applierAgent, float64(rss)/1024)
	}

	// Where the replicating runs' time goes, from their start (the agent
	// process's start; START SLAVE).
	var wrows [][]string
	for _, name := range []string{applierAgentReplica, applierNativeReplica} {
		if !have(name) {
			continue
		}
		io := field(name, func(r applyRun) float64 { return r.ioDone })
		wrows = append(wrows, []string{name,
			fmt.Sprintf("%.3f", field(name, func(r applyRun) float64 { return r.sqlRunning })),
			fmt.Sprintf("%.3f", field(name, func(r applyRun) float64 { return r.firstApplied })),
			fmt.Sprintf("%.2f", io), fmt.Sprintf("%.1f", float64(e.bytes)/(1<<20)/io),
			fmt.Sprintf("%.2f", secs[by(name)]), results[by(name)][0].settings})
	}
	fmt.Fprintf(w, "\nReplicating runs, seconds from the start (%s: the agent process's start; %s: START SLAVE), medians:\n",
		applierAgentReplica, applierNativeReplica)
	printTable(w, []string{"applier", "SQL thread running", "first transaction applied", "IO thread received all",
		"IO thread MiB/s (binlog size / that)", "all applied", "parallel settings (run 1)"}, wrows)
}

func orEmpty(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

// record runs the workload on the master: the schema, a 10,000-row
// preload, total OLTP transactions from 16 clients, then a 200,000-row
// INSERT ... SELECT and a 100,000-row UPDATE, each in one transaction. It
// keeps the binlog's extent, the GTIDs, the row count and the tables'
// checksums.
func (e *applyEnv) record(t *testing.T, total int) {
	t.Helper()
	ctx := context.Background()
	m := e.master
	var err error
	if e.startGTID, err = m.QueryString(ctx, "SELECT @@gtid_binlog_pos"); err != nil {
		t.Fatal(err)
	}
	files := binaryLogs(t, m)
	e.first = files[0]
	t.Logf("master before the workload: %s, gtid_binlog_pos %q", masterEnd(t, m), e.startGTID)

	mustExec(t, m, "CREATE DATABASE bench")
	mustExec(t, m, `CREATE TABLE bench.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL, ops INT NOT NULL,
		name VARCHAR(64) NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB`)
	mustExec(t, m, `CREATE TABLE bench.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL,
		amount DECIMAL(12,2) NOT NULL, status INT NOT NULL, payload VARCHAR(255) NOT NULL,
		created_at DATETIME(6) NOT NULL, KEY (account)) ENGINE=InnoDB`)
	mustExec(t, m, `CREATE TABLE bench.bulk (id INT PRIMARY KEY, k INT NOT NULL, v VARCHAR(100) NOT NULL,
		KEY (k)) ENGINE=InnoDB`)

	db, err := sql.Open("mysql", m.RootDSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)

	var rows atomic.Int64
	execRows := func(q string, args ...any) {
		t.Helper()
		res, err := db.ExecContext(ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := res.RowsAffected()
		rows.Add(n)
	}
	const accounts = 10000
	execRows(`INSERT INTO accounts (id, balance, ops, name, updated_at)
		SELECT seq, 1000, 0, CONCAT('account-', seq), NOW(6) FROM seq_1_to_10000`)

	began := time.Now()
	commits, err := oltp(ctx, db, total, accounts, &rows)
	if err != nil {
		t.Fatal(err)
	}
	oltpSecs := time.Since(began).Seconds()
	mid, err := m.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	if err != nil {
		t.Fatal(err)
	}
	if e.midSeq, err = gtidSeq(mid); err != nil {
		t.Fatal(err)
	}
	e.oltpRows = rows.Load()
	t.Logf("OLTP: %d transactions, %d rows in %.2f s on the master (%.0f commits/s)",
		commits, rows.Load()-accounts, oltpSecs, float64(commits)/oltpSecs)

	began = time.Now()
	execRows(`INSERT INTO bulk (id, k, v) SELECT seq, seq * 7 % 1000, MD5(seq) FROM seq_1_to_200000`)
	execRows(`UPDATE bulk SET k = k + 1, v = CONCAT('u', v) WHERE id <= 100000`)
	t.Logf("bulk: 200,000-row INSERT ... SELECT and 100,000-row UPDATE in %.2f s on the master", time.Since(began).Seconds())

	e.rows = rows.Load()
	if want := int64(accounts + 200000 + 100000); e.rows < want+int64(commits) {
		t.Fatalf("rows counted %d: fewer than the bulk part (%d) plus one per OLTP transaction (%d)", e.rows, want, commits)
	}
	e.end = masterEnd(t, m)
	if e.endGTID, err = m.QueryString(ctx, "SELECT @@gtid_binlog_pos"); err != nil {
		t.Fatal(err)
	}
	startSeq, err := gtidSeq(e.startGTID)
	if err != nil {
		t.Fatal(err)
	}
	endSeq, err := gtidSeq(e.endGTID)
	if err != nil {
		t.Fatal(err)
	}
	e.txns = endSeq - startSeq
	e.oltpTxns = e.midSeq - startSeq
	// 4 DDL statements, the preload, the OLTP commits and the bulk part.
	if want := int64(4 + 1 + commits + 2); e.txns != want {
		t.Fatalf("the master's binlog has %d GTIDs (%q to %q); the generator committed %d transactions", e.txns, e.startGTID, e.endGTID, want)
	}
	for _, f := range binaryLogs(t, m) {
		e.bytes += f.Size
	}
	e.sums = checksums(t, m)
	t.Logf("master tables: %v", e.sums)
}

// gtidSeq returns the sequence number of a single-domain gtid_binlog_pos
// (0 for an empty one).
func gtidSeq(pos string) (int64, error) {
	if pos == "" {
		return 0, nil
	}
	parts := strings.Split(pos, "-")
	if len(parts) != 3 || strings.Contains(pos, ",") {
		return 0, fmt.Errorf("gtid_binlog_pos %q: want one GTID D-S-N", pos)
	}
	return strconv.ParseInt(parts[2], 10, 64)
}

// oltp commits total transactions from 16 clients: single-row autocommit
// INSERTs, UPDATEs and DELETEs, and small multi-statement transactions
// (a transfer between two accounts plus an order row). Each client deletes
// and updates only orders it inserted, so every statement changes exactly
// the rows it names; rows counts them. It returns the commits.
func oltp(ctx context.Context, db *sql.DB, total, accounts int, rows *atomic.Int64) (int, error) {
	const clients = 16
	var wg sync.WaitGroup
	var commits atomic.Int64
	errs := make(chan error, clients)
	for c := range clients {
		n := total / clients
		if c < total%clients {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 42))
			var mine []int64 // ids of orders this client inserted and not deleted
			insert := func(ex interface {
				ExecContext(context.Context, string, ...any) (sql.Result, error)
			}) (int64, error) {
				res, err := ex.ExecContext(ctx, `INSERT INTO orders (account, amount, status, payload, created_at)
					VALUES (?, ?, 0, ?, NOW(6))`, rnd.IntN(accounts)+1, fmt.Sprintf("%d.%02d", rnd.IntN(10000), rnd.IntN(100)),
					strings.Repeat(string(rune('a'+c)), 20+rnd.IntN(120)))
				if err != nil {
					return 0, err
				}
				return res.LastInsertId()
			}
			for range n {
				var changed int64
				var err error
				switch r := rnd.IntN(100); {
				case r < 30 || (r < 55 && len(mine) == 0): // insert an order
					var id int64
					if id, err = insert(db); err == nil {
						mine = append(mine, id)
						changed = 1
					}
				case r < 45: // update one of my orders
					id := mine[rnd.IntN(len(mine))]
					changed, err = affected(db.ExecContext(ctx, "UPDATE orders SET status = status + 1, amount = amount + 1 WHERE id = ?", id))
				case r < 55: // delete one of my orders
					i := rnd.IntN(len(mine))
					changed, err = affected(db.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", mine[i]))
					mine[i] = mine[len(mine)-1]
					mine = mine[:len(mine)-1]
				case r < 75: // update an account
					changed, err = affected(db.ExecContext(ctx, "UPDATE accounts SET balance = balance + ?, ops = ops + 1, updated_at = NOW(6) WHERE id = ?",
						rnd.IntN(200)-100, rnd.IntN(accounts)+1))
				default: // a transfer: two account updates and an order, in one transaction
					var id int64
					changed, id, err = transfer(ctx, db, rnd, accounts, insert)
					if err == nil {
						mine = append(mine, id)
					}
				}
				if err != nil {
					errs <- err
					return
				}
				rows.Add(changed)
				commits.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return int(commits.Load()), <-errs
}

func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err == nil && n != 1 {
		err = fmt.Errorf("statement changed %d rows, want 1", n)
	}
	return n, err
}

// transfer moves money between two accounts (locked in id order) and
// records an order, in one transaction; it retries on deadlock or lock wait
// timeout. It returns the rows changed and the order's id.
func transfer(ctx context.Context, db *sql.DB, rnd *rand.Rand, accounts int,
	insert func(interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) (int64, error)) (int64, int64, error) {
	a, b := rnd.IntN(accounts)+1, rnd.IntN(accounts-1)+1
	if b >= a {
		b++
	}
	a, b = min(a, b), max(a, b)
	amount := rnd.IntN(100) + 1
	if rnd.IntN(2) == 0 {
		amount = -amount
	}
	for attempt := 1; ; attempt++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, 0, err
		}
		var id int64
		err = func() error {
			for _, st := range []struct {
				delta, id int
			}{{-amount, a}, {amount, b}} {
				if _, err := affected(tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + ?, ops = ops + 1, updated_at = NOW(6) WHERE id = ?", st.delta, st.id)); err != nil {
					return err
				}
			}
			var err error
			id, err = insert(tx)
			return err
		}()
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
		var me *mysql.MySQLError
		if err != nil && errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) && attempt < 10 {
			continue
		}
		return 3, id, err
	}
}

// tableSum is a table's row count and the sum of its rows' CRC32s.
type tableSum struct {
	Rows string
	Sum  string
}

// checksums returns COUNT(*) and SUM(CRC32(CONCAT_WS('#', every column)))
// of each table in database bench.
func checksums(t *testing.T, s *sandbox.Server) map[string]tableSum {
	t.Helper()
	out := map[string]tableSum{}
	for name, list := range columnLists(t, s) {
		m, err := row(s, fmt.Sprintf("SELECT COUNT(*) AS n, COALESCE(SUM(CRC32(CONCAT_WS('#', %s))), 0) AS crc FROM bench.`%s`", list, name))
		if err != nil || m == nil {
			t.Fatalf("checksum of bench.%s: %v", name, err)
		}
		out[name] = tableSum{Rows: m["n"], Sum: m["crc"]}
	}
	return out
}

// columnLists returns, for each table in database bench, its quoted
// columns in order, comma-separated.
func columnLists(t *testing.T, s *sandbox.Server) map[string]string {
	t.Helper()
	ctx := context.Background()
	rows, err := s.DB().QueryContext(ctx, `SELECT TABLE_NAME, GROUP_CONCAT(CONCAT('`+"`"+`', COLUMN_NAME, '`+"`"+`')
		ORDER BY ORDINAL_POSITION SEPARATOR ', ') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'bench'
		GROUP BY TABLE_NAME ORDER BY TABLE_NAME`)
	if err != nil {
		t.Fatal(err)
	}
	cols := map[string]string{}
	for rows.Next() {
		var name, list string
		if err := rows.Scan(&name, &list); err != nil {
			t.Fatal(err)
		}
		cols[name] = list
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	return cols
}

// diffTable shows where a table differs between the master and the
// standby: the ranges of 1,000 ids whose rows differ, then the first
// differing rows (CONCAT_WS('#', columns), by id) of the first such range.
func (e *applyEnv) diffTable(t *testing.T, name, table string, s *sandbox.Server) {
	t.Helper()
	for _, srv := range []*sandbox.Server{e.master, s} {
		var tbl, create string
		if err := srv.DB().QueryRow("SHOW CREATE TABLE bench.`"+table+"`").Scan(&tbl, &create); err != nil {
			t.Fatal(err)
		}
		who := "master"
		if srv == s {
			who = "standby"
		}
		t.Logf("%s: %s", who, create)
	}
	buckets := func(srv *sandbox.Server) map[string]string {
		list := columnLists(t, srv)[table]
		rows, err := srv.DB().Query(fmt.Sprintf("SELECT id DIV 1000, CONCAT(COUNT(*), '/', SUM(CRC32(CONCAT_WS('#', %s)))) FROM bench.`%s` GROUP BY 1", list, table))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var b, v string
			if err := rows.Scan(&b, &v); err != nil {
				t.Fatal(err)
			}
			out[b] = v
		}
		return out
	}
	mb, sb := buckets(e.master), buckets(s)
	var bad []int
	for b, v := range mb {
		if sb[b] != v {
			n, _ := strconv.Atoi(b)
			bad = append(bad, n)
		}
	}
	for b := range sb {
		if _, ok := mb[b]; !ok {
			n, _ := strconv.Atoi(b)
			bad = append(bad, n)
		}
	}
	slices.Sort(bad)
	var ranges []string
	for i, b := range bad {
		if i == 40 {
			ranges = append(ranges, fmt.Sprintf("... (%d ranges in all)", len(bad)))
			break
		}
		ranges = append(ranges, fmt.Sprintf("ids %d-%d: master %s, standby %s (rows/crc)", b*1000, b*1000+999, mb[strconv.Itoa(b)], sb[strconv.Itoa(b)]))
	}
	t.Errorf("DATA MISMATCH (%s): bench.%s differs in %d range(s) of 1,000 ids:\n%s", name, table, len(bad), strings.Join(ranges, "\n"))
	if len(bad) == 0 {
		return
	}
	fetch := func(srv *sandbox.Server) map[string]string {
		list := columnLists(t, srv)[table]
		rows, err := srv.DB().Query(fmt.Sprintf("SELECT id, CONCAT_WS('#', %s) FROM bench.`%s` WHERE id DIV 1000 = %d", list, table, bad[0]))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var id, v string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			out[id] = v
		}
		return out
	}
	mr, sr := fetch(e.master), fetch(s)
	var ids []int
	for id, v := range mr {
		if sr[id] != v {
			n, _ := strconv.Atoi(id)
			ids = append(ids, n)
		}
	}
	for id := range sr {
		if _, ok := mr[id]; !ok {
			n, _ := strconv.Atoi(id)
			ids = append(ids, n)
		}
	}
	slices.Sort(ids)
	var lines []string
	for i, id := range ids {
		if i == 8 {
			break
		}
		k := strconv.Itoa(id)
		lines = append(lines, fmt.Sprintf("id %d: master %q, standby %q", id, mr[k], sr[k]))
	}
	t.Logf("bench.%s ids %d-%d: %d differing rows, the first:\n%s", table, bad[0]*1000, bad[0]*1000+999, len(ids), strings.Join(lines, "\n"))
}

// sameData compares the standby's tables with the master's and reports every
// difference loudly.
func (e *applyEnv) sameData(t *testing.T, name string, s *sandbox.Server) bool {
	t.Helper()
	got := checksums(t, s)
	same := len(got) == len(e.sums)
	for table, want := range e.sums {
		if got[table] != want {
			same = false
			t.Errorf("DATA MISMATCH (%s): bench.%s on the standby: rows=%s crc=%s; on the master: rows=%s crc=%s",
				name, table, got[table].Rows, got[table].Sum, want.Rows, want.Sum)
			e.diffTable(t, name, table, s)
		}
	}
	for table := range got {
		if _, ok := e.sums[table]; !ok {
			same = false
			t.Errorf("DATA MISMATCH (%s): table bench.%s exists on the standby only", name, table)
		}
	}
	return same
}

// startStandby starts a fresh standby under dir with the sandbox's
// durability defaults and checks them.
func (e *applyEnv) startStandby(t *testing.T, dir string, extra ...string) *sandbox.Server {
	t.Helper()
	s := startServer(t, filepath.Dir(dir), filepath.Base(dir), 2, false, extra...)
	m, err := row(s, `SELECT @@sync_binlog AS sync_binlog, @@innodb_flush_log_at_trx_commit AS flush,
		@@log_slave_updates AS lsu, @@log_bin AS log_bin, @@binlog_format AS fmt, @@gtid_binlog_pos AS gtid,
		@@slave_parallel_threads AS threads, @@slave_parallel_mode AS mode`)
	if err != nil || m == nil {
		t.Fatalf("standby settings: %v", err)
	}
	if m["sync_binlog"] != "1" || m["flush"] != "1" || m["lsu"] != "1" || m["log_bin"] != "1" || m["fmt"] != "ROW" {
		t.Fatalf("standby settings %v: want sync_binlog=1, innodb_flush_log_at_trx_commit=1, log_slave_updates=ON, log_bin=ON, binlog_format=ROW", m)
	}
	if m["gtid"] != "" {
		t.Fatalf("fresh standby has gtid_binlog_pos %q, want empty", m["gtid"])
	}
	t.Logf("standby %s: sync_binlog=%s innodb_flush_log_at_trx_commit=%s log_slave_updates=%s log_bin=%s binlog_format=%s slave_parallel_threads=%s slave_parallel_mode=%s",
		filepath.Base(dir), m["sync_binlog"], m["flush"], m["lsu"], m["log_bin"], m["fmt"], m["threads"], m["mode"])
	return s
}

// dropStandby stops the standby and removes its files.
func dropStandby(t *testing.T, s *sandbox.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Logf("stopping the standby: %v", err)
	}
	os.RemoveAll(s.Dir())
}

// procCPU returns the user+system CPU seconds of process pid so far.
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading /proc/%d/stat: %v", pid, err)
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		t.Fatalf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return float64(utime+stime) / clockTicks
}

// serverCounters are the standby's counters read around a timed window.
type serverCounters struct {
	cpu          float64
	groupCommits int64
	fsyncs       int64
}

func readCounters(t *testing.T, s *sandbox.Server) serverCounters {
	t.Helper()
	return serverCounters{cpu: procCPU(t, s.PID()), groupCommits: statusInt(t, s, "Binlog_group_commits"),
		fsyncs: statusInt(t, s, "Innodb_data_fsyncs")}
}

// applierStatus is the "applier" object of the agent's /status.
type applierStatus struct {
	Applier *struct {
		State        string  `json:"state"`
		Transactions *uint64 `json:"transactions_applied"`
		LastError    string  `json:"last_error"`
		FailedGTID   string  `json:"failed_gtid"`
	} `json:"applier"`
	Applied *struct {
		GTID string `json:"gtid"`
	} `json:"applied"`
}

func (p *agentProc) applierStatus() (applierStatus, error) {
	resp, err := statusClient.Get("http://" + p.listen + "/status")
	if err != nil {
		return applierStatus{}, err
	}
	defer resp.Body.Close()
	var st applierStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return applierStatus{}, fmt.Errorf("status endpoint: %w", err)
	}
	return st, nil
}

// runAgent lets an agent without a standby receive the whole binlog into its
// relay log, stops it, and starts it again with a [standby] section naming a
// fresh standby in apply mode mode ("direct", or "replica" with 4 threads):
// timed from that process's start until the standby's gtid_binlog_pos (and,
// in replica mode, gtid_slave_pos) equals the master's.
func (e *applyEnv) runAgent(t *testing.T, dir, mode string) applyRun {
	t.Helper()
	agentDir := filepath.Join(dir, "agent")
	if err := os.MkdirAll(agentDir, 0o700); err != nil {
		t.Fatal(err)
	}
	spec := agentSpec{Dir: agentDir, Master: e.master, Password: e.password, ServerID: 9001,
		Start: "file:" + e.first.Name + ":4", SemiSync: false}
	p := startAgent(t, e.bin, spec)
	p.waitStatus(t, "the agent to receive up to "+e.end.String(), 10*time.Minute, 20*time.Millisecond,
		func(st agentStatus) bool { return st.at(e.end) })
	t.Logf("agent: relay complete after %.2f s", time.Since(p.started).Seconds())
	p.stop(t)
	p.reviewLog(t, "apply-ingest-"+filepath.Base(dir))

	standby := e.startStandby(t, filepath.Join(dir, "standby"))
	defer dropStandby(t, standby)
	if err := standby.CreateUser(context.Background(), "applier", e.password, "ALL PRIVILEGES"); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(agentDir, "standby.pw")
	if err := os.WriteFile(pwFile, []byte(e.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec.Extra = standbySection(standby.Port(), pwFile, mode)
	name, other := applierAgent, "@@gtid_binlog_pos"
	if mode == "replica" {
		name, other = applierAgentReplica, "@@gtid_slave_pos"
	}

	syncDisks()
	c0 := readCounters(t, standby)
	com0 := comCounters(t, standby)
	p = startAgent(t, e.bin, spec)
	var firstApplying time.Duration
	var last applierStatus
	var midAgentCPU, midServerCPU float64
	polls := 0
	// In replica mode the agent restarts an IO thread stopped on an error:
	// such an error is not the run's end.
	watch := &slaveWatch{e: e, s: standby, start: p.started}
	firstSecs, midSecs, secs := e.waitApplied(t, standby, p.started, other, func() {
		midAgentCPU, midServerCPU = procCPU(t, p.Pid()), procCPU(t, standby.PID())-c0.cpu
	}, func() error {
		if p.Exited() {
			return fmt.Errorf("agent exited (%v); log:\n%s", p.Err(), p.LogTail(30))
		}
		if mode == "replica" {
			if err := watch.poll(); err != nil {
				return fmt.Errorf("%w\nagent log:\n%s", err, p.LogTail(30))
			}
		}
		// /status every 100 ms, as SHOW SLAVE STATUS for the native runs.
		if polls++; polls%10 != 1 {
			return nil
		}
		st, err := p.applierStatus()
		if err != nil || st.Applier == nil {
			return nil
		}
		last = st
		if firstApplying == 0 && (st.Applier.State == "applying" || (mode == "replica" && st.Applier.State == "waiting")) {
			firstApplying = time.Since(p.started)
		}
		if st.Applier.State == "error" {
			return fmt.Errorf("APPLY ERROR: applier.state=error, failed GTID %s, last_error: %s\nagent log:\n%s",
				st.Applier.FailedGTID, st.Applier.LastError, p.LogTail(30))
		}
		return nil
	})
	agentCPU := procCPU(t, p.Pid())
	c1 := readCounters(t, standby)
	com1 := comCounters(t, standby)
	settings := parallelSettings(t, standby)
	watch.finish(secs)
	if mode == "direct" {
		// The standby's gtid_binlog_pos moves when a transaction is in its
		// binlog, a moment before InnoDB makes it visible; the agent's
		// applied frontier moves once COMMIT has returned. Compare the
		// data after that (untimed), as the agent tests do.
		harness.Poll(t, "the agent's applied frontier to reach "+e.endGTID, time.Minute, 10*time.Millisecond, func() (bool, error) {
			st, err := p.applierStatus()
			return err == nil && st.Applied != nil && st.Applied.GTID == e.endGTID, nil
		})
	}
	rss := p.peakRSS(t)
	if st, err := p.applierStatus(); err == nil {
		last = st
	}
	p.stop(t)
	if last.Applier != nil {
		t.Logf("agent: applier state %s, %d transactions applied; first seen applying %.3f s after the process started",
			last.Applier.State, u64(last.Applier.Transactions), firstApplying.Seconds())
	}
	var coms []string
	for _, k := range slices.Sorted(maps.Keys(com1)) {
		if d := com1[k] - com0[k]; d != 0 {
			coms = append(coms, fmt.Sprintf("%s %d (%.2f per transaction)", k, d, float64(d)/float64(e.txns)))
		}
	}
	t.Logf("agent: statements the standby executed while it applied: %s", strings.Join(coms, ", "))
	if mode == "replica" {
		t.Logf("agent replica mode: SQL thread running %.3f s, first transaction applied %.3f s, IO thread received all %.2f s, all applied %.2f s after the process started; Slave_retried_transactions %d; %s",
			watch.sqlRunning, firstSecs, watch.ioDone, secs, statusInt(t, standby, "Slave_retried_transactions"), settings)
	}
	if n := p.reviewLog(t, "apply-"+filepath.Base(dir)); n > 0 {
		t.Logf("agent apply run: %d log lines above INFO", n)
	}
	return applyRun{secs: secs, midSecs: midSecs, midAgentCPU: midAgentCPU, midServerCPU: midServerCPU,
		startup: firstApplying.Seconds(), agentCPU: agentCPU, serverCPU: c1.cpu - c0.cpu, rss: rss,
		groupCommits: c1.groupCommits - c0.groupCommits, fsyncs: c1.fsyncs - c0.fsyncs,
		sqlRunning: watch.sqlRunning, firstApplied: firstSecs, ioDone: watch.ioDone, settings: settings,
		same: e.sameData(t, name, standby)}
}

// runNative points a fresh standby at the master's first file, lets its IO
// thread read everything, then times its SQL thread (threads parallel
// workers, optimistic; 0 for serial) from START SLAVE SQL_THREAD until its
// gtid_binlog_pos equals the master's.
func (e *applyEnv) runNative(t *testing.T, dir string, threads int) applyRun {
	t.Helper()
	name := applierNativeSerial
	extra := []string{"slave_parallel_threads=0"}
	if threads > 0 {
		name = applierNativeParallel
		extra = []string{fmt.Sprintf("slave_parallel_threads=%d", threads), "slave_parallel_mode=optimistic"}
	}
	r := e.startStandby(t, filepath.Join(dir, "standby"), extra...)
	defer dropStandby(t, r)
	mustExec(t, r, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_LOG_FILE=?, MASTER_LOG_POS=4, MASTER_USE_GTID=no`, e.master.Port(), replUser, e.password, e.first.Name)
	began := time.Now()
	mustExec(t, r, "START SLAVE IO_THREAD")
	harness.Poll(t, "the native replica to read up to "+e.end.String(), 10*time.Minute, 20*time.Millisecond, func() (bool, error) {
		m, err := row(r, "SHOW SLAVE STATUS")
		if err != nil || m == nil {
			return false, err
		}
		if m["Last_IO_Errno"] != "0" {
			return false, fmt.Errorf("IO thread error %s: %s", m["Last_IO_Errno"], m["Last_IO_Error"])
		}
		return m["Master_Log_File"] == e.end.File && m["Read_Master_Log_Pos"] == strconv.FormatUint(e.end.Pos, 10), nil
	})
	t.Logf("%s: relay complete after %.2f s", name, time.Since(began).Seconds())

	syncDisks()
	c0 := readCounters(t, r)
	start := time.Now()
	mustExec(t, r, "START SLAVE SQL_THREAD")
	polls := 0
	var midServerCPU float64
	firstSecs, midSecs, secs := e.waitApplied(t, r, start, "@@gtid_slave_pos", func() {
		midServerCPU = procCPU(t, r.PID()) - c0.cpu
	}, func() error {
		if polls++; polls%10 != 0 {
			return nil
		}
		return sqlThreadError(r)
	})
	c1 := readCounters(t, r)
	settings := parallelSettings(t, r)
	mustExec(t, r, "STOP SLAVE")
	return applyRun{secs: secs, midSecs: midSecs, midServerCPU: midServerCPU, serverCPU: c1.cpu - c0.cpu,
		groupCommits: c1.groupCommits - c0.groupCommits, fsyncs: c1.fsyncs - c0.fsyncs,
		firstApplied: firstSecs, settings: settings, same: e.sameData(t, name, r)}
}

// runNativeReplica is the native counterpart of replica mode: a fresh
// standby with 4 optimistic threads replicates from the master itself, as
// the agent's replica mode has it replicate from the agent (GTID mode from
// its gtid_slave_pos, MASTER_CONNECT_RETRY=1, a 1 s heartbeat), timed from
// START SLAVE (IO and SQL threads together) until its gtid_binlog_pos and
// gtid_slave_pos equal the master's.
func (e *applyEnv) runNativeReplica(t *testing.T, dir string) applyRun {
	t.Helper()
	// read_only as the agent keeps its standby.
	r := e.startStandby(t, filepath.Join(dir, "standby"), "slave_parallel_threads=4", "slave_parallel_mode=optimistic", "read_only=ON")
	defer dropStandby(t, r)
	if e.startGTID != "" {
		// The agent's relay log begins with the workload; so does this.
		mustExec(t, r, "SET GLOBAL gtid_slave_pos = ?", e.startGTID)
	}
	// MASTER_HEARTBEAT_PERIOD: the agent passes its [master] heartbeat (1 s
	// by default) to the standby.
	mustExec(t, r, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=1.000`, e.master.Port(), replUser, e.password)

	syncDisks()
	c0 := readCounters(t, r)
	start := time.Now()
	mustExec(t, r, "START SLAVE")
	watch := &slaveWatch{e: e, s: r, start: start, ioErrors: true}
	var midServerCPU float64
	firstSecs, midSecs, secs := e.waitApplied(t, r, start, "@@gtid_slave_pos", func() {
		midServerCPU = procCPU(t, r.PID()) - c0.cpu
	}, watch.poll)
	c1 := readCounters(t, r)
	settings := parallelSettings(t, r)
	watch.finish(secs)
	mustExec(t, r, "STOP SLAVE")
	t.Logf("%s: SQL thread running %.3f s, first transaction applied %.3f s, IO thread received all %.2f s, all applied %.2f s after START SLAVE; Slave_retried_transactions %d; %s",
		applierNativeReplica, watch.sqlRunning, firstSecs, watch.ioDone, secs, statusInt(t, r, "Slave_retried_transactions"), settings)
	return applyRun{secs: secs, midSecs: midSecs, midServerCPU: midServerCPU, serverCPU: c1.cpu - c0.cpu,
		groupCommits: c1.groupCommits - c0.groupCommits, fsyncs: c1.fsyncs - c0.fsyncs,
		sqlRunning: watch.sqlRunning, firstApplied: firstSecs, ioDone: watch.ioDone, settings: settings,
		same: e.sameData(t, applierNativeReplica, r)}
}

// slaveWatch follows a replicating standby's SHOW SLAVE STATUS during a
// timed run: at every poll until its SQL thread runs (the standby is idle
// until then), then at every 10th (as the native runs' error check), and
// records when the SQL thread first ran and when the IO thread had
// received everything, in seconds since start.
type slaveWatch struct {
	e        *applyEnv
	s        *sandbox.Server
	start    time.Time
	ioErrors bool // an IO thread error ends the run (replica mode: the agent starts the IO thread again)
	polls    int

	sqlRunning, ioDone float64
}

func (w *slaveWatch) poll() error {
	if w.polls++; w.sqlRunning != 0 && w.polls%10 != 0 {
		return nil
	}
	m, err := row(w.s, "SHOW SLAVE STATUS")
	if err != nil || m == nil {
		return err
	}
	now := time.Since(w.start).Seconds()
	if m["Last_SQL_Errno"] != "0" {
		return fmt.Errorf("SQL thread error %s: %s", m["Last_SQL_Errno"], m["Last_SQL_Error"])
	}
	if w.ioErrors && m["Last_IO_Errno"] != "0" {
		return fmt.Errorf("IO thread error %s: %s", m["Last_IO_Errno"], m["Last_IO_Error"])
	}
	if w.sqlRunning == 0 && m["Slave_SQL_Running"] == "Yes" {
		w.sqlRunning = now
	}
	if w.ioDone == 0 && (m["Gtid_IO_Pos"] == w.e.endGTID ||
		(m["Master_Log_File"] == w.e.end.File && m["Read_Master_Log_Pos"] == strconv.FormatUint(w.e.end.Pos, 10))) {
		w.ioDone = now
	}
	return nil
}

// finish fills in what the polls missed, the run having applied
// everything after end seconds: by then the IO thread had received it all
// and the SQL thread had run.
func (w *slaveWatch) finish(end float64) {
	if w.ioDone == 0 {
		w.ioDone = end
	}
	if w.sqlRunning == 0 {
		w.sqlRunning = end
	}
}

// parallelSettings returns the standby's settings that shape parallel
// replication and its commits, as name=value pairs.
func parallelSettings(t *testing.T, s *sandbox.Server) string {
	t.Helper()
	names := []string{"slave_parallel_mode", "slave_parallel_threads", "slave_domain_parallel_threads",
		"slave_parallel_max_queued", "slave_transaction_retries", "binlog_commit_wait_count", "binlog_commit_wait_usec",
		"sync_binlog", "innodb_flush_log_at_trx_commit", "log_slave_updates", "sync_relay_log", "sync_relay_log_info",
		"sync_master_info", "gtid_strict_mode"}
	var cols []string
	for _, n := range names {
		cols = append(cols, "@@GLOBAL."+n+" AS "+n)
	}
	m, err := row(s, "SELECT "+strings.Join(cols, ", "))
	if err != nil || m == nil {
		t.Fatalf("standby settings: %v", err)
	}
	var out []string
	for _, n := range names {
		out = append(out, n+"="+m[n])
	}
	return strings.Join(out, " ")
}

// waitApplied polls the standby every 10 ms until both its @@gtid_binlog_pos
// and other (a second GTID variable, or the same) equal the master's end,
// calling check on each poll (an error fails the test), and atMid once when
// gtid_binlog_pos first holds the last OLTP transaction. It returns the
// seconds since start until gtid_binlog_pos first held a transaction of the
// workload, until it held the last OLTP one, and until the end.
func (e *applyEnv) waitApplied(t *testing.T, s *sandbox.Server, start time.Time, other string, atMid func(), check func() error) (first, mid, end float64) {
	t.Helper()
	q := "SELECT @@gtid_binlog_pos AS b, " + other + " AS o"
	harness.Poll(t, "the standby to reach "+e.endGTID, 30*time.Minute, 10*time.Millisecond, func() (bool, error) {
		if err := check(); err != nil {
			return false, err
		}
		m, err := row(s, q)
		if err != nil || m == nil {
			return false, err
		}
		now := time.Since(start).Seconds()
		if first == 0 && m["b"] != "" && m["b"] != e.startGTID {
			first = now
		}
		if mid == 0 {
			if seq, err := gtidSeq(m["b"]); err == nil && seq >= e.midSeq {
				mid = now
				atMid()
			}
		}
		if m["b"] == e.endGTID && m["o"] == e.endGTID {
			end = now
			return true, nil
		}
		return false, nil
	})
	return first, mid, end
}

// sourceState names the source the agent is built from: the commit, and
// when the working tree differs from it outside bench/, the changed files
// and a digest of the difference.
func sourceState() string {
	git := func(args ...string) string {
		out, err := exec.Command("git", args...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(out))
	}
	head := git("rev-parse", "--short", "HEAD")
	var changed []string
	for _, line := range strings.Split(git("status", "--porcelain", "--", "..", ":!../bench"), "\n") {
		if line != "" {
			changed = append(changed, strings.TrimSpace(line))
		}
	}
	if len(changed) == 0 {
		return "commit " + head + ", clean outside bench/"
	}
	diff, _ := exec.Command("git", "diff", "HEAD", "--", "..", ":!../bench").Output()
	sum := sha256.Sum256(diff)
	return fmt.Sprintf("commit %s plus uncommitted changes [%s] (git diff HEAD sha256 %x)", head, strings.Join(changed, ", "), sum[:6])
}

// comCounters returns the standby's statement counters: Questions and
// every non-zero Com_% status variable.
func comCounters(t *testing.T, s *sandbox.Server) map[string]int64 {
	t.Helper()
	rows, err := s.DB().Query("SHOW GLOBAL STATUS WHERE Variable_name = 'Questions' OR Variable_name LIKE 'Com\\_%'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n != 0 {
			out[k] = n
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// standbySection is the agent's [standby] section for a standby on this
// host, in the given apply mode (replica mode with 4 threads).
func standbySection(port int, pwFile, mode string) string {
	return fmt.Sprintf(`
[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q
mode = %q
parallel_threads = 4
`, port, pwFile, mode)
}
