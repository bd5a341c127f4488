package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// failoverEnv is a master, a standby and an in-process agent with a
// [failover] section.
type failoverEnv struct {
	*testEnv
	standby *sandbox.Server
	p       *inProcess
	proxy   *dumpProxy // failoverSetup.proxy: between the agent and the master
}

// failoverSetup is how newFailoverEnvWith builds a failoverEnv.
type failoverSetup struct {
	mode  string       // the standby's apply mode; "": the harness's (withStandby)
	hooks ingest.Hooks // the agent's
	proxy bool         // every agent connection to the master goes through a dumpProxy
}

// newFailoverEnv: the harness's apply mode, no hooks, no proxy.
func newFailoverEnv(t *testing.T, failoverTOML string) *failoverEnv {
	t.Helper()
	return newFailoverEnvWith(t, failoverTOML, failoverSetup{})
}

// newFailoverEnvMode is newFailoverEnv with the standby's apply mode chosen
// (the users' default is ModeReplica).
func newFailoverEnvMode(t *testing.T, failoverTOML, mode string) *failoverEnv {
	t.Helper()
	return newFailoverEnvWith(t, failoverTOML, failoverSetup{mode: mode})
}

// newFailoverEnvWith starts the agent with failoverTOML as its [failover]
// section and waits until the master counts it as its semi-sync replica.
func newFailoverEnvWith(t *testing.T, failoverTOML string, s failoverSetup) *failoverEnv {
	t.Helper()
	e := newEnv(t)
	f := &failoverEnv{testEnv: e}
	if s.mode == "" {
		f.standby = e.withStandby()
	} else {
		f.standby = e.withStandbyMode(s.mode)
	}
	cfg := readFile(t, e.cfgPath)
	if s.proxy {
		f.proxy = newDumpProxy(t, e.master.Addr())
		cfg = strings.Replace(cfg, "port = "+strconv.Itoa(e.master.Port()), "port = "+strconv.Itoa(f.proxy.port()), 1)
	}
	writeFile(t, e.cfgPath, cfg+"\n[failover]\n"+failoverTOML+"\n")
	f.p = e.startInProcess(s.hooks)
	e.waitSemiSyncClient()
	return f
}

func (f *failoverEnv) report() status.Report { return f.p.a.liveReport() }

// startSemiSyncReplica starts a second replica of the master (not the
// agent's standby), a native one in semi-sync, replicating from now on.
func (f *failoverEnv) startSemiSyncReplica() *sandbox.Server {
	t := f.t
	t.Helper()
	ctx := context.Background()
	replica, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(f.dir, "r2"), ServerID: 3, Log: t.Logf,
		Extra: []string{"rpl_semi_sync_slave_enabled=ON"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { replica.Stop(context.Background()) })
	must(t, replica.Exec(ctx, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='repl', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos",
		f.master.Port(), f.password)))
	must(t, replica.Exec(ctx, "START SLAVE"))
	return replica
}

// processReport is the status of the agent that runs as a process
// (startProcess), from its status endpoint; empty while it does not answer.
func (e *testEnv) processReport() status.Report {
	r, err := status.Fetch(context.Background(), e.config().Status.Listen)
	if err != nil {
		return status.Report{}
	}
	return r
}

// waitProcessLossless waits until the agent process can prove a promotion
// now lossless.
func (e *testEnv) waitProcessLossless() {
	e.t.Helper()
	harness.WaitFor(e.t, "a promotion to be proven lossless", 60*time.Second, func() bool {
		r := e.processReport()
		return r.Failover != nil && r.Failover.LosslessNow
	})
}

// waitLossless waits until the agent can prove a promotion now lossless:
// the monitor needs two samples of the master in semi-sync.
func (f *failoverEnv) waitLossless() {
	f.t.Helper()
	harness.WaitFor(f.t, "a promotion to be proven lossless", 60*time.Second, func() bool {
		r := f.report()
		return r.Failover != nil && r.Failover.LosslessNow
	})
}

// okIDs commits rows from n clients until ctx ends and returns every id
// whose COMMIT returned OK. A client stops at its first error: the master
// is gone, and that commit's outcome is unknown, not recorded.
func okIDs(ctx context.Context, t *testing.T, s *sandbox.Server, clients int, committed *atomic.Int64) (ids func() []int64) {
	db, err := sql.Open("mysql", s.RootDSN("test"))
	if err != nil {
		t.Fatal(err)
	}
	return writers(ctx, db, clients, committed, writerOptions{payload: "committed"})
}

// writerOptions: how writers' clients go on after a refused commit, and
// how they pace themselves.
type writerOptions struct {
	payload string
	// retry: after an error (read_only, a killed connection) the client
	// tries again with the next id instead of stopping.
	retry bool
	// pause after each OK'd commit (load pacing, not a wait for a condition).
	pause time.Duration
}

