package agent

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
)

// writers commits single-row transactions into test.t from n connections
// until stopped; stop returns how many committed and the first error.
type loadWriters struct {
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	committed atomic.Int64
	mu        sync.Mutex
	err       error
}

func startWriters(t *testing.T, s *sandbox.Server, n int) *loadWriters {
	t.Helper()
	db, err := sql.Open("mysql", s.RootDSN("test"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(n)
	ctx, cancel := context.WithCancel(context.Background())
	w := &loadWriters{cancel: cancel}
	for i := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for j := 0; ctx.Err() == nil; j++ {
				if _, err := db.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (?, ?)", i, strings.Repeat("w", j%50)); err != nil {
					if ctx.Err() == nil {
						w.mu.Lock()
						w.err = err
						w.mu.Unlock()
					}
					return
				}
				w.committed.Add(1)
			}
		}()
	}
	t.Cleanup(func() { w.stop(); db.Close() })
	return w
}

func (w *loadWriters) stop() (int64, error) {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed.Load(), w.err
}

// TestFirstStartCurrentUnderLoad: the first run with start = "current" on
// a master under 8 writers streams every time. The start position and its
// GTID state used to be read in two round trips (SHOW MASTER STATUS, then
// @@gtid_binlog_pos): a commit in between gave a GTID set newer than the
// position, and the continuity check refused the start as "the master was
// rebuilt" (about 1 start in 5). Each of the first starts here uses a new
// data_dir; each must stream, and its relay log must be the master's
// binlog byte for byte from its first event.
func TestFirstStartCurrentUnderLoad(t *testing.T) {
	const starts = 15
	e := newEnv(t)
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=200") // between two agents, commits fall back quickly
	w := startWriters(t, e.master, 8)
	harness.WaitFor(t, "the writers to commit", 30*time.Second, func() bool { return w.committed.Load() > 200 })
	base := readFile(t, e.cfgPath)
	var refused []string
	for i := range starts {
		dataDir := filepath.Join(e.dir, fmt.Sprintf("agent-%d", i))
		writeFile(t, e.cfgPath, strings.Replace(base, fmt.Sprintf("data_dir = %q", filepath.Join(e.dir, "agent")), fmt.Sprintf("data_dir = %q", dataDir), 1))
		p := e.startInProcess(ingest.Hooks{})
		var st ingest.Status
		harness.WaitFor(t, fmt.Sprintf("first start %d to stream or stop", i), 60*time.Second, func() bool {
			st = p.a.recv.Status()
			return (st.State == ingest.StateStreaming && st.Transactions > 0) || st.State == ingest.StateFailed
		})
		if st.State == ingest.StateFailed {
			refused = append(refused, fmt.Sprintf("start %d: %s", i, st.LastError))
		}
		if err := p.stop(); err != nil && st.State != ingest.StateFailed {
			t.Fatalf("start %d: %v", i, err)
		}
		if st.State != ingest.StateFailed {
			compareRelayPrefix(t, filepath.Join(e.master.Dir(), "binlog"), filepath.Join(dataDir, "relay"))
		}
	}
	n, err := w.stop()
	if err != nil {
		t.Fatalf("writers: %v", err)
	}
	t.Logf("%d first starts under 8 writers (%d commits)", starts, n)
	if len(refused) > 0 {
		t.Fatalf("%d of %d first starts refused:\n%s", len(refused), starts, strings.Join(refused, "\n"))
	}
}

// nativeReplica starts DB2 as a native GTID replica of the test's master
// (semi-sync when semiSync), with the agent's standby account, and waits
// until the master counts it as its semi-sync replica.
func (e *testEnv) nativeReplica(semiSync bool) *sandbox.Server {
	e.t.Helper()
	ctx := context.Background()
	extra := []string{"rpl_semi_sync_slave_enabled=OFF"}
	if semiSync {
		extra = []string{"rpl_semi_sync_slave_enabled=ON"}
	}
	db2, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(e.dir, "s"), ServerID: 2, Log: e.t.Logf, Extra: extra})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db2.Stop(context.Background()) })
	must(e.t, db2.CreateUser(ctx, "applier", e.password, "ALL PRIVILEGES"))
	must(e.t, db2.Exec(ctx, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
		e.master.Port(), e.password)))
	must(e.t, db2.Exec(ctx, "START SLAVE"))
	if semiSync {
		e.waitSemiSyncClient()
	}
	return db2
}

// addStandbySection points the config's [standby] at s, keeping start.
func (e *testEnv) addStandbySection(s *sandbox.Server, mode string) {
	e.t.Helper()
	writeFile(e.t, e.cfgPath, readFile(e.t, e.cfgPath)+fmt.Sprintf(`
[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q
mode = %q
`, s.Port(), filepath.Join(e.dir, "master.pw"), mode))
}

