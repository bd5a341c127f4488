package agent

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
)

// newModeFailoverEnv is newFailoverEnv with the standby in the given apply
// mode.
func newModeFailoverEnv(t *testing.T, mode, failoverTOML string) *failoverEnv {
	t.Helper()
	e := newEnv(t)
	standby := e.withStandbyMode(mode)
	writeFile(t, e.cfgPath, readFile(t, e.cfgPath)+"\n[failover]\n"+failoverTOML+"\n")
	f := &failoverEnv{testEnv: e, standby: standby}
	f.p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	return f
}

// globalReadOnly reads @@global.read_only on db: 1 or 0, -1 when it does not
// answer.
func globalReadOnly(db *sql.DB) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var ro int
	if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		return -1
	}
	return ro
}

// TestPlannedRestartIsNoFailover: failover.mode auto, 8 writers, and a
// graceful restart of the master's mariadbd (SIGTERM, shutdown, start)
// that lasts past the detector's failures but within the restart grace: no promotion, the standby stays read-only in
// every sample, status said the master was restarting, the stream resumes,
// and every commit that returned OK is on the standby, which ends equal to
// the master.
func TestPlannedRestartIsNoFailover(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			f := newModeFailoverEnv(t, mode, `mode = "auto"`)
			f.waitLossless()
			ctx, stop := context.WithCancel(context.Background())
			defer stop()

			// Samplers: the standby's read_only and the agent's status,
			// every few ms, from before the restart to the end.
			var mu sync.Mutex
			var writable []time.Time
			var restartLines []string
			var roles []string
			var sampling sync.WaitGroup
			sampling.Add(1)
			go func() {
				defer sampling.Done()
				db, err := sql.Open("mysql", f.standby.RootDSN(""))
				if err != nil {
					t.Error(err)
					return
				}
				defer db.Close()
				for ctx.Err() == nil {
					ro := globalReadOnly(db)
					r := f.report()
					mu.Lock()
					if ro == 0 {
						writable = append(writable, time.Now())
					}
					if d := detector(r); d != nil && d.Restart != "" && !slices.Contains(restartLines, d.Restart) {
						restartLines = append(restartLines, d.Restart)
					}
					if !slices.Contains(roles, r.Role) {
						roles = append(roles, r.Role)
					}
					mu.Unlock()
					time.Sleep(3 * time.Millisecond) // sampling pace, not a wait for a condition
				}
			}()

			db, err := sql.Open("mysql", f.master.RootDSN("test"))
			if err != nil {
				t.Fatal(err)
			}
			var committed atomic.Int64
			ids := writers(ctx, db, 8, &committed, writerOptions{payload: "restart", retry: true})
			harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= 300 })
			// A restart as maintenance does it: shutdown, then start. The
			// start waits until the detector has counted its failures
			// with the stream down, so the restart lasts at least the
			// detection time (the took 1.6 s; detection 0.6 s).
			start := time.Now()
			if err := f.master.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			harness.WaitFor(t, "the detector to count the failures (probes refused, stream down)", 60*time.Second, func() bool {
				d := detector(f.report())
				return d != nil && d.Failures >= 3 && d.StreamDown
			})
			if err := f.master.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			before := committed.Load()
			// Either the stream resumes, or (the defect) a promotion came.
			harness.WaitFor(t, "the clients to commit after the restart", 60*time.Second, func() bool {
				return committed.Load() >= before+300 || f.report().Role != checkpoint.RoleStandby
			})
			harness.WaitFor(t, "the stream to resume", 60*time.Second, func() bool {
				r := f.report()
				return r.Stream.State == "streaming" || r.Role != checkpoint.RoleStandby
			})
			stop()
			ok := ids()
			sampling.Wait()

			f.waitCaughtUp(f.report)
			f.waitApplied(f.standby, 60*time.Second)
			rep := f.report()
			if rep.Role != checkpoint.RoleStandby || len(roles) != 1 {
				t.Fatalf("role %s (seen %v): the restart cost a failover: %v", rep.Role, roles, rep.Audit)
			}
			if len(writable) > 0 {
				t.Fatalf("the standby was writable in %d samples (first at %s)", len(writable), writable[0].Format("15:04:05.000"))
			}
			if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@global.read_only"); ro != "1" {
				t.Fatalf("standby read_only=%s after the restart", ro)
			}
			if strings.Contains(strings.Join(rep.Audit, "\n"), "promotion") {
				t.Fatalf("audit log has a promotion: %v", rep.Audit)
			}
			if missing := missingIDs(t, f.standby, ok); len(missing) > 0 {
				t.Fatalf("%d of %d committed ids are not on the standby, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
			}
			if m, s := tableRows(t, f.master, "test.t", "id"), tableRows(t, f.standby, "test.t", "id"); !slices.Equal(m, s) {
				t.Fatalf("test.t differs: master %d rows, standby %d rows", len(m), len(s))
			}
			if !slices.ContainsFunc(restartLines, func(l string) bool { return strings.HasPrefix(l, "master restarting: connection refused for ") }) {
				t.Fatalf("status never said the master was restarting: %q", restartLines)
			}
			// The Stop event the shutdown wrote reached the agent on its
			// return: the shutdown was clean.
			if st := f.p.a.recv.Status(); st.CleanStop.IsZero() {
				t.Errorf("the stream never delivered the master's Stop event")
			} else {
				t.Logf("the master's Stop event reached the agent at %s: %s", st.CleanStopAt.Format("15:04:05.000"), st.CleanStop)
			}
			t.Logf("restart took %s under 8 writers; %d commits OK'd, all on the standby; status said %q", took.Round(time.Millisecond), len(ok), restartLines[0])
		})
	}
}

