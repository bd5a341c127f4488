package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// probePassword is the probe account's password in the integration tests;
// no error or log line may contain it.
const probePassword = "pw-probe-7f3a9c1e"

// startMaster starts a MariaDB server with server_id 1 and a probe account
// without privileges. Integration tests are skipped under -short.
func startMaster(t *testing.T) *sandbox.Server {
	t.Helper()
	ctx := context.Background()
	s := testServer(t)
	if err := s.CreateUser(ctx, "probe", probePassword, "USAGE"); err != nil {
		t.Fatal(err)
	}
	return s
}

// newTestProber returns a prober of s as the probe account; its driver log
// goes to the returned buffer.
func newTestProber(t *testing.T, s *sandbox.Server, serverID uint32, password string, timeout time.Duration) (*SQLProber, *harness.SyncBuffer) {
	t.Helper()
	lb := &harness.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := NewSQLProber(SQLProberConfig{
		Addr: s.Addr(), User: "probe", Password: password, ServerID: serverID, Timeout: timeout, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		if t.Failed() {
			t.Logf("prober log:\n%s", lb.String())
		}
	})
	return p, lb
}

// timedProbe probes once and returns the error and how long it took.
func timedProbe(p Prober) (time.Duration, error) {
	start := time.Now()
	err := p.Probe(context.Background())
	return time.Since(start), err
}

// wantKind fails unless err wraps kind.
func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("probe error %v: want %q", err, kind)
	}
	if strings.Contains(err.Error(), probePassword) {
		t.Fatalf("probe error %q contains the password", err)
	}
}

func TestSQLProberLiveServer(t *testing.T) {
	s := startMaster(t)
	timeout := DefaultDetectConfig().ProbeTimeout
	t.Run("right server", func(t *testing.T) {
		p, _ := newTestProber(t, s, 1, probePassword, timeout)
		for i := 0; i < 5; i++ {
			if err := p.Probe(context.Background()); err != nil {
				t.Fatalf("probe %d: %v", i, err)
			}
		}
		// Five probes, one connection.
		n, err := s.QueryString(context.Background(), "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'probe'")
		if err != nil {
			t.Fatal(err)
		}
		if n != "1" {
			t.Errorf("%s connections of the probe account: want 1", n)
		}
	})
	t.Run("any server", func(t *testing.T) {
		p, _ := newTestProber(t, s, 0, probePassword, timeout)
		if err := p.Probe(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong server_id", func(t *testing.T) {
		p, _ := newTestProber(t, s, 2, probePassword, timeout)
		err := p.Probe(context.Background())
		wantKind(t, err, ErrProbeNotMaster)
		want := "not the master: " + s.Addr() + " answers with server_id 1, the master's is 2"
		if err.Error() != want {
			t.Errorf("error %q: want %q", err, want)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		const wrong = "pw-wrong-41c7d2"
		p, lb := newTestProber(t, s, 1, wrong, timeout)
		err := p.Probe(context.Background())
		wantKind(t, err, ErrProbeAuth)
		if !probeAnswered(err) {
			t.Errorf("an auth error must count as an answer")
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(lb.String(), wrong) {
			t.Errorf("the password appears in the error or the log: %q\n%s", err, lb.String())
		}
	})
}

func TestSQLProberKilledServer(t *testing.T) {
	s := startMaster(t)
	timeout := DefaultDetectConfig().ProbeTimeout
	p, lb := newTestProber(t, s, 1, probePassword, timeout)
	if err := p.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	// The first probe after the kill finds its kept connection closed and
	// connects again: refused, not a lost connection.
	for i := 0; i < 3; i++ {
		took, err := timedProbe(p)
		wantKind(t, err, ErrProbeRefused)
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("probe error %v: want it to wrap ECONNREFUSED", err)
		}
		if took >= timeout {
			t.Errorf("refused probe took %s: want less than the probe timeout %s", took, timeout)
		}
		t.Logf("probe %d after kill: %v (%s)", i, err, took)
	}
	if strings.Contains(lb.String(), probePassword) {
		t.Errorf("the password appears in the log")
	}
}

func TestSQLProberFrozenServer(t *testing.T) {
	s := startMaster(t)
	timeout := DefaultDetectConfig().ProbeTimeout
	const margin = 250 * time.Millisecond
	p, _ := newTestProber(t, s, 1, probePassword, timeout)
	if err := p.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// Runs before the Stop registered by startMaster.
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) })
	// The stop is asynchronous: a thread may still answer until every
	// thread of the process has stopped.
	waitFor(t, "every thread of mariadbd to stop", func() bool { return allThreadsStopped(t, pid) })
	// First on the kept connection (the query gets no answer), then on new
	// connections (the kernel accepts them, the server never greets).
	for i := 0; i < 3; i++ {
		took, err := timedProbe(p)
		wantKind(t, err, ErrProbeTimeout)
		if took < timeout-10*time.Millisecond || took > timeout+margin {
			t.Errorf("probe %d took %s: want the probe timeout %s (+ %s)", i, took, timeout, margin)
		}
		t.Logf("probe %d on a frozen server: %v (%s)", i, err, took)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the thawed server to answer", func() bool { return p.Probe(context.Background()) == nil })
}

