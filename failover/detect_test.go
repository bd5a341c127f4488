package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
)

// probeStep is what a fakeProber does on one call.
type probeStep struct {
	err   error
	delay time.Duration // answer after this long, or fail with ctx's error if ctx ends first
}

var (
	refused   = probeStep{err: fmt.Errorf("%w: dial tcp 127.0.0.1:3306: connect: connection refused", ErrProbeRefused)}
	answered  = probeStep{}
	authError = probeStep{err: fmt.Errorf("%w: Error 1045 (28000): Access denied for user 'probe'", ErrProbeAuth)}
)

// fakeProber answers each call n (from 0) with script(n).
type fakeProber struct {
	calls  atomic.Int64
	script atomic.Pointer[func(n int) probeStep]
}

func newFakeProber(script func(n int) probeStep) *fakeProber {
	p := &fakeProber{}
	p.set(script)
	return p
}

func (p *fakeProber) set(script func(n int) probeStep) { p.script.Store(&script) }

func (p *fakeProber) Probe(ctx context.Context) error {
	n := int(p.calls.Add(1) - 1)
	step := (*p.script.Load())(n)
	if step.delay > 0 {
		t := time.NewTimer(step.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return step.err
}

// always returns a script that answers every call with s.
func always(s probeStep) func(int) probeStep { return func(int) probeStep { return s } }

var _ Prober = (*fakeProber)(nil)

// fakeStream is a StreamView whose state the test sets.
type fakeStream struct {
	mu   sync.Mutex
	down bool
	why  string
}

func (s *fakeStream) set(down bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down, s.why = down, why
}

func (s *fakeStream) StreamDown(time.Time) (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down, s.why
}

var _ StreamView = (*fakeStream)(nil)

// clockBase is where the tests' injected clock starts: verdict and view
// times in 2001 prove they come from the injected clock.
var clockBase = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// shiftedClock runs at real speed from clockBase.
func shiftedClock() func() time.Time {
	start := time.Now()
	return func() time.Time { return clockBase.Add(time.Since(start)) }
}

// testDetectConfig probes every millisecond: rounds are decided by the
// fakes, not by timing.
func testDetectConfig() DetectConfig {
	cfg := DefaultDetectConfig()
	cfg.ProbeInterval = time.Millisecond
	cfg.ProbeTimeout = 5 * time.Second
	cfg.WitnessTimeout = 10 * time.Second
	cfg.RestartGrace = 0 // the restart grace has tests of its own
	return cfg
}

// running is a Detector under test with its Run goroutine.
type running struct {
	d      *Detector
	p      *fakeProber
	dead   chan Verdict
	log    *harness.SyncBuffer
	cancel context.CancelFunc
	done   chan struct{}
}

// startDetector runs a Detector until the test ends; its log goes to t.Log
// on failure.
func startDetector(t *testing.T, cfg DetectConfig, p *fakeProber, s StreamView) *running {
	t.Helper()
	lb := &harness.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := &running{
		d: NewDetector(cfg, p, s, log, shiftedClock()), p: p,
		dead: make(chan Verdict, 1), log: lb, done: make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.d.Run(ctx, r.dead)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("detector log:\n%s", lb.String())
		}
	})
	return r
}

// stop ends Run and waits for it to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// waitRounds waits until at least n more rounds have completed: a round
// has completed, verdict included, once the next one has called Probe.
func (r *running) waitRounds(t *testing.T, n int) {
	t.Helper()
	target := r.p.calls.Load() + int64(n) + 1
	waitFor(t, fmt.Sprintf("%d probe rounds", n), func() bool { return r.p.calls.Load() >= target })
}

// waitVerdict waits for one verdict.
func (r *running) waitVerdict(t *testing.T) Verdict {
	t.Helper()
	select {
	case v := <-r.dead:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("no verdict; view %+v", r.d.View())
		return Verdict{}
	}
}