// writers inserts rows into test.t from n clients on db until ctx ends and
// returns a function that waits for them, closes db and returns every id
// whose COMMIT returned OK.
func writers(ctx context.Context, db *sql.DB, clients int, committed *atomic.Int64, o writerOptions) (ids func() []int64) {
	db.SetMaxOpenConns(clients)
	var mu sync.Mutex
	var ok []int64
	var wg sync.WaitGroup
	var next atomic.Int64
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				id := next.Add(1)
				cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := db.ExecContext(cctx, "INSERT INTO t (id, c, payload) VALUES (?, 1, ?)", id, o.payload)
				cancel()
				if err != nil {
					if !o.retry {
						return
					}
					time.Sleep(5 * time.Millisecond) // load pacing, not a wait for a condition
					continue
				}
				mu.Lock()
				ok = append(ok, id)
				mu.Unlock()
				committed.Add(1)
				time.Sleep(o.pause)
			}
		}()
	}
	return func() []int64 {
		wg.Wait()
		db.Close()
		mu.Lock()
		defer mu.Unlock()
		return append([]int64(nil), ok...)
	}
}

// TestFailoverLossless kills the master with kill -9 under a 16-client
// load, 10 times on fresh pairs of servers: each time the agent promotes the
// standby by itself, every id whose COMMIT returned OK is on it, it takes
// writes, the agent's role is master and the promotion is in the audit log.
func TestFailoverLossless(t *testing.T) {
	kills := 10
	if testing.Short() {
		t.Skip("integration test")
	}
	for i := range kills {
		t.Run(fmt.Sprintf("kill %d", i+1), func(t *testing.T) {
			f := newFailoverEnv(t, `mode = "auto"`)
			f.waitLossless()
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			var committed atomic.Int64
			ids := okIDs(ctx, t, f.master, 16, &committed)
			want := int64(200 + 37*i)
			harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= want })
			killedAt := time.Now()
			if err := f.master.Kill(); err != nil {
				t.Fatal(err)
			}
			stop()
			harness.WaitFor(t, "the automatic promotion", 60*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
			took := time.Since(killedAt)
			ok := ids()
			missing := missingIDs(t, f.standby, ok)
			if len(missing) > 0 {
				t.Fatalf("%d of %d committed ids are not on the promoted standby, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
			}
			if err := f.standby.Exec(context.Background(), "INSERT INTO test.t (c, payload) VALUES (2, 'after the promotion')"); err != nil {
				t.Fatalf("the promoted standby does not take writes: %v", err)
			}
			if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@read_only"); ro != "0" {
				t.Fatalf("read_only=%s on the promoted standby", ro)
			}
			// The promoter records the role master, then audits it.
			harness.WaitFor(t, "the promotion in the audit log", 30*time.Second, func() bool {
				return strings.Contains(strings.Join(f.report().Audit, "\n"), "promoted to epoch 1")
			})
			t.Logf("kill %d: %d commits OK'd, all on the standby; promoted %s after the kill", i+1, len(ok), took.Round(time.Millisecond))
		})
	}
}

// missingIDs returns the ids not in test.t on s.
func missingIDs(t *testing.T, s *sandbox.Server, ids []int64) []int64 {
	t.Helper()
	rows, err := s.DB().Query("SELECT id FROM test.t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		have[id] = true
	}
	var missing []int64
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}

// TestFailoverRefusedAfterAsyncFallback: the agent stops acknowledging, the
// master falls back to asynchronous replication and commits without it;
// then the master dies. The automatic promotion is refused with the reason
// (what may be lost), the standby stays read-only, and an operator's
// promote --force promotes and is recorded as forced.
func TestFailoverRefusedAfterAsyncFallback(t *testing.T) {
	var hold atomic.Bool
	hooks := ingest.Hooks{BeforeAck: func(ack, durable binlog.FilePos) {
		for hold.Load() {
			time.Sleep(5 * time.Millisecond)
		}
	}}
	f := newFailoverEnvWith(t, `mode = "auto"`, failoverSetup{hooks: hooks})
	f.waitLossless()
	f.exec("SET GLOBAL rpl_semi_sync_master_timeout = 300")
	hold.Store(true)
	t.Cleanup(func() { hold.Store(false) })
	for i := range 5 {
		f.exec("INSERT INTO test.t (c, payload) VALUES (?, 'async')", i) // each waits 300 ms at most, then async
	}
	harness.WaitFor(t, "the monitor to record the fallback", 30*time.Second, func() bool {
		r := f.report()
		return r.Failover != nil && !r.Failover.LosslessNow && strings.Contains(r.Failover.LosslessWhy, "async")
	})
	if err := f.master.Kill(); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the refused promotion in the audit log", 30*time.Second, func() bool {
		return strings.Contains(strings.Join(f.report().Audit, "\n"), "promotion refused")
	})
	rep := f.report()
	audit := strings.Join(rep.Audit, "\n")
	if rep.Role != checkpoint.RoleStandby || !strings.Contains(audit, "commits without ACK") && !strings.Contains(audit, "not in semi-sync") {
		t.Fatalf("role %s, audit:\n%s\nwant the refusal with what may be lost", rep.Role, audit)
	}
	if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@read_only"); ro != "1" {
		t.Fatalf("read_only=%s on the standby after a refused promotion", ro)
	}
	hold.Store(false)
	msg, err := f.p.a.opPromote(context.Background(), control.Peer{UID: 0, PID: 1}, control.Request{Op: "promote", Force: true})
	if err != nil {
		t.Fatalf("promote --force: %v", err)
	}
	if !strings.Contains(msg, "FORCED") {
		t.Fatalf("promote --force said %q; want it to say it was forced", msg)
	}
	rep = f.report()
	if rep.Role != checkpoint.RoleMaster || rep.Failover.Promotion == nil || !rep.Failover.Promotion.Forced {
		t.Fatalf("after --force: role %s, promotion %+v", rep.Role, rep.Failover.Promotion)
	}
	if !strings.Contains(strings.Join(rep.Audit, "\n"), "FORCED although not proven lossless") {
		t.Fatalf("the audit log does not record the override:\n%s", strings.Join(rep.Audit, "\n"))
	}
}

