package applier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/sandbox"
)

// TestBenchDirectApply measures the applier alone, in this process, on
// recorded OLTP transactions: wall time and this process's CPU per
// transaction (the test's own goroutines are idle while it applies), and the
// standby's mariadbd CPU. HOTSTANDBY_BENCH=1 runs it; HOTSTANDBY_BENCH_TXNS
// sets the number of transactions (5000); HOTSTANDBY_CPUPROFILE=FILE writes
// a CPU profile of the apply only; HOTSTANDBY_BENCH_SOCKET=1 connects to the
// standby over its unix socket instead of TCP. Run it alone (flock
// /tmp/hotstandby-bench.lock): its numbers are the machine's.
func TestBenchDirectApply(t *testing.T) {
	if os.Getenv("HOTSTANDBY_BENCH") == "" {
		t.Skip("set HOTSTANDBY_BENCH=1")
	}
	total := 5000
	if s := os.Getenv("HOTSTANDBY_BENCH_TXNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("HOTSTANDBY_BENCH_TXNS=%q: want a positive integer", s)
		}
		total = n
	}
	master := startServer(t, 1)
	recordOLTP(t, master, total)
	rl := copyRelay(t, master)
	standby := startServer(t, 2)

	var prof *os.File
	if path := os.Getenv("HOTSTANDBY_CPUPROFILE"); path != "" {
		var err error
		if prof, err = os.Create(path); err != nil {
			t.Fatal(err)
		}
		defer prof.Close()
	}
	cpu0, srv0 := selfCPU(t), processCPU(t, standby.PID())
	if prof != nil {
		if err := pprof.StartCPUProfile(prof); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	dsn, via := standbyDSN(standby), "TCP "+standby.Addr()
	if os.Getenv("HOTSTANDBY_BENCH_SOCKET") != "" {
		dsn, via = "root@unix("+standby.Socket()+")/", "unix socket"
	}
	a, stop := runApplier(t, Config{DSN: dsn, RelayDir: rl.dir}, newFixedSource(rl.end))
	st := waitCaughtUp(t, a, rl.end, 30*time.Minute)
	wall := time.Since(began)
	if prof != nil {
		pprof.StopCPUProfile()
	}
	cpu, srv := selfCPU(t)-cpu0, processCPU(t, standby.PID())-srv0
	stop()
	n := float64(len(rl.txns))
	if st.Transactions != uint64(len(rl.txns)) {
		t.Fatalf("applied %d transactions, the relay log has %d", st.Transactions, len(rl.txns))
	}
	for _, table := range []string{"bench.accounts", "bench.orders"} {
		if m, s := tableDigest(t, master, table), tableDigest(t, standby, table); m != s {
			t.Fatalf("%s differs: master checksum %s, standby %s", table, m, s)
		}
	}
	if m, s := queryString(t, master, "SELECT @@gtid_binlog_pos"), queryString(t, standby, "SELECT @@gtid_binlog_pos"); m != s {
		t.Fatalf("gtid_binlog_pos: master %s, standby %s", m, s)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("direct apply over %s of %d transactions: %.2f s, %.0f txns/s, wall %.3f ms/txn, agent CPU %.3f ms/txn, standby mariadbd CPU %.3f ms/txn; load %s",
		via, len(rl.txns), wall.Seconds(), n/wall.Seconds(), wall.Seconds()*1000/n, cpu*1000/n, srv*1000/n, load)
}

// recordOLTP runs total small transactions on the master from 8 clients:
// single-row INSERTs, UPDATEs and DELETEs, and 3-row transfers, as the
// bench package's OLTP part.
func recordOLTP(t testing.TB, m *sandbox.Server, total int) {
	t.Helper()
	mustExec(t, m, "CREATE DATABASE bench")
	mustExec(t, m, `CREATE TABLE bench.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL, ops INT NOT NULL,
		name VARCHAR(64) NOT NULL, updated_at DATETIME(6) NOT NULL) ENGINE=InnoDB`)
	mustExec(t, m, `CREATE TABLE bench.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, account INT NOT NULL,
		amount DECIMAL(12,2) NOT NULL, status INT NOT NULL, payload VARCHAR(255) NOT NULL,
		created_at DATETIME(6) NOT NULL, KEY (account)) ENGINE=InnoDB`)
	const accounts = 1000
	mustExec(t, m, `INSERT INTO bench.accounts SELECT seq, 1000, 0, CONCAT('account-', seq), NOW(6) FROM bench.seq_1_to_1000`)
	db, err := sql.Open("mysql", m.RootDSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const clients = 8
	db.SetMaxOpenConns(clients)
	db.SetMaxIdleConns(clients)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(c), 7))
			var mine []int64
			for range total / clients {
				if err := oltpTxn(ctx, db, rnd, accounts, c, &mine); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// oltpTxn commits one transaction of the mix; mine holds the ids of the
// orders this client inserted and has not deleted.
func oltpTxn(ctx context.Context, db *sql.DB, rnd *rand.Rand, accounts, c int, mine *[]int64) error {
	insert := func(ex interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}) error {
		res, err := ex.ExecContext(ctx, `INSERT INTO orders (account, amount, status, payload, created_at) VALUES (?, ?, 0, ?, NOW(6))`,
			rnd.IntN(accounts)+1, fmt.Sprintf("%d.%02d", rnd.IntN(10000), rnd.IntN(100)), strings.Repeat(string(rune('a'+c)), 20+rnd.IntN(120)))
		if err == nil {
			var id int64
			id, err = res.LastInsertId()
			*mine = append(*mine, id)
		}
		return err
	}
	switch r := rnd.IntN(100); {
	case r < 30 || (r < 55 && len(*mine) == 0):
		return insert(db)
	case r < 45:
		_, err := db.ExecContext(ctx, "UPDATE orders SET status = status + 1, amount = amount + 1 WHERE id = ?", (*mine)[rnd.IntN(len(*mine))])
		return err
	case r < 55:
		i := rnd.IntN(len(*mine))
		_, err := db.ExecContext(ctx, "DELETE FROM orders WHERE id = ?", (*mine)[i])
		(*mine)[i] = (*mine)[len(*mine)-1]
		*mine = (*mine)[:len(*mine)-1]
		return err
	case r < 75:
		_, err := db.ExecContext(ctx, "UPDATE accounts SET balance = balance + ?, ops = ops + 1, updated_at = NOW(6) WHERE id = ?", rnd.IntN(200)-100, rnd.IntN(accounts)+1)
		return err
	}
	a, b := rnd.IntN(accounts)+1, rnd.IntN(accounts)+1
	if a == b {
		b = a%accounts + 1
	}
	a, b = min(a, b), max(a, b)
	for attempt := 1; ; attempt++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		err = func() error {
			for _, id := range []int{a, b} {
				if _, err := tx.ExecContext(ctx, "UPDATE accounts SET balance = balance + 1, ops = ops + 1, updated_at = NOW(6) WHERE id = ?", id); err != nil {
					return err
				}
			}
			return insert(tx)
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
		return err
	}
}

// selfCPU returns this process's user+system CPU seconds.
func selfCPU(t testing.TB) float64 {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// processCPU returns the user+system CPU seconds of process pid.
func processCPU(t testing.TB, pid int) float64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q %q", pid, f[11], f[12])
	}
	return float64(ut+st) / 100 // USER_HZ
}