// noVerdict fails if a verdict is waiting.
func (r *running) noVerdict(t *testing.T) {
	t.Helper()
	select {
	case v := <-r.dead:
		t.Fatalf("unexpected verdict %+v", v)
	default:
	}
	if v := r.d.View(); v.Dead {
		t.Fatalf("view says dead: %+v", v)
	}
}

// waitFor polls cond until it holds; the deadline is generous for loaded
// machines.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDetector(t *testing.T) {
	tests := []struct {
		name        string
		cfg         func(*DetectConfig)
		probe       func(n int) probeStep
		streamDown  bool
		witness     []string
		wantDead    bool
		wantReason  []string // substrings of the verdict's reason
		wantWitness string   // substring of View().Witness, waited for
		wantView    func(DetectorView) error
	}{
		{
			name: "all three conditions, no witness: dead once", probe: always(refused), streamDown: true,
			wantDead: true,
			wantReason: []string{"probe failed 3 times in a row (refused: dial tcp 127.0.0.1:3306: connect: connection refused)",
				"stream down (connection reset)", "no witness configured"},
		},
		{
			name: "all three conditions, witness exit 0: dead once", probe: always(refused), streamDown: true,
			witness: []string{"sh", "-c", "echo master unreachable from here too; exit 0"}, wantDead: true,
			// Probing goes on while the witness runs: the count is the
			// one at the verdict, 3 or more.
			wantReason:  []string{" times in a row (refused:", "stream down (connection reset), witness agreed"},
			wantWitness: "witness agreed (exit 0): master unreachable from here too",
		},
		{
			name: "probe failing but stream up: alive", probe: always(refused), streamDown: false,
			wantView: func(v DetectorView) error {
				if v.Failures < 3 || v.StreamDown {
					return fmt.Errorf("want failures >= 3 and the stream up")
				}
				return nil
			},
		},
		{
			name: "stream down but probes answered (dump killed on the master): alive", probe: always(answered),
			streamDown: true,
			wantView: func(v DetectorView) error {
				if !v.ProbeOK || v.Failures != 0 || !v.StreamDown {
					return fmt.Errorf("want probe OK, no failures, stream down")
				}
				return nil
			},
		},
		{
			name: "probes fail 2 of 3 then succeed: count reset", streamDown: true,
			probe: func(n int) probeStep {
				if n%3 == 2 {
					return answered
				}
				return refused
			},
			wantView: func(v DetectorView) error {
				if v.Failures > 2 {
					return fmt.Errorf("failures %d: want at most 2", v.Failures)
				}
				return nil
			},
		},
		{
			name: "witness says alive (exit 1): no verdict", probe: always(refused), streamDown: true,
			witness:     []string{"sh", "-c", "echo master answers from db3 >&2; exit 1"},
			wantWitness: "witness says alive (exit status 1): master answers from db3",
		},
		{
			name: "witness hangs: timeout, no failover", probe: always(refused), streamDown: true,
			cfg:         func(c *DetectConfig) { c.WitnessTimeout = 50 * time.Millisecond },
			witness:     []string{"sh", "-c", "sleep 60"},
			wantWitness: "witness timed out after 50ms and was killed: counted as alive",
		},
		{
			name: "witness cannot run: no failover", probe: always(refused), streamDown: true,
			witness:     []string{"/nonexistent/witness"},
			wantWitness: "witness could not run",
		},
		{
			name: "slow but successful probes: alive", probe: always(probeStep{delay: 20 * time.Millisecond}),
			streamDown: true, cfg: func(c *DetectConfig) { c.ProbeTimeout = 2 * time.Second },
			wantView: func(v DetectorView) error {
				if !v.ProbeOK || v.Failures != 0 || v.ProbeTook < 20*time.Millisecond {
					return fmt.Errorf("want slow OK probes, no failures")
				}
				return nil
			},
		},
		{
			name: "probe that times out counts as failed", probe: always(probeStep{delay: time.Hour}),
			streamDown: true, cfg: func(c *DetectConfig) { c.ProbeTimeout = 10 * time.Millisecond },
			wantDead: true, wantReason: []string{"probe failed 3 times in a row (context deadline exceeded)"},
		},
		{
			name: "server refuses the probe's credentials: alive", probe: always(authError), streamDown: true,
			wantView: func(v DetectorView) error {
				if v.ProbeOK || v.Failures != 0 || !strings.Contains(v.ProbeErr, "auth error") {
					return fmt.Errorf("want the auth error shown and not counted")
				}
				return nil
			},
		},
		{
			name: "one failure is enough with failures = 1", probe: always(refused), streamDown: true,
			cfg: func(c *DetectConfig) { c.Failures = 1 }, wantDead: true,
			wantReason: []string{"probe failed 1 times in a row"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testDetectConfig()
			cfg.Witness = tt.witness
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			s := &fakeStream{}
			if tt.streamDown {
				s.set(true, "connection reset")
			}
			r := startDetector(t, cfg, newFakeProber(tt.probe), s)
			if tt.wantDead {
				v := r.waitVerdict(t)
				for _, want := range tt.wantReason {
					if !strings.Contains(v.Reason, want) {
						t.Errorf("reason %q: want it to contain %q", v.Reason, want)
					}
				}
				if strings.Contains(v.Reason, "\n") {
					t.Errorf("reason %q: want one line", v.Reason)
				}
				if v.At.Year() != clockBase.Year() {
					t.Errorf("verdict at %s: want the injected clock's time", v.At)
				}
			}
			if tt.wantWitness != "" {
				waitFor(t, "witness answer "+tt.wantWitness, func() bool {
					return strings.Contains(r.d.View().Witness, tt.wantWitness)
				})
			}
			r.waitRounds(t, 20)
			view := r.d.View()
			if tt.wantDead {
				if !view.Dead || view.Since.Year() != clockBase.Year() {
					t.Errorf("view %+v: want dead since the verdict", view)
				}
				select {
				case v := <-r.dead:
					t.Errorf("second verdict %+v without the master seen alive in between", v)
				default:
				}
			} else {
				r.noVerdict(t)
			}
			if tt.wantView != nil {
				if err := tt.wantView(view); err != nil {
					t.Errorf("view %+v: %v", view, err)
				}
			}
		})
	}
}

