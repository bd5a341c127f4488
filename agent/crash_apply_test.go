package agent

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// randomWork runs a mixed workload on the master until ctx ends: inserts,
// updates and deletes over many column types, multi-table transactions, and
// duplicate rows in a table without a primary key.
//
// It returns once the master has finished every statement its clients sent:
// a client whose context ends leaves its statement running on the master,
// and a commit there may still wait for its semi-sync ACK, in the master's
// binlog and gtid_binlog_pos but not yet visible in its tables, while the
// standby already shows it (AFTER_SYNC; TestApplyEqualWhileACommitWaitsForItsACK).
// A comparison of the rows made before then sees a difference that is not
// one.
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
	var idMu sync.Mutex
	var ids []string // the clients' connection ids on the master
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
			var id string
			if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
				return
			}
			idMu.Lock()
			ids = append(ids, id)
			idMu.Unlock()
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
	db.Close()
	if err := e.waitThreadsEnded(ids, 60*time.Second); err != nil {
		return err
	}
	return <-errs
}

// waitThreadsEnded waits until none of the master's threads ids is left: a
// thread ends only after its last statement (a commit waiting for its ACK
// included) has finished and its client is gone. A master that does not
// answer has no thread left either.
func (e *testEnv) waitThreadsEnded(ids []string, d time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	q := "SELECT GROUP_CONCAT(CONCAT(id, ' ', command, ' ', IFNULL(state, ''), ' ', LEFT(IFNULL(info, ''), 60)) SEPARATOR '; ') FROM information_schema.processlist WHERE id IN (" + strings.Join(ids, ",") + ")"
	deadline := time.Now().Add(d)
	for {
		left, err := e.master.QueryString(context.Background(), q)
		if err != nil || left == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the master still runs the statements of the workload's clients after %s: %s", d, left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// createWorkTables creates the tables randomWork writes besides test.t.
func (e *testEnv) createWorkTables() {
	e.exec("CREATE TABLE test.wide (id BIGINT AUTO_INCREMENT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, d DECIMAL(65,30), f DOUBLE, b BINARY(8), vb VARBINARY(20), dt DATETIME(6), tm TIME(6), bits BIT(64), e ENUM('a','b'), st SET('x','y'), j JSON, txt TEXT CHARACTER SET utf8mb4, l VARCHAR(10) CHARACTER SET latin1, v BIGINT AS (id * 2) VIRTUAL)")
	e.exec("CREATE TABLE test.nopk (a INT, b VARCHAR(10))")
}

// compareWorkTables fails the test unless the tables randomWork writes hold
// the same rows on the master and the standby. On a difference it logs the
// rows on one side only and, for test.wide, every event of the master's
// binlog, the relay log and the standby's binlog that wrote such a row, with
// its GTID: the transaction that is doubled, missing or not yet visible.
func (e *testEnv) compareWorkTables(standby *sandbox.Server, when string) {
	e.t.Helper()
	for _, tc := range []struct{ table, order string }{{"test.wide", "id"}, {"test.nopk", "a, b"}, {"test.t", "id"}} {
		m, s := tableRows(e.t, e.master, tc.table, tc.order), tableRows(e.t, standby, tc.table, tc.order)
		if !reflect.DeepEqual(m, s) {
			e.diagnoseDifference(standby, tc.table, m, s)
			e.t.Fatalf("%s differs %s: master %d rows, standby %d rows", tc.table, when, len(m), len(s))
		}
	}
}

// diagnoseDifference logs what differs between the master's rows m and the
// standby's rows s of table, and where the differing rows of test.wide came
// from.
func (e *testEnv) diagnoseDifference(standby *sandbox.Server, table string, m, s []string) {
	e.t.Helper()
	ctx := context.Background()
	onlyIn := func(a, b []string) []string {
		have := map[string]bool{}
		for _, r := range b {
			have[r] = true
		}
		var out []string
		for _, r := range a {
			if !have[r] {
				out = append(out, r)
			}
		}
		return out
	}
	onlyM, onlyS := onlyIn(m, s), onlyIn(s, m)
	ids := map[string]bool{}
	for _, side := range []struct {
		name string
		rows []string
	}{{"master", onlyM}, {"standby", onlyS}} {
		for _, r := range side.rows {
			e.t.Logf("%s: only on the %s: %s", table, side.name, r)
			if id, err := hex.DecodeString(strings.SplitN(r, "|", 2)[0]); err == nil {
				ids[string(id)] = true
			}
		}
	}
	for _, srv := range []struct {
		name string
		s    *sandbox.Server
	}{{"master", e.master}, {"standby", standby}} {
		pos, _ := srv.s.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		waiting, _ := srv.s.Status(ctx, "Rpl_semi_sync_master_wait_sessions")
		threads, _ := srv.s.QueryString(ctx, "SELECT GROUP_CONCAT(CONCAT(id, ' ', user, ' ', command, ' ', IFNULL(state, ''), ' ', LEFT(IFNULL(info, ''), 60)) SEPARATOR '; ') FROM information_schema.processlist WHERE id <> CONNECTION_ID()")
		e.t.Logf("%s: gtid_binlog_pos %s, Rpl_semi_sync_master_wait_sessions %s, threads: %s", srv.name, pos, waiting, threads)
	}
	// A difference while the master still runs its clients' statements
	// (a commit waiting for its ACK) is not one: say whether it lasts.
	settled := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		busy, err := e.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'root' AND command = 'Query' AND id <> CONNECTION_ID()")
		mp, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		sp, _ := standby.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		if err == nil && busy == "0" && mp == sp {
			settled = true
			break
		}
	}
	m2, s2 := tableRows(e.t, e.master, table, "1"), tableRows(e.t, standby, table, "1")
	sort.Strings(m2)
	sort.Strings(s2)
	ms, ss := append([]string(nil), m...), append([]string(nil), s...)
	sort.Strings(ms)
	sort.Strings(ss)
	e.t.Logf("%s once the master ran no client statement and the standby had its GTIDs (%v): master %d rows, standby %d rows, equal: %v (master changed since: %v, standby changed since: %v)",
		table, settled, len(m2), len(s2), reflect.DeepEqual(m2, s2), !reflect.DeepEqual(m2, ms), !reflect.DeepEqual(s2, ss))
	if table != "test.wide" || len(ids) == 0 {
		return
	}
	var files []string
	for _, base := range []string{e.master.BinlogBase(), standby.BinlogBase()} {
		f, _ := filepath.Glob(base + ".[0-9]*")
		files = append(files, f...)
	}
	if segs, err := relay.ListSegments(e.config().RelayDir()); err == nil {
		for _, sg := range segs {
			files = append(files, sg.Path)
		}
	}
	for _, f := range files {
		for _, l := range rowEvents(f, "`test`.`wide`", ids) {
			e.t.Logf("%s: %s", f, l)
		}
	}
}

// rowEvents returns, for each row event of file on table that has a row
// whose first column is in ids, its GTID and its text as mariadb-binlog
// decodes it.
func rowEvents(file, table string, ids map[string]bool) []string {
	out, err := exec.Command("mariadb-binlog", "--base64-output=decode-rows", "-v", file).Output()
	if err != nil && len(out) == 0 {
		return []string{fmt.Sprintf("mariadb-binlog: %v", err)}
	}
	var found []string
	var gtid, stmt string
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "#") && strings.Contains(l, "\tGTID "): // "#... end_log_pos N CRC32 0x...\tGTID 0-1-5 trans"
			if f := strings.Fields(l[strings.Index(l, "\tGTID ")+6:]); len(f) > 0 {
				gtid = f[0]
			}
		case strings.HasPrefix(l, "### INSERT INTO "+table), strings.HasPrefix(l, "### DELETE FROM "+table), strings.HasPrefix(l, "### UPDATE "+table):
			stmt = l
		case strings.HasPrefix(l, "### ") && !strings.HasPrefix(l, "###   @") && !strings.HasPrefix(l, "### WHERE") && !strings.HasPrefix(l, "### SET"):
			stmt = ""
		case stmt != "" && strings.HasPrefix(l, "###   @1="):
			if ids[strings.TrimPrefix(l, "###   @1=")] {
				found = append(found, fmt.Sprintf("GTID %s: %s id %s", gtid, strings.TrimPrefix(stmt, "### "), strings.TrimPrefix(l, "###   @1=")))
			}
		}
	}
	return found
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
	e.createWorkTables()
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
	e.compareWorkTables(standby, "after the crashes")
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