// TestAdoptNativeReplica is the seeds' migration: DB2 is already a caught-up
// native semi-sync replica of DB1 with writers running when the agent is
// installed beside it, with the README's start = "current" and [standby]
// pointing at DB2. The first run must start where DB2 is (its GTID state),
// so that DB2, re-pointed at the agent (replica mode) or applied to by it
// (direct mode), ends with every row of DB1 and DB1's GTID position, with
// nothing refused, and the agent as the master's only semi-sync replica.
// Before, the agent started its relay at the master's current position, a
// few transactions after DB2's: in replica mode DB2's IO thread failed with
// "GTID ... is not in the relay log" for ever while the agent acknowledged
// commits DB2 never got.
//
// DB2 keeps rpl_semi_sync_slave_enabled=ON (the operator's leftover setting
// from its native semi-sync replication): in replica mode it then asks the
// agent's binlog server for semi-sync, which the server speaks, and DB2
// replicates from it in semi-sync without a 1593 error.
func TestAdoptNativeReplica(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			db2 := e.nativeReplica(true)
			w := startWriters(t, e.master, 8)
			harness.WaitFor(t, "DB2 to apply the writers' commits", 60*time.Second, func() bool {
				n, _ := db2.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
				return n != "" && n != "0" && w.committed.Load() > 300
			})
			fallbacks := e.status("Rpl_semi_sync_master_no_times")
			e.addStandbySection(db2, mode)
			p := e.startInProcess(ingest.Hooks{})
			harness.WaitFor(t, "the agent to stream and the writers to go on", 60*time.Second, func() bool {
				st := p.a.recv.Status()
				return st.State == ingest.StateFailed || (st.State == ingest.StateStreaming && st.Transactions > 1500)
			})
			if st := p.a.recv.Status(); st.State == ingest.StateFailed {
				t.Fatalf("the stream stopped: %s", st.LastError)
			}
			n, err := w.stop()
			if err != nil {
				t.Fatalf("writers: %v", err)
			}
			e.waitApplied(db2, 2*time.Minute)
			rows, _ := e.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
			var want int
			fmt.Sscan(rows, &want)
			assertSameRows(t, e.master, db2, want)
			masterPos := query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
			if got := query(t, db2, "SELECT @@GLOBAL.gtid_binlog_pos"); got != masterPos {
				t.Fatalf("DB2 gtid_binlog_pos %s, DB1 %s", got, masterPos)
			}
			if mode == ModeReplica {
				if got := query(t, db2, "SELECT @@GLOBAL.gtid_slave_pos"); got != masterPos {
					t.Fatalf("DB2 gtid_slave_pos %s, DB1 %s", got, masterPos)
				}
				if on := query(t, db2, "SELECT @@GLOBAL.rpl_semi_sync_slave_enabled"); on != "1" {
					t.Fatalf("DB2's rpl_semi_sync_slave_enabled = %s: the operator's setting was changed", on)
				}
				if reps := p.a.mode.(*replicaMode).server().Replicas(); len(reps) != 1 || !reps[0].SemiSync {
					t.Fatalf("DB2's dump from the agent's binlog server: %+v; want one, in semi-sync", reps)
				}
			}
			rep := p.a.liveReport()
			if rep.Applier == nil || rep.Applier.State == "error" || rep.Applier.LastIOError != "" {
				t.Fatalf("applier report %+v", rep.Applier)
			}
			if log := p.log.String(); strings.Contains(log, "not in the relay log") || strings.Contains(log, "missing from the relay log") {
				t.Fatalf("a refusal in the agent's log")
			}
			if f := e.status("Rpl_semi_sync_master_no_times"); f != fallbacks {
				t.Fatalf("the master fell back to async %d times during the adoption", f-fallbacks)
			}
			if c := e.status("Rpl_semi_sync_master_clients"); c != 1 {
				t.Fatalf("the master counts %d semi-sync replicas, want 1 (the agent)", c)
			}
			t.Logf("%s: %d commits during the adoption; DB2 at %s", mode, n, masterPos)
			if os.Getenv("ADOPT_LOG") != "" {
				t.Log(p.log.String())
			}
		})
	}
}