// TestDetectorRearms: after a verdict, a master seen alive re-arms the
// Detector, and a second death gives a second verdict.
func TestDetectorRearms(t *testing.T) {
	for _, how := range []string{"probe answers", "stream up"} {
		t.Run(how, func(t *testing.T) {
			p := newFakeProber(always(refused))
			s := &fakeStream{}
			s.set(true, "connection reset")
			r := startDetector(t, testDetectConfig(), p, s)
			first := r.waitVerdict(t)
			if how == "probe answers" {
				p.set(always(answered))
			} else {
				s.set(false, "")
			}
			waitFor(t, "the view to say alive", func() bool { return !r.d.View().Dead })
			alive := r.d.View()
			if !alive.Since.After(first.At) {
				t.Errorf("view since %s: want after the verdict at %s", alive.Since, first.At)
			}
			r.noVerdict(t)
			p.set(always(refused))
			s.set(true, "connection reset")
			second := r.waitVerdict(t)
			if !second.At.After(alive.Since) {
				t.Errorf("second verdict at %s: want after the master was seen alive at %s", second.At, alive.Since)
			}
		})
	}
}

// TestDetectorWitnessOnlyWhenSuspect: the witness does not run while the
// stream is up or the probes answer, and runs once both conditions hold.
func TestDetectorWitnessOnlyWhenSuspect(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	cfg := testDetectConfig()
	cfg.Witness = []string{"sh", "-c", `echo x >> "$1"; exit 1`, "witness", marker}
	p := newFakeProber(always(refused))
	s := &fakeStream{}
	r := startDetector(t, cfg, p, s)
	r.waitRounds(t, 20) // probe failing, stream up
	p.set(always(answered))
	s.set(true, "no packet for 2.1s")
	r.waitRounds(t, 20) // stream down, probe answering
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("witness ran before probe and stream both said dead (stat: %v)", err)
	}
	p.set(always(refused))
	waitFor(t, "the witness to run", func() bool { _, err := os.Stat(marker); return err == nil })
	r.noVerdict(t)
}

