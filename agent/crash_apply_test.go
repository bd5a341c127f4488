package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// randomWork runs a mixed workload on the master until ctx ends: inserts,
// updates and deletes over many column types, multi-table transactions, and
// duplicate rows in a table without a primary key.
func (e *testEnv) randomWork(ctx context.Context, clients int) error {
	db, err := sql.Open("mysql", e.master.RootDSN("test"))
	if err != nil {
		return err
	}
	defer db.Close()
	stmts := []func(r *rand.Rand) []string{
		func(r *rand.Rand) []string {
			return []string{fmt.Sprintf("INSERT INTO wide (u, s, d, f, b, vb, dt, tm, bits, e, st, j, txt, l) VALUES (%d, %d, %d.%09d, %g, UNHEX('%x'), UNHEX('%x00'), NOW(6) - INTERVAL %d SECOND, '-%d:%02d:%02d.%06d', %d, '%s', '%s', '{\"n\": %d, \"a\": [%d, \"😀\"]}', '%s', 'é%d')",
				r.Uint64(), r.Int64(), r.Int64N(1e12)-5e11, r.IntN(1e9), r.NormFloat64()*1e100, r.Uint32(), r.Uint32(), r.IntN(1e8), r.IntN(838), r.IntN(60), r.IntN(60), r.IntN(1e6),
				r.Uint64()>>1, []string{"a", "b"}[r.IntN(2)], []string{"", "x", "y", "x,y"}[r.IntN(4)], r.IntN(1000), r.IntN(1000), strings.Repeat("ü", r.IntN(200)), r.IntN(100))}
		},
		func(r *rand.Rand) []string {
			return []string{fmt.Sprintf("UPDATE wide SET s = s DIV 2, txt = CONCAT(IFNULL(txt,''), 'ø'), j = JSON_SET(IFNULL(j,'{}'), '$.u', %d) WHERE id %% 7 = %d LIMIT 3", r.IntN(100), r.IntN(7))}
		},
		func(r *rand.Rand) []string {
			return []string{fmt.Sprintf("DELETE FROM wide WHERE id %% 11 = %d LIMIT 1", r.IntN(11))}
		},
		func(r *rand.Rand) []string {
			v := r.IntN(5)
			return []string{"BEGIN", fmt.Sprintf("INSERT INTO nopk VALUES (%d, 'dup'), (%d, 'dup')", v, v),
				fmt.Sprintf("INSERT INTO t (c, payload) VALUES (%d, REPEAT('p', %d))", v, r.IntN(200)),
				fmt.Sprintf("DELETE FROM nopk WHERE a = %d LIMIT 1", (v+1)%5), "COMMIT"}
		},
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(i), 42))
			conn, err := db.Conn(ctx)
			if err != nil {
				return
			}
			defer conn.Close()
			for ctx.Err() == nil {
				for _, q := range stmts[r.IntN(len(stmts))](r) {
					if _, err := conn.ExecContext(ctx, q); err != nil {
						var me *mysql.MySQLError
						if errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205) {
							conn.ExecContext(ctx, "ROLLBACK") // a deadlock on the master: the client retries
							break
						}
						if ctx.Err() == nil {
							errs <- fmt.Errorf("%s: %w", q, err)
						}
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// TestApplyExactlyOnceUnderCrashes: while clients write a mixed workload, the
// agent is killed (kill -9) 20 times and the standby's mariadbd 5 times; in
// the end the standby holds exactly the master's rows and GTIDs, and no apply
// error ever happened. In both apply modes: direct (the agent's applier) and
// replica (the standby's 4 optimistic threads behind the agent's binlog
// server).
func TestApplyExactlyOnceUnderCrashes(t *testing.T) {
	for _, mode := range []string{ModeDirect, ModeReplica} {
		t.Run(mode, func(t *testing.T) { testApplyExactlyOnceUnderCrashes(t, mode) })
	}
}

// withStandbyIn is withStandby in the given apply mode (replica: 4 threads).
func (e *testEnv) withStandbyIn(mode string) *sandbox.Server {
	if mode == ModeReplica {
		return e.withReplicaStandby()
	}
	return e.withStandbyMode(ModeDirect)
}

// applyErrors returns the lines of an agent log that report an apply error,
// in either mode.
func applyErrors(log string) string {
	var out []string
	for _, sub := range []string{"applier stopped", "skip the transaction explicitly"} {
		if l := grepLines(log, sub); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func testApplyExactlyOnceUnderCrashes(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyIn(mode)
	e.exec("CREATE TABLE test.wide (id BIGINT AUTO_INCREMENT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, d DECIMAL(65,30), f DOUBLE, b BINARY(8), vb VARBINARY(20), dt DATETIME(6), tm TIME(6), bits BIT(64), e ENUM('a','b'), st SET('x','y'), j JSON, txt TEXT CHARACTER SET utf8mb4, l VARCHAR(10) CHARACTER SET latin1, v BIGINT AS (id * 2) VIRTUAL)")
	e.exec("CREATE TABLE test.nopk (a INT, b VARCHAR(10))")
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var workErr error
	wg.Add(1)
	go func() { defer wg.Done(); workErr = e.randomWork(ctx, 8) }()
	standbyKills := 0
	killedAt := map[string]bool{} // the standby's positions at the agent's kills
	for i := range 20 {
		time.Sleep(time.Duration(150+rand.IntN(350)) * time.Millisecond)
		if pos, _ := standby.QueryString(context.Background(), "SELECT @@gtid_binlog_pos"); pos != "" {
			killedAt[pos] = true
		}
		p.kill()
		if i%4 == 1 {
			if err := standby.Kill(); err != nil {
				t.Fatal(err)
			}
			standbyKills++
			if err := standby.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		p.start()
	}
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if workErr != nil {
		t.Fatal(workErr)
	}
	e.waitApplied(standby, 120*time.Second)
	for _, tc := range []struct{ table, order string }{{"test.wide", "id"}, {"test.nopk", "a, b"}, {"test.t", "id"}} {
		m, s := tableRows(t, e.master, tc.table, tc.order), tableRows(t, standby, tc.table, tc.order)
		if !reflect.DeepEqual(m, s) {
			t.Fatalf("%s differs after the crashes: master %d rows, standby %d rows", tc.table, len(m), len(s))
		}
	}
	if rep, err := status.Get(context.Background(), e.config().StatusSource()); err != nil || rep.Applier == nil || rep.Applier.LastError != "" || rep.Applier.FailedGTID != "" {
		t.Fatalf("status after the crashes: %v %+v", err, rep.Applier)
	}
	p.kill()
	log := readFile(t, p.LogPath)
	if l := applyErrors(log); l != "" {
		t.Fatalf("an apply error happened during the crashes:\n%s", l)
	}
	if mode == ModeReplica {
		// The standby's own record: no SQL thread error, its binlog and
		// gtid_slave_pos carry exactly the master's GTIDs.
		for _, v := range []string{"@@gtid_binlog_pos", "@@gtid_slave_pos"} {
			want, _ := e.master.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
			if got, _ := standby.QueryString(context.Background(), "SELECT "+v); got != want {
				t.Fatalf("standby %s = %q, master gtid_binlog_pos %q", v, got, want)
			}
		}
	}
	n, _ := e.master.QueryString(context.Background(), "SELECT COUNT(*) FROM test.wide")
	gtid, _ := e.master.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
	t.Logf("%s mode: 20 agent kills (the standby at %d different positions), %d standby kills; master at %s; %s rows in test.wide identical on both",
		mode, len(killedAt), standbyKills, gtid, n)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