// TestReturningOldMasterIsFenced: after a real death (kill -9 of the
// master under 8 writers) and the automatic promotion, the old master
// comes back writable (its option file has no read_only). The promoted
// agent's watch fences it: read_only verified, its clients killed, audited,
// alerted. A sampler reads read_only on both servers every few ms: no
// sample after the fence ever sees two writable servers; the samples
// before it, in the window between the old master's first connection and
// the watch's SET GLOBAL read_only, are counted and logged (the window is
// documented in failover.OldMasterWatch: only read_only=ON in the option
// file closes it).
func TestReturningOldMasterIsFenced(t *testing.T) {
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			alerts := filepath.Join(dir, "alerts")
			f := newModeFailoverEnv(t, mode, fmt.Sprintf("mode = \"auto\"\nalert = [\"sh\", \"-c\", \"echo \\\"$HOTSTANDBY_EVENT: $HOTSTANDBY_REASON\\\" >> %s\"]", alerts))
			// The [master] user is the fence user: it needs these.
			f.exec("SET SESSION sql_log_bin = 0")
			for _, host := range []string{"127.0.0.1", "localhost"} {
				f.exec(fmt.Sprintf("GRANT READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS ON *.* TO 'repl'@'%s'", host))
			}
			f.waitLossless()
			ctx, stop := context.WithCancel(context.Background())
			var committed atomic.Int64
			ids := okIDs(ctx, t, f.master, 8, &committed)
			harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= 300 })
			if err := f.master.Kill(); err != nil {
				t.Fatal(err)
			}
			stop()
			harness.WaitFor(t, "the automatic promotion", 60*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
			ok := ids()
			if missing := missingIDs(t, f.standby, ok); len(missing) > 0 {
				t.Fatalf("%d of %d committed ids are not on the promoted standby", len(missing), len(ok))
			}
			// A crash refuses connections like a restart: it fails over once
			// the grace ran out, and says so.
			if rep := f.report(); rep.Failover.Promotion == nil || !strings.Contains(rep.Failover.Promotion.Reason, "longer than the restart grace") {
				t.Errorf("promotion %+v: want the reason to say the restart grace ran out", rep.Failover.Promotion)
			}
			if ro, _ := f.standby.QueryString(context.Background(), "SELECT @@global.read_only"); ro != "0" {
				t.Fatalf("the promoted standby has read_only=%s", ro)
			}

			// The sampler: both servers, every few ms, as clients see them.
			type sample struct {
				at       time.Time
				old, new int
			}
			var mu sync.Mutex
			var both []sample
			var firstOld time.Time
			var samples int
			sctx, stopSampling := context.WithCancel(context.Background())
			var sampling sync.WaitGroup
			sampling.Add(1)
			go func() {
				defer sampling.Done()
				newDB, err := sql.Open("mysql", f.standby.RootDSN(""))
				if err != nil {
					t.Error(err)
					return
				}
				defer newDB.Close()
				// Over TCP, as the old master's clients and the watch
				// reach it.
				oldDB, err := sql.Open("mysql", fmt.Sprintf("repl:%s@tcp(%s)/?timeout=2s", f.password, f.master.Addr()))
				if err != nil {
					t.Error(err)
					return
				}
				defer oldDB.Close()
				oldDB.SetMaxOpenConns(1)
				for sctx.Err() == nil {
					// A sample counts from when its read of the old master
					// started: a read started after the fence must see it.
					at := time.Now()
					o := globalReadOnly(oldDB)
					n := globalReadOnly(newDB)
					mu.Lock()
					samples++
					if o >= 0 && firstOld.IsZero() {
						firstOld = at
					}
					if o == 0 && n == 0 {
						both = append(both, sample{at, o, n})
					}
					mu.Unlock()
					time.Sleep(2 * time.Millisecond) // sampling pace, not a wait for a condition
				}
			}()
			defer func() { stopSampling(); sampling.Wait() }()

			if err := f.master.Restart(context.Background()); err != nil {
				t.Fatal(err)
			}
			var fencedAt time.Time
			var fenceText string
			harness.WaitFor(t, "the returning old master to be fenced (audit)", 60*time.Second, func() bool {
				entries, err := f.p.a.store.AuditLog()
				if err != nil {
					return false
				}
				for _, e := range entries {
					if e.Kind == "old-master" && strings.Contains(e.Text, ": fenced, ") {
						fencedAt, fenceText = e.At, e.Text
						return true
					}
				}
				return false
			})
			if ro, _ := f.master.QueryString(context.Background(), "SELECT @@global.read_only"); ro != "1" {
				t.Fatalf("old master read_only=%s after the fence", ro)
			}
			// Keep sampling a while after the fence: it must hold.
			mu.Lock()
			after := samples
			mu.Unlock()
			harness.WaitFor(t, "200 samples after the fence", 60*time.Second, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return samples >= after+200
			})
			stopSampling()
			sampling.Wait()
			var inWindow []sample
			for _, s := range both {
				if s.at.After(fencedAt) {
					t.Errorf("sample started at %s (after the fence ended at %s) sees both servers writable", s.at.Format("15:04:05.000"), fencedAt.Format("15:04:05.000"))
				} else {
					inWindow = append(inWindow, s)
				}
			}
			if firstOld.IsZero() {
				t.Fatal("the sampler never reached the returning old master")
			}
			if !strings.Contains(fenceText, "answered again after ") || !strings.Contains(fenceText, "writable (read_only=OFF)") {
				t.Errorf("audit %q: want the return of a writable old master", fenceText)
			}
			a := readFileOr(alerts)
			if !strings.Contains(a, "alert: old master "+f.master.Addr()) || !strings.Contains(a, "fenced") {
				t.Errorf("alert hook output %q: want the fence of the returning old master", a)
			}
			window := "no sample saw it writable"
			if len(inWindow) > 0 {
				window = fmt.Sprintf("%d samples saw both writable, from %s to %s", len(inWindow),
					inWindow[0].at.Format("15:04:05.000"), inWindow[len(inWindow)-1].at.Format("15:04:05.000"))
			}
			for _, l := range strings.Split(f.p.log.String(), "\n") {
				if strings.Contains(l, "component=old-master-watch") {
					t.Log(l)
				}
			}
			t.Logf("old master first answered the sampler at %s, fenced (audit) at %s, %s after; %s; %s",
				firstOld.Format("15:04:05.000"), fencedAt.Format("15:04:05.000"), fencedAt.Sub(firstOld).Round(time.Millisecond), window, fenceText)
		})
	}
}

// readFileOr returns the file's content, "" if it cannot be read.
func readFileOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// oldMasterEvents counts the promoted agent's old-master audit entries:
// what its watch did about a returning old master.
func (f *failoverEnv) oldMasterEvents() int {
	f.t.Helper()
	entries, err := f.p.a.store.AuditLog()
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Kind == "old-master" {
			n++
		}
	}
	return n
}

// waitOldMasterEvents waits until there are n old-master audit entries. A
// test that restarts the old master after a promotion waits for the
// watch's fence before it uses the old master: the fence kills its clients.
func (f *failoverEnv) waitOldMasterEvents(n int) {
	f.t.Helper()
	harness.WaitFor(f.t, "the old master watch to deal with the returning old master", 60*time.Second, func() bool {
		return f.oldMasterEvents() >= n
	})
}

// restartOldMaster restarts the old master after a promotion and waits for
// the watch's fence of it (it kills every client connection), so that what
// the test does next is not cut by it.
func (f *failoverEnv) restartOldMaster(ctx context.Context) {
	f.t.Helper()
	n := f.oldMasterEvents()
	if err := f.master.Restart(ctx); err != nil {
		f.t.Fatal(err)
	}
	f.waitOldMasterEvents(n + 1)
}