// TestDetectorWitnessRate: the witness, even when it answers at once, starts
// at most once per ProbeInterval, one run at a time, and runs again while
// the conditions keep holding.
func TestDetectorWitnessRate(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "runs")
	cfg := testDetectConfig()
	cfg.ProbeInterval = 20 * time.Millisecond
	cfg.Witness = []string{"sh", "-c", `echo x >> "$1"; exit 1`, "witness", log}
	s := &fakeStream{}
	s.set(true, "connection reset")
	start := time.Now()
	r := startDetector(t, cfg, newFakeProber(always(refused)), s)
	runs := func() int {
		b, _ := os.ReadFile(log)
		return bytes.Count(b, []byte("\n"))
	}
	waitFor(t, "5 witness runs", func() bool { return runs() >= 5 })
	r.stop(t)
	elapsed := time.Since(start)
	if n, most := runs(), int(elapsed/cfg.ProbeInterval)+1; n > most {
		t.Errorf("%d witness runs in %s: want at most %d (one per %s)", n, elapsed, most, cfg.ProbeInterval)
	}
	r.noVerdict(t)
}

// TestDetectorWitnessStoppedWhenAlive: a running witness is killed, with its
// process group, when the master is seen alive, and its run counts for
// nothing.
func TestDetectorWitnessStoppedWhenAlive(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	cfg := testDetectConfig()
	cfg.Witness = []string{"sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "witness", pidFile}
	p := newFakeProber(always(refused))
	s := &fakeStream{}
	s.set(true, "connection reset")
	r := startDetector(t, cfg, p, s)
	waitFor(t, "the witness to start", func() bool { b, _ := os.ReadFile(pidFile); return bytes.HasSuffix(b, []byte("\n")) })
	if !r.d.View().WitnessRunning {
		t.Errorf("view %+v: want the witness running", r.d.View())
	}
	p.set(always(answered))
	waitFor(t, "the witness to be stopped", func() bool {
		return strings.Contains(r.d.View().Witness, "witness stopped: master seen alive meanwhile")
	})
	waitGone(t, pidFile)
	r.noVerdict(t)
}

// TestDetectorWitnessTimeoutKillsGroup: at WitnessTimeout the witness's
// children die with it.
func TestDetectorWitnessTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	cfg := testDetectConfig()
	cfg.WitnessTimeout = 200 * time.Millisecond
	cfg.Witness = []string{"sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "witness", pidFile}
	s := &fakeStream{}
	s.set(true, "connection reset")
	r := startDetector(t, cfg, newFakeProber(always(refused)), s)
	waitFor(t, "the witness to time out", func() bool {
		return strings.Contains(r.d.View().Witness, "timed out after 200ms")
	})
	waitGone(t, pidFile)
	r.noVerdict(t)
	if !strings.Contains(r.log.String(), "timed out after 200ms") {
		t.Errorf("the timeout is not in the log")
	}
}

// waitGone waits until the process whose pid is in pidFile has exited (a
// zombie counts as exited).
func waitGone(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	waitFor(t, fmt.Sprintf("witness child %d to be killed", pid), func() bool {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		state, ok := procState(fmt.Sprintf("/proc/%d/stat", pid))
		return !ok || state == 'Z'
	})
}

// procState returns the state letter (R, S, T, Z, ...) in a /proc stat
// file, false if the file cannot be read (the process or thread is gone).
func procState(statPath string) (byte, bool) {
	stat, err := os.ReadFile(statPath)
	if err != nil {
		return 0, false
	}
	// PID (comm) STATE ...: comm may hold spaces and parentheses, so cut
	// after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return 0, false
	}
	return stat[i+2], true
}