// TestFailoverRefusedWithASecondSemiSyncReplica: MariaDB waits for one ACK
// from any semi-sync replica, so with a second one a commit the client saw
// succeed may be there only: the automatic promotion is refused, saying why.
func TestFailoverRefusedWithASecondSemiSyncReplica(t *testing.T) {
	f := newFailoverEnv(t, `mode = "auto"`)
	f.waitLossless()
	f.startSemiSyncReplica()
	harness.WaitFor(t, "the master to count two semi-sync replicas", 30*time.Second, func() bool {
		return f.status("Rpl_semi_sync_master_clients") == 2
	})
	harness.WaitFor(t, "the agent to see that a promotion may lose data", 30*time.Second, func() bool {
		r := f.report()
		return r.Failover != nil && !r.Failover.LosslessNow && strings.Contains(r.Failover.LosslessWhy, "2 semi-sync replicas")
	})
	must(t, f.master.Kill())
	harness.WaitFor(t, "the refused promotion in the audit log", 30*time.Second, func() bool {
		return strings.Contains(strings.Join(f.report().Audit, "\n"), "promotion refused")
	})
	if r := f.report(); r.Role != checkpoint.RoleStandby || !strings.Contains(strings.Join(r.Audit, "\n"), "semi-sync replicas") {
		t.Fatalf("role %s, audit %v: want refused naming the second semi-sync replica", r.Role, r.Audit)
	}
}

// TestNoFailoverWhileTheMasterAnswers: the agent's dump connection killed
// on the master (the stream breaks, probes are answered), and the master
// frozen for less than the detection window: no promotion in either.
func TestNoFailoverWhileTheMasterAnswers(t *testing.T) {
	f := newFailoverEnv(t, "mode = \"auto\"\nfailures = 5")
	f.waitLossless()
	ctx := context.Background()
	before := f.report().Stream.Reconnects
	id, err := f.master.QueryString(ctx, "SELECT id FROM information_schema.processlist WHERE user = 'repl' AND command LIKE 'Binlog Dump%'")
	if err != nil || id == "" {
		t.Fatalf("the agent's dump thread: %q %v", id, err)
	}
	must(t, f.master.Exec(ctx, "KILL CONNECTION "+id))
	harness.WaitFor(t, "the stream to reconnect", 30*time.Second, func() bool {
		r := f.report()
		return r.Stream.Reconnects != nil && *r.Stream.Reconnects > *before && r.Stream.State == ingest.StateStreaming
	})
	// Freeze the master for 400 ms: at most two probes of 300 ms fail.
	probes := func() time.Time { return *f.report().Failover.Detector.ProbeAt }
	must(t, syscall.Kill(f.master.PID(), syscall.SIGSTOP))
	time.Sleep(400 * time.Millisecond) // the freeze itself, not a wait for a condition
	must(t, syscall.Kill(f.master.PID(), syscall.SIGCONT))
	resumed := time.Now()
	harness.WaitFor(t, "ten answered probes after the freeze", 30*time.Second, func() bool {
		d := f.report().Failover.Detector
		return d.ProbeOK && probes().After(resumed.Add(10*200*time.Millisecond))
	})
	r := f.report()
	if r.Role != checkpoint.RoleStandby || strings.Contains(strings.Join(r.Audit, "\n"), "promotion") {
		t.Fatalf("role %s, audit %v: a master that answers was taken for dead", r.Role, r.Audit)
	}
	if ro, _ := f.standby.QueryString(ctx, "SELECT @@read_only"); ro != "1" {
		t.Fatalf("read_only=%s on the standby", ro)
	}
	// An operator's promote while the master is alive: refused, nothing done.
	_, err = f.p.a.opPromote(ctx, control.Peer{UID: 0}, control.Request{Op: "promote"})
	if !errors.Is(err, failover.ErrRefused) || !strings.Contains(err.Error(), "is alive") {
		t.Fatalf("promote with a live master: %v, want refused saying the master is alive", err)
	}
	if r := f.report(); r.Role != checkpoint.RoleStandby || r.Stream.State != ingest.StateStreaming {
		t.Fatalf("after the refused promote: role %s, stream %s", r.Role, r.Stream.State)
	}
}