// TestFirstStartRefusesAStandbyThatCannotContinue: beside a standby that
// holds the master's transactions, a first run that the standby cannot
// continue from stops at once with one line that names both positions and
// the fix, before anything is streamed or acknowledged.
func TestFirstStartRefusesAStandbyThatCannotContinue(t *testing.T) {
	tests := []struct {
		name  string
		mode  string
		setup func(t *testing.T, e *testEnv, db2 *sandbox.Server, caughtUp string)
		want  []string // in the last line
	}{
		{name: "ahead of the master", mode: ModeReplica,
			setup: func(t *testing.T, e *testEnv, db2 *sandbox.Server, caughtUp string) {
				must(t, db2.Exec(context.Background(), "SET GLOBAL gtid_slave_pos = '0-1-999999'"))
			},
			want: []string{"it is at 0-1-999999 (gtid_slave_pos) and the master's binlog is at ", "is ahead of the master", "hotstandby clone"}},
		{name: "a write of its own, direct mode", mode: ModeDirect,
			setup: func(t *testing.T, e *testEnv, db2 *sandbox.Server, caughtUp string) {
				must(t, db2.Exec(context.Background(), "INSERT INTO test.t (c) VALUES (-1)"))
			},
			want: []string{"(gtid_binlog_pos) and the master's binlog is at ", "has transactions of its own the master never had (written on it: errant)", "hotstandby clone"}},
		{name: "the master purged what it needs", mode: ModeReplica,
			setup: func(t *testing.T, e *testEnv, db2 *sandbox.Server, caughtUp string) {
				e.exec("INSERT INTO test.t (c) VALUES (1)")
				e.exec("FLUSH BINARY LOGS")
				// A file the binlog checkpoint still needs is kept (with a warning only).
				harness.WaitFor(t, "the master to purge mysql-bin.000001", 30*time.Second, func() bool {
					e.exec("PURGE BINARY LOGS TO 'mysql-bin.000002'")
					first, err := e.master.QueryString(context.Background(), "SELECT IFNULL(BINLOG_GTID_POS('mysql-bin.000001', 4), 'gone')")
					return err == nil && first == "gone"
				})
			},
			want: []string{"(gtid_slave_pos), where this first run starts: the master's binlog no longer has the transactions after it", "hotstandby clone"}},
		{name: "a configured start after it", mode: ModeReplica,
			setup: func(t *testing.T, e *testEnv, db2 *sandbox.Server, caughtUp string) {
				e.exec("INSERT INTO test.t (c) VALUES (1)")
				e.exec("INSERT INTO test.t (c) VALUES (2)")
				at := query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
				writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "gtid:`+at+`"`, 1))
			},
			want: []string{"begins after ", "and the standby is at ", "(gtid_slave_pos): the transactions in between would never reach it", `set start = "current"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.exec("SET GLOBAL rpl_semi_sync_master_enabled=OFF")
			db2 := e.nativeReplica(false)
			e.exec("INSERT INTO test.t (c) VALUES (0)")
			want := query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
			harness.WaitFor(t, "DB2 to catch up", 30*time.Second, func() bool {
				v, err := db2.QueryString(context.Background(), "SELECT @@GLOBAL.gtid_slave_pos")
				return err == nil && v == want
			})
			must(t, db2.Exec(context.Background(), "STOP SLAVE"))
			tt.setup(t, e, db2, want)
			e.addStandbySection(db2, tt.mode)
			out, code := e.runToExit(60 * time.Second)
			line := lastLine(out)
			t.Logf("exit %d: %s", code, line)
			for _, w := range append(tt.want, "standby 127.0.0.1:") {
				if code != 1 || !strings.Contains(line, w) {
					t.Fatalf("exit %d, last line %q; want exit 1 and %q in it", code, line, w)
				}
			}
			if strings.Contains(out, "msg=streaming") && !strings.Contains(tt.name, "purged") {
				t.Fatalf("the agent streamed before refusing:\n%s", out)
			}
			assertNoSecret(t, "the agent's output", out, e.password)
		})
	}
}

// TestFirstStartWaitsForTheStandby: a first run beside a standby that does
// not answer never guesses where it is (start = "current" would skip what
// it lacks): it streams nothing, says why, and adopts the standby where it
// is once it answers. DB2 here is a native replica of the master that was
// down when the agent was installed and replicates from the master again
// when it comes back.
func TestFirstStartWaitsForTheStandby(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.exec("SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	db2 := e.nativeReplica(false)
	w := startWriters(t, e.master, 4)
	harness.WaitFor(t, "DB2 to apply the writers' commits", 60*time.Second, func() bool {
		n, _ := db2.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
		return n != "" && n != "0"
	})
	must(t, db2.Stop(ctx))
	e.addStandbySection(db2, ModeReplica)
	p := e.startInProcess(ingest.Hooks{})
	harness.WaitFor(t, "the stream to say it waits for the standby", 60*time.Second, func() bool {
		return strings.Contains(p.a.recv.Status().LastError, "first run: read where the standby is")
	})
	if st := p.a.recv.Status(); st.Transactions != 0 || st.State == ingest.StateStreaming {
		t.Fatalf("the agent streamed before it knew where the standby is: %+v", st)
	}
	must(t, db2.Restart(ctx))
	harness.WaitFor(t, "the agent to stream", 60*time.Second, func() bool {
		st := p.a.recv.Status()
		return st.State == ingest.StateFailed || (st.State == ingest.StateStreaming && st.Transactions > 200)
	})
	if st := p.a.recv.Status(); st.State == ingest.StateFailed {
		t.Fatalf("the stream stopped: %s", st.LastError)
	}
	if _, err := w.stop(); err != nil {
		t.Fatalf("writers: %v", err)
	}
	e.waitApplied(db2, 2*time.Minute)
	rows, _ := e.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t")
	var want int
	fmt.Sscan(rows, &want)
	assertSameRows(t, e.master, db2, want)
}