// TestDetectorVerdictChannelFull: a verdict that finds the channel full is
// dropped, logged, and does not stop the probing.
func TestDetectorVerdictChannelFull(t *testing.T) {
	s := &fakeStream{}
	s.set(true, "connection reset")
	r := startDetector(t, testDetectConfig(), newFakeProber(always(refused)), s)
	stale := Verdict{Reason: "stale"}
	r.dead <- stale
	waitFor(t, "the view to say dead", func() bool { return r.d.View().Dead })
	r.waitRounds(t, 5)
	if v := <-r.dead; v != stale {
		t.Errorf("channel holds %+v: want the stale verdict untouched", v)
	}
	if !strings.Contains(r.log.String(), "verdict dropped") {
		t.Errorf("the dropped verdict is not in the log")
	}
}

func TestDetectConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*DetectConfig)
		wantErr string
	}{
		{name: "defaults", change: func(*DetectConfig) {}},
		{name: "witness", change: func(c *DetectConfig) { c.Witness = []string{"/usr/local/bin/check-master", "db1"} }},
		{name: "failures 0", change: func(c *DetectConfig) { c.Failures = 0 }, wantErr: "failover.failures = 0: want at least 1"},
		{name: "probe interval 0", change: func(c *DetectConfig) { c.ProbeInterval = 0 }, wantErr: "failover.probe_interval = 0s: want more than 0"},
		{name: "probe timeout negative", change: func(c *DetectConfig) { c.ProbeTimeout = -time.Second }, wantErr: "failover.probe_timeout = -1s: want more than 0"},
		{name: "stream silence 0", change: func(c *DetectConfig) { c.StreamSilence = 0 }, wantErr: "failover.stream_silence = 0s: want more than 0"},
		{name: "witness timeout 0", change: func(c *DetectConfig) { c.WitnessTimeout = 0 }, wantErr: "failover.witness_timeout = 0s: want more than 0"},
		{name: "witness without command", change: func(c *DetectConfig) { c.Witness = []string{"", "db1"} }, wantErr: `failover.witness = ["" "db1"]: the first element must name the command`},
		{name: "no restart grace", change: func(c *DetectConfig) { c.RestartGrace = 0 }},
		{name: "restart grace negative", change: func(c *DetectConfig) { c.RestartGrace = -time.Second }, wantErr: "failover.restart_grace = -1s: want 0 (no grace) or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultDetectConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestDefaultDetectConfigBudget: with the defaults the probe's share of the
// detection time stays near 1 s, so that detection plus promotion fit in
// about 2 s.
func TestDefaultDetectConfigBudget(t *testing.T) {
	c := DefaultDetectConfig()
	want := DetectConfig{ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond,
		Failures: 3, StreamSilence: 2 * time.Second, WitnessTimeout: 2 * time.Second, RestartGrace: 5 * time.Second}
	if c.ProbeInterval != want.ProbeInterval || c.ProbeTimeout != want.ProbeTimeout || c.Failures != want.Failures ||
		c.StreamSilence != want.StreamSilence || c.WitnessTimeout != want.WitnessTimeout || c.Witness != nil ||
		c.RestartGrace != want.RestartGrace {
		t.Fatalf("defaults %+v: want %+v", c, want)
	}
	// A refused master: Failures probes ProbeInterval apart, after waiting
	// up to one interval for the first.
	refused := time.Duration(c.Failures) * c.ProbeInterval
	// A silent host: every probe waits out its timeout.
	silent := c.ProbeInterval + time.Duration(c.Failures)*max(c.ProbeInterval, c.ProbeTimeout)
	if refused > 700*time.Millisecond || silent > 1200*time.Millisecond {
		t.Errorf("probe share of detection: %s refused, %s silent: want about 1 s at most", refused, silent)
	}
	// A refused master waits out the restart grace on top; with MariaDB's
	// default semi-sync timeout (10 s) the verdict must leave the
	// promotion room before the gate stops proving it lossless.
	if refused+c.RestartGrace > 10*time.Second-2*time.Second {
		t.Errorf("a crash is declared %s after it, too close to a 10 s semi-sync timeout", refused+c.RestartGrace)
	}
}

var (
	timedOut  = probeStep{err: fmt.Errorf("%w: 127.0.0.1:3306 did not answer within 300ms (i/o timeout)", ErrProbeTimeout)}
	lost      = probeStep{err: fmt.Errorf("%w: 127.0.0.1:3306: dial tcp: %w", ErrProbeNetwork, syscall.EHOSTUNREACH)}
	reset     = probeStep{err: fmt.Errorf("%w: 127.0.0.1:3306: read: %w", ErrProbeNetwork, syscall.ECONNRESET)}
	notMaster = probeStep{err: fmt.Errorf("%w: 127.0.0.1:3306 answers with server_id 7, the master's is 1", ErrProbeNotMaster)}
)

// TestDetectorRestartGrace: a master whose host refuses connections is
// restarting until the restart grace runs out; one that times out (a dead
// host, a cut network) or fails otherwise is dead at once; a restart that
// ends within the grace is no death. One case per row of the Detector's
// table.
func TestDetectorRestartGrace(t *testing.T) {
	const hour = time.Hour // a grace no test waits out
	tests := []struct {
		name  string
		grace time.Duration
		// limit, if set, is LimitGrace's cap, relative to the start.
		limit time.Duration
		probe func(n int) probeStep
		// wantDead: a verdict is expected; with it, wantReason substrings.
		wantDead   bool
		wantReason []string
		// wantGraceHeld: the verdict came no sooner than the grace (or
		// the cap) after the first refused probe.
		wantGraceHeld time.Duration
		// wantView checks the view after 20 more rounds.
		wantView func(DetectorView) error
	}{
		{
			name: "refused within the grace: restarting, no verdict", grace: hour, probe: always(refused),
			wantView: func(v DetectorView) error {
				if !v.Restarting || v.Failures < 3 || v.RefusedSince.IsZero() || v.Grace != hour ||
					!strings.HasPrefix(v.Restart, "master restarting: connection refused for ") || !strings.HasSuffix(v.Restart, ", grace 1h0m0s") {
					return fmt.Errorf("want restarting with its line")
				}
				return nil
			},
		},
		{
			name: "refused past the grace: dead, the reason says so", grace: 150 * time.Millisecond, probe: always(refused),
			wantDead:      true,
			wantReason:    []string{"probe failed ", "(refused: ", "master refused connections for ", "longer than the restart grace 150ms: a death"},
			wantGraceHeld: 150 * time.Millisecond,
		},
		{
			name: "probes time out (dead host, cut network): dead at once", grace: hour, probe: always(timedOut),
			wantDead: true, wantReason: []string{"probe failed 3 times in a row (timeout: "},
			wantView: func(v DetectorView) error {
				if v.Restarting || v.Restart != "" || !v.RefusedSince.IsZero() {
					return fmt.Errorf("want no restart state")
				}
				return nil
			},
		},
		{
			name: "no route to host: dead at once", grace: hour, probe: always(lost),
			wantDead: true, wantReason: []string{"(connection lost: "},
		},
		{
			name: "another server on the address: dead at once", grace: hour, probe: always(notMaster),
			wantDead: true, wantReason: []string{"(not the master: "},
		},
		{
			name: "refused, then the host stops answering: dead at once", grace: hour,
			probe: func(n int) probeStep {
				if n < 10 {
					return refused
				}
				return timedOut
			},
			wantDead: true, wantReason: []string{"(timeout: "},
		},
		{
			name: "one timeout among refusals: the grace ends, dead", grace: hour,
			probe: func(n int) probeStep {
				if n == 5 {
					return timedOut
				}
				return refused
			},
			wantDead: true, wantReason: []string{"probe failed 6 times in a row (timeout: "},
		},
		{
			name: "reset by the peer (mariadbd killed under the probe), then refused: restarting", grace: hour,
			probe: func(n int) probeStep {
				if n == 0 {
					return reset
				}
				return refused
			},
			wantView: func(v DetectorView) error {
				if !v.Restarting || v.Failures < 3 {
					return fmt.Errorf("want restarting")
				}
				return nil
			},
		},
		{
			name: "the restart ends within the grace: alive, count and grace reset", grace: hour,
			probe: func(n int) probeStep {
				if n < 10 {
					return refused
				}
				return answered
			},
			wantView: func(v DetectorView) error {
				if v.Restarting || v.Restart != "" || v.Failures != 0 || !v.ProbeOK {
					return fmt.Errorf("want alive, no restart state")
				}
				return nil
			},
		},
		{
			name: "the server says shutdown in progress: alive", grace: hour,
			probe: always(probeStep{err: fmt.Errorf("%w: Error 1053 (08S01): Server shutdown in progress", ErrProbeServer)}),
			wantView: func(v DetectorView) error {
				if v.Restarting || v.Failures != 0 {
					return fmt.Errorf("want alive")
				}
				return nil
			},
		},
		{
			name: "the gate's limit caps the grace: dead at the limit", grace: hour, limit: 150 * time.Millisecond,
			probe: always(refused), wantDead: true,
			wantReason:    []string{"longer than the restart grace ", "(restart_grace 1h0m0s, capped: the test's limit)"},
			wantGraceHeld: 100 * time.Millisecond, // the cap counts from the start, the run from its first failure
		},
		{
			name: "grace 0: dead at once", grace: 0, probe: always(refused),
			wantDead: true, wantReason: []string{"probe failed 3 times in a row (refused: "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testDetectConfig()
			cfg.RestartGrace = tt.grace
			s := &fakeStream{}
			s.set(true, "master ended the dump (EOF)")
			p := newFakeProber(tt.probe)
			r := startDetectorLimited(t, cfg, p, s, tt.limit)
			if tt.wantDead {
				v := r.waitVerdict(t)
				for _, want := range tt.wantReason {
					if !strings.Contains(v.Reason, want) {
						t.Errorf("reason %q: want it to contain %q", v.Reason, want)
					}
				}
				if tt.wantGraceHeld > 0 {
					// The first refused probe ended no later than the
					// first round; the verdict came after the grace.
					if held := v.At.Sub(clockBase); held < tt.wantGraceHeld {
						t.Errorf("verdict %s after the start: want the grace (%s) waited out", held, tt.wantGraceHeld)
					}
				}
			}
			r.waitRounds(t, 20)
			if !tt.wantDead {
				r.noVerdict(t)
			}
			if tt.wantView != nil {
				if v := r.d.View(); tt.wantView(v) != nil {
					t.Errorf("view %+v: %v", v, tt.wantView(v))
				}
			}
		})
	}
}

// startDetectorLimited is startDetector with LimitGrace capping the grace
// at clockBase+limit (no cap when limit is 0).
func startDetectorLimited(t *testing.T, cfg DetectConfig, p *fakeProber, s StreamView, limit time.Duration) *running {
	t.Helper()
	if limit == 0 {
		return startDetector(t, cfg, p, s)
	}
	lb := &harness.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r := &running{d: NewDetector(cfg, p, s, log, shiftedClock()), p: p, dead: make(chan Verdict, 1), log: lb, done: make(chan struct{})}
	r.d.LimitGrace(func() (time.Time, string) { return clockBase.Add(limit), "the test's limit" })
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.d.Run(ctx, r.dead)
	}()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("detector log:\n%s", lb.String())
		}
	})
	return r
}