// TestPromotionResumesAfterAgentKill: the agent is killed with kill -9 in
// the middle of a promotion (its STONITH command is still running: the
// old master is isolated first); restarted, it finishes the promotion from
// that step, and every committed row is on the new master.
// (TestPromotionKilledAtEveryStep kills it after every step.)
func TestPromotionResumesAfterAgentKill(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	mark := filepath.Join(e.dir, "stonith.hold")
	writeFile(t, mark, "")
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+fmt.Sprintf(`
[failover]
mode = "auto"
hook_timeout = "90s"
stonith = ["sh", "-c", "while [ -f %s ]; do sleep 0.05; done"]
`, mark))
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	report := e.processReport
	e.waitProcessLossless()
	for i := range 20 {
		e.exec("INSERT INTO test.t (id, c) VALUES (?, 1)", 1000+i)
	}
	must(t, e.master.Kill())
	harness.WaitFor(t, "the promotion to reach the fence step", 60*time.Second, func() bool {
		r := report()
		return r.Role == checkpoint.RolePromoting && r.Failover.Promotion != nil && r.Failover.Promotion.Step == checkpoint.StepStarted
	})
	p.kill()
	if ro, _ := standby.QueryString(ctx, "SELECT @@read_only"); ro != "1" {
		t.Fatalf("read_only=%s on the standby before the promotion's writable step", ro)
	}
	if err := os.Remove(mark); err != nil {
		t.Fatal(err)
	}
	logBefore := len(p.Log())
	p.start()
	harness.WaitFor(t, "the resumed promotion to finish", 60*time.Second, func() bool { return report().Role == checkpoint.RoleMaster })
	ids := make([]int64, 20)
	for i := range ids {
		ids[i] = int64(1000 + i)
	}
	if missing := missingIDs(t, standby, ids); len(missing) > 0 {
		t.Fatalf("committed ids missing on the new master: %v", missing)
	}
	must(t, standby.Exec(ctx, "INSERT INTO test.t (c) VALUES (3)"))
	r := report()
	audit := strings.Join(r.Audit, "\n")
	if !strings.Contains(audit, "resumed after step started") || !strings.Contains(audit, "promoted to epoch 1") {
		t.Fatalf("audit log:\n%s\nwant the resume and the promotion", audit)
	}
	if after := p.Log()[logBefore:]; strings.Contains(after, "msg=streaming") || !strings.Contains(after, "resuming an interrupted promotion") {
		t.Fatalf("the restarted agent's log:\n%s\nwant the resume and no stream", after)
	}
}

// TestPromotedAgentNeverStreamsFromTheOldMaster: after a promotion the old
// master comes back; the agent, restarted with its old configuration,
// never connects to it (no session of its user there), says why in its log,
// and status says it is the master.
func TestPromotedAgentNeverStreamsFromTheOldMaster(t *testing.T) {
	f := newFailoverEnv(t, `mode = "auto"`)
	f.waitLossless()
	must(t, f.master.Kill())
	harness.WaitFor(t, "the automatic promotion", 60*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
	if err := f.p.stop(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must(t, f.master.Restart(ctx))
	p := f.startProcess()
	harness.WaitFor(t, "the restarted agent's status", 30*time.Second, func() bool {
		r, err := status.Fetch(ctx, f.config().Status.Listen)
		return err == nil && r.Role == checkpoint.RoleMaster
	})
	harness.WaitFor(t, "the agent to say why it does not stream", 30*time.Second, func() bool {
		return strings.Contains(p.Log(), "never streams from or acknowledges the old master again")
	})
	// The watch of the old master has a plain SQL session there (it fences
	// it when it returns); no dump.
	n, err := f.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'repl' AND command LIKE 'Binlog Dump%'")
	if err != nil || n != "0" {
		t.Fatalf("%s dump sessions of the agent's user on the old master (%v)", n, err)
	}
	if strings.Contains(p.Log(), "msg=streaming") {
		t.Fatalf("the promoted agent streamed from the old master:\n%s", p.LogTail(30))
	}
}