// TestApplyEqualWhileACommitWaitsForItsACK: with AFTER_SYNC a commit is in
// the master's binlog, and in its gtid_binlog_pos, before the master makes it
// visible, and the standby may apply it in between: the agent's relay log
// has it durably, and the ACK that would end the master's wait is late (here
// held; in TestApplyExactlyOnceUnderCrashes, an agent killed between its
// fsync and its ACK, whose successor applies the relay log before its
// reconnected stream acknowledges). A client that gives up (its context
// ends) leaves the master's thread waiting. A comparison made then sees the
// standby one transaction "ahead" of the master, rows the master does not
// show yet; it must wait until the master has finished every statement its
// clients sent (randomWork does), and then the rows are equal.
func TestApplyEqualWhileACommitWaitsForItsACK(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) { testApplyEqualWhileACommitWaitsForItsACK(t, mode) })
	}
}

func testApplyEqualWhileACommitWaitsForItsACK(t *testing.T, mode string) {
	e := newEnv(t)
	standby := e.withStandbyIn(mode)
	e.createWorkTables()
	var hold atomic.Bool
	e.startInProcess(ingest.Hooks{BeforeAck: func(ack, durable binlog.FilePos) {
		for hold.Load() {
			time.Sleep(5 * time.Millisecond)
		}
	}})
	t.Cleanup(func() { hold.Store(false) })
	e.waitSemiSyncClient()
	e.waitApplied(standby, 60*time.Second)
	ctx := context.Background()
	before, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	// The master gives up waiting after 3 s and commits (asynchronous):
	// the wait ends, as a late ACK would end it.
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout = 3000")
	hold.Store(true)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.randomWork(wctx, 1) }()
	// The client's first logged commit waits for the held ACK; the
	// standby has it.
	harness.WaitFor(t, "a commit waiting for its ACK on the master, applied on the standby", 60*time.Second, func() bool {
		m, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		s, _ := standby.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		w, _ := e.master.Status(ctx, "Rpl_semi_sync_master_wait_sessions")
		return m != before && m == s && w == "1"
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 60*time.Second)
	e.compareWorkTables(standby, "after a commit that waited for its ACK")
}