// allThreadsStopped reports whether every thread of process pid is in the
// stopped state (T in /proc/PID/task/TID/stat).
func allThreadsStopped(t *testing.T, pid int) bool {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		state, ok := procState(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if ok && state != 'T' { // not ok: the thread exited
			return false
		}
	}
	return true
}

// loadServer runs n connections of CPU-bound BENCHMARK queries on s until
// the returned stop is called; stop kills the running queries and waits.
func loadServer(t *testing.T, s *sandbox.Server, n int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db := s.DB()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				// About a second of CPU per query; ctx does not stop
				// a running query, KILL QUERY does.
				db.ExecContext(context.Background(), "SELECT BENCHMARK(2000000, SHA2(RAND(), 512)) /* load */")
			}
		}()
	}
	waitFor(t, fmt.Sprintf("%d loading queries", n), func() bool {
		got, err := s.QueryString(context.Background(),
			"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT BENCHMARK%load%'")
		return err == nil && got == fmt.Sprint(n)
	})
	return func() {
		cancel()
		killLoad(s)
		wg.Wait()
	}
}

// killLoad kills the loading queries.
func killLoad(s *sandbox.Server) {
	rows, err := s.DB().Query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT BENCHMARK%load%'")
	if err != nil {
		return
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if rows.Scan(&id) == nil {
			ids = append(ids, id)
		}
	}
	rows.Close()
	for _, id := range ids {
		s.Exec(context.Background(), fmt.Sprintf("KILL QUERY %d", id))
	}
}

// recordingProber probes through probe and records every answer.
type recordingProber struct {
	probe func(ctx context.Context) error

	mu   sync.Mutex // mu guards the fields below
	errs []error
	took []time.Duration
}

func (r *recordingProber) Probe(ctx context.Context) error {
	start := time.Now()
	err := r.probe(ctx)
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
	r.took = append(r.took, took)
	return err
}

func (r *recordingProber) results() ([]error, []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...), append([]time.Duration(nil), r.took...)
}

// TestSQLProberOverloadedServer: a master whose CPUs are saturated by
// queries (8 connections of BENCHMARK on 2 cores) still answers every
// probe, on the kept connection and on new ones, and a Detector does not
// declare it dead even with the stream down, the worst case where only the
// probe speaks for the master.
//
// The probe timeout here is a generous 2 s, not the default 300 ms: on this
// 2-core machine the worst probe under this load took 10-80 ms when the
// test ran alone, but up to 246 ms on the kept connection and 427 ms on a
// new connection with other test suites and CPU-bound processes beside it,
// so the default cannot be asserted under any CI load. The test logs how
// many probes were slower than the default.
func TestSQLProberOverloadedServer(t *testing.T) {
	s := startMaster(t)
	cfg := DefaultDetectConfig()
	defaultTimeout := cfg.ProbeTimeout
	cfg.ProbeTimeout = 2 * time.Second
	kept, _ := newTestProber(t, s, 1, probePassword, cfg.ProbeTimeout)
	if err := kept.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := loadServer(t, s, 8)
	defer stop()
	fresh := func(ctx context.Context) error {
		p, err := NewSQLProber(SQLProberConfig{Addr: s.Addr(), User: "probe", Password: probePassword, ServerID: 1, Timeout: cfg.ProbeTimeout})
		if err != nil {
			return err
		}
		defer p.Close()
		return p.Probe(ctx)
	}
	for _, tt := range []struct {
		name  string
		probe func(ctx context.Context) error
	}{
		{"kept connection", kept.Probe},
		{"new connection each probe", fresh},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recordingProber{probe: tt.probe}
			stream := &fakeStream{}
			stream.set(true, "no packet for 2.1s")
			d := NewDetector(cfg, rec, stream, nil, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			dead := make(chan Verdict, 1)
			go func() { defer close(done); d.Run(ctx, dead) }()
			waitFor(t, "15 probes", func() bool { errs, _ := rec.results(); return len(errs) >= 15 })
			cancel()
			<-done
			errs, took := rec.results()
			var worst time.Duration
			slow := 0
			for i, err := range errs {
				if err != nil {
					t.Errorf("probe %d under load: %v", i, err)
				}
				worst = max(worst, took[i])
				if took[i] >= defaultTimeout {
					slow++
				}
			}
			select {
			case v := <-dead:
				t.Errorf("overloaded master declared dead: %s", v.Reason)
			default:
			}
			t.Logf("%d probes under load: worst %s, %d slower than the default timeout %s",
				len(errs), worst, slow, defaultTimeout)
		})
	}
}

// testServer starts a MariaDB server with server_id 1 for the test (stopped
// at its end); integration tests are skipped under -short.
func testServer(t *testing.T) *sandbox.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs a MariaDB server")
	}
	ctx := context.Background()
	if err := sandbox.EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(t.TempDir(), "m"), ServerID: 1, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}
