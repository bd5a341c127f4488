package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DetectConfig configures the Detector: the [failover] section's detection
// keys. With the defaults a master whose mariadbd died on a live host (the
// kernel resets its connections) is declared dead about 0.4-0.6 s after its
// death: three refused probes 200 ms apart, the stream already down by its
// reset. A master whose host or network died sends no reset, so the stream
// counts as down only after StreamSilence and each probe waits out
// ProbeTimeout: then the verdict comes after max(Failures probes of
// ProbeTimeout each, StreamSilence since the last packet), 1-2 s with the
// defaults and a 1 s heartbeat. Add the witness's own time when one is
// configured.
type DetectConfig struct {
	// ProbeInterval is the time from the start of one probe to the start
	// of the next. Probes never overlap: one that takes longer than
	// ProbeInterval is followed at once by the next.
	ProbeInterval time.Duration `toml:"probe_interval"`

	// ProbeTimeout bounds one probe: connecting if needed, authenticating
	// and SELECT @@server_id. A probe without an answer within it counts as
	// failed, exactly like a refused one: a master whose answers take
	// longer than ProbeTimeout is indistinguishable from a dead one. So
	// ProbeTimeout must exceed the worst response time of the master at
	// its heaviest load; see the Detector's documentation for how to
	// choose it. Failures x max(ProbeInterval, ProbeTimeout) bounds the
	// probe's share of the detection time.
	ProbeTimeout time.Duration `toml:"probe_timeout"`

	// Failures is how many probes in a row must fail. One answered probe
	// starts the count again.
	Failures int `toml:"failures"`

	// StreamSilence is how long the replication stream may deliver nothing,
	// no event and no heartbeat, before it counts as down even though its
	// TCP connection looks up. The StreamView applies it; the caller sets
	// it to twice the master's heartbeat period.
	StreamSilence time.Duration `toml:"stream_silence"`

	// Witness is the argv of an operator's command that checks the master
	// from elsewhere (another host, another network path), as MHA's
	// secondary_check_script does. Exit status 0 means the master is dead
	// from there too; any other status, a timeout or a command that cannot
	// run means alive, and there is no failover. Empty: no witness, the
	// probe and the stream decide alone. The command runs without a shell
	// (write ["sh", "-c", "..."] for one) in a process group of its own.
	Witness []string `toml:"witness"`

	// WitnessTimeout bounds one run of the witness; at the timeout its
	// whole process group is killed and the answer counts as alive.
	WitnessTimeout time.Duration `toml:"witness_timeout"`

	// RestartGrace is how long a master whose host refuses the connection
	// (the host is up, nothing listens: mariadbd is restarting, or crashed
	// and systemd restarts it) may stay away before it is declared dead.
	// Probes that time out or fail otherwise (a dead host, a cut network,
	// a frozen server) get no grace. Zero turns the grace off. The grace
	// never runs past the point where the gate could still prove a
	// promotion lossless (see Detector.LimitGrace).
	RestartGrace time.Duration `toml:"restart_grace"`
}

// DefaultDetectConfig returns the defaults: a 200 ms probe interval, a
// 300 ms probe timeout, 3 failures, a 2 s stream silence (twice a 1 s
// heartbeat), no witness, a 2 s witness timeout and a 5 s restart grace.
//
// Why 5 s: a routine restart of mariadbd (SIGTERM, shutdown, start) takes
// 1-3 s on a server with a modest buffer pool, and must not cost a
// failover; a crash that stays down must still fail over while the gate
// can prove it lossless, that is within the master's
// rpl_semi_sync_master_timeout (10 s by default) of its last word, with
// room for the promotion's start. A longer grace is capped to that point
// anyway (LimitGrace); a restart longer than the grace is a failover, and
// the old master returning writable is then fenced by the promoted agent.
func DefaultDetectConfig() DetectConfig {
	return DetectConfig{
		ProbeInterval:  200 * time.Millisecond,
		ProbeTimeout:   300 * time.Millisecond,
		Failures:       3,
		StreamSilence:  2 * time.Second,
		WitnessTimeout: 2 * time.Second,
		RestartGrace:   5 * time.Second,
	}
}

// Validate reports the first setting that the Detector cannot work with,
// naming its key and value.
func (c DetectConfig) Validate() error {
	positive := []struct {
		key string
		v   time.Duration
	}{
		{"probe_interval", c.ProbeInterval},
		{"probe_timeout", c.ProbeTimeout},
		{"stream_silence", c.StreamSilence},
		{"witness_timeout", c.WitnessTimeout},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("failover.%s = %s: want more than 0", p.key, p.v)
		}
	}
	if c.Failures < 1 {
		return fmt.Errorf("failover.failures = %d: want at least 1", c.Failures)
	}
	if c.RestartGrace < 0 {
		return fmt.Errorf("failover.restart_grace = %s: want 0 (no grace) or more", c.RestartGrace)
	}
	if len(c.Witness) > 0 && strings.TrimSpace(c.Witness[0]) == "" {
		return fmt.Errorf("failover.witness = %q: the first element must name the command", c.Witness)
	}
	return nil
}

// StreamView tells the Detector whether the replication stream from the
// master is down. The agent implements it from the receiver's status.
type StreamView interface {
	// StreamDown reports whether, at now, the stream is down: not
	// streaming (disconnected, reconnecting, refused), or connected but
	// without any packet, event or heartbeat, for StreamSilence. why is one
	// line for people ("connection reset", "no packet for 2.1s"); it may be
	// empty when the stream is up. It must not block.
	StreamDown(now time.Time) (down bool, why string)
}

// Verdict is the Detector's declaration that the master is dead.
type Verdict struct {
	// At is when the verdict was reached, by the Detector's clock.
	At time.Time
	// Reason is one line with the evidence: "probe failed 3 times in a row
	// (refused: dial tcp ...: connection refused), stream down (connection
	// reset), witness agreed".
	Reason string
}

// DetectorView is a snapshot of the Detector's state, for status.
type DetectorView struct {
	// ProbeAt is when the last probe ended; zero before the first.
	ProbeAt time.Time
	// ProbeOK says the last probe was answered without error.
	ProbeOK bool
	// ProbeErr is the last probe's error, "" if ProbeOK. An error that
	// proves a server answered (ErrProbeAuth, ErrProbeServer) is shown
	// here but not counted in Failures.
	ProbeErr string
	// ProbeTook is how long the last probe took.
	ProbeTook time.Duration
	// Failures is the number of failed probes in a row.
	Failures int
	// StreamDown and StreamWhy are the stream's state at the last probe.
	StreamDown bool
	StreamWhy  string
	// Witness is the witness's last answer ("witness agreed (exit 0)",
	// "witness says alive (exit status 1)", "witness timed out after 2s
	// and was killed: counted as alive", ...); "not configured" without a
	// witness, "" before its first run. WitnessAt is when it ended.
	Witness   string
	WitnessAt time.Time
	// WitnessRunning says a witness run is under way.
	WitnessRunning bool
	// Restarting says the verdict is held: every failed probe of the
	// current run was refused (the host answers, mariadbd does not
	// listen), for less than the restart grace. RefusedSince is when the
	// first of them failed (zero when the run is not all refused); Grace is
	// the grace in force for it (RestartGrace, or less where LimitGrace
	// caps it). Restart is the line for status: "master restarting:
	// connection refused for 3.1s, grace 5s", or after the grace "master
	// refused connections for 5.2s, longer than the restart grace 5s: a
	// death"; "" when the probes are answered or fail otherwise.
	Restarting   bool
	RefusedSince time.Time
	Grace        time.Duration
	Restart      string
	// Dead says the master was declared dead and has not been seen alive
	// since.
	Dead bool
	// Since is when Dead last changed: the verdict's time while Dead, and
	// otherwise when the master was seen alive again, or when Run started.
	Since time.Time
}

// Detector decides when the master is dead. It declares the master dead
// only when all three hold:
//
//  1. the probe failed Failures times in a row (refused, timed out, lost,
//     or another server answered on the address);
//  2. the stream is down (StreamView);
//  3. no witness is configured, or the witness, started once 1 and 2 held,
//     exited 0 within WitnessTimeout while 1 and 2 kept holding;
//  4. the failures are not a restart within its grace: when every failed
//     probe of the run was refused (ErrProbeRefused: the host's kernel
//     answers, nothing listens on the port) or had its connection closed
//     or reset by the peer (mariadbd ended under it), 1 counts only once
//     the first of them is RestartGrace old (or the LimitGrace cap, if
//     earlier). One probe that times out or fails otherwise (unreachable
//     host or network, unresolved name, another server) ends the grace.
//
// # Restart or death
//
// What the agent sees tells a restart from a death only in part:
//
//	signal                                   meaning                         verdict
//	probe refused (RST) or closed/reset by   host up, mariadbd not          after RestartGrace (capped)
//	the peer, stream EOF/refused
//	                                         listening: a restart, or a
//	                                         crash systemd may restart
//	probe times out, host or network         dead host, cut network,        at once (condition 1)
//	unreachable, name not resolved
//	                                         frozen server
//	refused, then a timeout                  the host died meanwhile        at once
//	"shutdown in progress" (1053), auth      a server answered              alive: count reset
//	error, too many connections
//	another server_id on the address         not the master                 at once
//
// A refusal cannot tell a clean restart from a crash: both close the
// listener. So the grace is a bound, not a guess: a restart that ends
// within it costs no failover (the stream resumes where the relay log
// ends); a crash that does not come back fails over once it runs out; a
// restart that outlasts it is a failover, after which the promoted agent
// fences the returning old master (OldMasterWatch). The grace cannot
// outlast the gate: a promotion is provably lossless only within the
// master's semi-sync timeout of its last word, so the agent caps the grace
// there (LimitGrace), and a grace longer than that buys nothing.
//
// Any probe the master answers resets the count, however slow, as long as
// it is within ProbeTimeout; so does an answer that refuses the probe
// (wrong password, too many connections): a server that says no is alive.
// A master that answers probes while only the stream broke (its dump
// thread was killed) is alive; so is a stream that delivers while the
// probes fail (the probe's path is broken, not the master). The master is
// "seen alive" when a probe is answered or the stream is up: that resets
// everything, stops a running witness, and re-arms the Detector after a
// verdict. A verdict is sent once per death: the next one only after the
// master was seen alive in between.
//
// The witness is expensive, so it runs only while 1 and 2 hold, one run at
// a time, at most once per ProbeInterval, again each round while they keep
// holding. Probing continues while it runs; a witness answer from before
// the master was last seen alive is ignored. A witness that hangs is killed
// with its process group at WitnessTimeout and counts as alive: the safe
// side is no failover.
//
// # Choosing ProbeTimeout
//
// A probe that times out counts as failed, so a master slower than
// ProbeTimeout looks dead to the probe. The stream condition protects a
// loaded master whose dump thread still delivers events or heartbeats, but
// a master so overloaded that it neither answers probes nor streams within
// StreamSilence is declared dead (given the witness's agreement, if any).
// Choose ProbeTimeout above the worst latency of SELECT @@server_id on an
// established connection at the master's peak load, with a margin of about
// three times; measure it, for example with the probe account in a loop
// during the busiest batch job. The probe keeps its connection, so the
// usual cost is one round trip and one scheduling slice of the server; a
// new connection (after any failure) also costs a thread and an
// authentication. Things that make the server slow to answer a trivial
// query: CPU starvation or swapping on the host, a full thread pool
// (thread_handling=pool-of-threads: give the probe MariaDB's extra_port),
// max_connections reached (that answers with an error, which counts as
// alive). The defaults (300 ms) suit a master on a dedicated host; raise
// ProbeTimeout, or Failures, where the failover budget allows: the probe's
// share of detection is about Failures x max(ProbeInterval, ProbeTimeout).
//
// Run owns the probing; View may be called from any goroutine.
type Detector struct {
	cfg    DetectConfig
	prober Prober
	stream StreamView
	log    *slog.Logger
	now    func() time.Time

	mu sync.Mutex // mu guards the fields below
	v  DetectorView
	// epoch counts the rounds in which the master was seen alive; a
	// witness answer counts only if no such round came after its start.
	epoch        uint64
	witnessStart time.Time // when the last witness run started
	witnessEpoch uint64    // the epoch of the last witness run
	lastProbeErr string    // the last error counted as a failure
	// allRefused says every failed probe of the current run of failures
	// was refused, or closed by the peer (probeHostUp); the run started at
	// v.RefusedSince.
	allRefused bool
	// graceLimit, if set, caps the restart grace (LimitGrace).
	graceLimit func() (time.Time, string)
}

// LimitGrace caps the restart grace: limit returns the latest time at which
// a verdict is still of use, and why ("the gate proves a promotion lossless
// only until 12:00:08.500: 10s semi-sync timeout after the last word"); a
// zero time means no cap. The agent sets it from the gate: a grace that
// outlasts the semi-sync timeout would turn every crash into a refused
// promotion. Call it before Run; limit must not block.
func (d *Detector) LimitGrace(limit func() (time.Time, string)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.graceLimit = limit
}

// NewDetector returns a Detector that probes with p and watches the stream
// through s. cfg must pass Validate, and p and s must not be nil: NewDetector
// panics otherwise, as these are the caller's mistakes. log may be nil
// (discarded); now is the clock, time.Now if nil.
func NewDetector(cfg DetectConfig, p Prober, s StreamView, log *slog.Logger, now func() time.Time) *Detector {
	if err := cfg.Validate(); err != nil {
		panic("failover: NewDetector: " + err.Error())
	}
	if p == nil || s == nil {
		panic("failover: NewDetector: nil Prober or StreamView")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	d := &Detector{cfg: cfg, prober: p, stream: s, log: log.With("component", "detector"), now: now}
	if len(cfg.Witness) == 0 {
		d.v.Witness = "not configured"
	}
	return d
}

// View returns a snapshot of the Detector's state.
func (d *Detector) View() DetectorView {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.v
}

// witnessAnswer is the outcome of one witness run.
type witnessAnswer struct {
	epoch  uint64 // the Detector's epoch when the run started
	agreed bool   // exit status 0 within the timeout
	text   string // one line for the view and the log
}

// Run probes the master every ProbeInterval until ctx is done, and sends a
// Verdict on dead when it declares the master dead. The send does not block:
// give dead a buffer of 1; a verdict that finds the buffer full is dropped
// and logged (View still says Dead). A consumer that takes a verdict late
// should check View().Dead. Run returns once ctx is done and a running
// witness has been killed and reaped. Call Run once.
func (d *Detector) Run(ctx context.Context, dead chan<- Verdict) {
	d.mu.Lock()
	d.v.Since = d.now()
	d.mu.Unlock()
	answers := make(chan witnessAnswer, 1)
	stopWitness := context.CancelFunc(func() {})
	running := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			stopWitness()
			if running {
				<-answers
			}
			return
		case a := <-answers:
			running = false
			stopWitness()
			d.witnessAnswered(a, dead)
		case <-timer.C:
			start := time.Now()
			alive := d.round(ctx)
			if ctx.Err() != nil {
				continue
			}
			if alive && running {
				stopWitness() // its answer comes back stale and is ignored
			}
			if !running {
				if epoch, ok := d.witnessDue(); ok {
					var wctx context.Context
					wctx, stopWitness = context.WithCancel(ctx)
					running = true
					go func() { answers <- d.runWitness(wctx, epoch) }()
				}
			}
			d.declareWithoutWitness(dead)
			timer.Reset(max(0, d.cfg.ProbeInterval-time.Since(start)))
		}
	}
}

// round probes once, reads the stream's state and updates the view. It
// reports whether the master was seen alive (a probe answered or the stream
// up).
func (d *Detector) round(ctx context.Context) bool {
	pctx, cancel := context.WithTimeout(ctx, d.cfg.ProbeTimeout)
	start := d.now()
	err := d.prober.Probe(pctx)
	cancel()
	end := d.now()
	if ctx.Err() != nil {
		return false // stopping: the probe was cut short, not failed
	}
	down, why := d.stream.StreamDown(end)
	answered := err == nil || probeAnswered(err)

	d.mu.Lock()
	defer d.mu.Unlock()
	prev := d.v
	d.v.ProbeAt, d.v.ProbeTook, d.v.ProbeOK, d.v.ProbeErr = end, end.Sub(start), err == nil, ""
	if err != nil {
		d.v.ProbeErr = oneLine(err.Error())
	}
	if answered {
		d.v.Failures = 0
		d.allRefused, d.v.RefusedSince = false, time.Time{}
	} else {
		if d.v.Failures == 0 {
			d.allRefused, d.v.RefusedSince = true, end
		}
		if !probeHostUp(err) {
			d.allRefused, d.v.RefusedSince = false, time.Time{}
		}
		d.v.Failures++
		d.lastProbeErr = d.v.ProbeErr
	}
	d.v.StreamDown, d.v.StreamWhy = down, oneLine(why)
	d.restartLocked(end)
	alive := answered || !down
	if alive {
		d.epoch++
		if d.v.Dead {
			d.v.Dead, d.v.Since = false, end
			d.log.Warn("master seen alive again after the verdict; detector re-armed",
				"probe_ok", d.v.ProbeOK, "stream_down", down)
		}
	}
	d.logRound(prev, err, answered)
	return alive
}

// logRound logs the changes of one round, not every probe. Called with
// d.mu held.
func (d *Detector) logRound(prev DetectorView, err error, answered bool) {
	switch {
	case answered && err != nil && prev.ProbeErr != d.v.ProbeErr:
		d.log.Warn("master answers but refuses the probe; counted as alive, fix the probe's account",
			"err", d.v.ProbeErr)
	case answered && prev.Failures > 0:
		d.log.Info("master answers the probe again", "after_failures", prev.Failures, "took", d.v.ProbeTook)
	case !answered && d.v.Failures == 1:
		d.log.Warn("master probe failed", "err", d.v.ProbeErr)
	case !answered && d.v.Failures == d.cfg.Failures:
		d.log.Warn("master probe failed the configured number of times in a row",
			"failures", d.v.Failures, "err", d.v.ProbeErr)
	case !answered:
		d.log.Debug("master probe failed", "failures", d.v.Failures, "err", d.v.ProbeErr)
	}
	// Only the change of state: the reason may change every round ("no
	// packet for 2.1s", "2.3s", ...).
	if d.v.StreamDown != prev.StreamDown {
		if d.v.StreamDown {
			d.log.Warn("stream down", "why", d.v.StreamWhy)
		} else if !prev.ProbeAt.IsZero() {
			d.log.Info("stream up")
		}
	}
}

// restartLocked updates the restart view at now: whether the current run
// of failures is all refused and within the grace. Called with d.mu held.
func (d *Detector) restartLocked(now time.Time) {
	wasRestarting := d.v.Restarting
	d.v.Restarting, d.v.Grace, d.v.Restart = false, 0, ""
	if !d.allRefused || d.cfg.RestartGrace <= 0 {
		if wasRestarting {
			d.log.Warn("master no longer refusing: the probe fails otherwise; no restart grace", "err", d.v.ProbeErr)
		}
		return
	}
	since := d.v.RefusedSince
	refusedFor := now.Sub(since).Round(100 * time.Millisecond)
	grace, capped := d.cfg.RestartGrace, ""
	if d.graceLimit != nil {
		if limit, why := d.graceLimit(); !limit.IsZero() && limit.Sub(since) < grace {
			grace, capped = max(0, limit.Sub(since)).Round(100*time.Millisecond), why
		}
	}
	d.v.Grace = grace
	graceText := fmt.Sprintf("grace %s", grace)
	if capped != "" {
		graceText = fmt.Sprintf("grace %s (restart_grace %s, capped: %s)", grace, d.cfg.RestartGrace, capped)
	}
	if now.Sub(since) < grace {
		d.v.Restarting = true
		d.v.Restart = fmt.Sprintf("master restarting: connection refused for %s, %s", refusedFor, graceText)
		if !wasRestarting {
			d.log.Warn("master refuses connections: the host is up, mariadbd is not listening (a restart?); the verdict waits for the grace",
				"grace", grace, "capped", capped)
		}
		return
	}
	d.v.Restart = fmt.Sprintf("master refused connections for %s, longer than the restart %s: a death", refusedFor, graceText)
	if wasRestarting {
		d.log.Warn("master still refuses connections after the restart grace", "refused_for", refusedFor, "grace", grace)
	}
}

// suspectLocked reports whether conditions 1 and 2 hold: enough failed
// probes in a row and the stream down, and no restart grace holds the
// verdict. Called with d.mu held.
func (d *Detector) suspectLocked() bool {
	return d.v.Failures >= d.cfg.Failures && d.v.StreamDown && !d.v.Restarting
}

// witnessDue reports whether a witness run should start now, and marks it
// started: a witness is configured, no verdict stands, conditions 1 and 2
// hold, and the last run started at least ProbeInterval ago. It returns the
// epoch the run belongs to.
func (d *Detector) witnessDue() (uint64, bool) {
	if len(d.cfg.Witness) == 0 {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.v.Dead || !d.suspectLocked() ||
		(!d.witnessStart.IsZero() && now.Sub(d.witnessStart) < d.cfg.ProbeInterval) {
		return 0, false
	}
	// While the witness keeps saying alive it runs every round: log the
	// first run of each suspicion only.
	level := slog.LevelDebug
	if d.witnessEpoch != d.epoch || d.witnessStart.IsZero() {
		level = slog.LevelInfo
	}
	d.log.Log(context.Background(), level, "probe failing and stream down: asking the witness", "argv", d.cfg.Witness)
	d.witnessStart, d.witnessEpoch = now, d.epoch
	d.v.WitnessRunning = true
	return d.epoch, true
}

// declareWithoutWitness declares the master dead if no witness is
// configured and conditions 1 and 2 hold.
func (d *Detector) declareWithoutWitness(dead chan<- Verdict) {
	if len(d.cfg.Witness) > 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.v.Dead && d.suspectLocked() {
		d.declareLocked(dead, "no witness configured")
	}
}

// witnessAnswered records a witness's answer and declares the master dead
// if the witness agreed and the master was not seen alive since the run
// started.
func (d *Detector) witnessAnswered(a witnessAnswer, dead chan<- Verdict) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.v.WitnessRunning = false
	d.v.WitnessAt = d.now()
	stale := a.epoch != d.epoch
	text := a.text
	if stale && a.agreed {
		text += " (ignored: master seen alive since the witness started)"
	}
	if text != d.v.Witness {
		d.log.Info("witness answered", "answer", text)
	}
	d.v.Witness = text
	if a.agreed && !stale && !d.v.Dead && d.suspectLocked() {
		d.declareLocked(dead, "witness agreed")
	}
}

// declareLocked marks the master dead and sends the verdict without
// blocking. Called with d.mu held.
func (d *Detector) declareLocked(dead chan<- Verdict, witness string) {
	at := d.now()
	reason := fmt.Sprintf("probe failed %d times in a row (%s), stream down (%s), %s",
		d.v.Failures, d.lastProbeErr, d.v.StreamWhy, witness)
	if d.v.Restart != "" {
		reason += "; " + d.v.Restart
	}
	d.v.Dead, d.v.Since = true, at
	d.log.Error("master declared dead", "reason", reason)
	select {
	case dead <- Verdict{At: at, Reason: reason}:
	default:
		d.log.Error("verdict dropped: the previous one was not taken yet", "reason", reason)
	}
}

// runWitness runs the witness command once under WitnessTimeout in its own
// process group, killed as a whole at the timeout or when ctx is done.
func (d *Detector) runWitness(ctx context.Context, epoch uint64) witnessAnswer {
	tctx, cancel := context.WithTimeout(ctx, d.cfg.WitnessTimeout)
	defer cancel()
	argv := d.cfg.Witness
	cmd := exec.CommandContext(tctx, argv[0], argv[1:]...)
	cmd.Env = withoutSecrets(os.Environ()) // no HOTSTANDBY_*_PASSWORD, as for hooks
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Bounds Wait when a process that escaped the group keeps the output
	// pipe open.
	cmd.WaitDelay = 200 * time.Millisecond
	out := &witnessOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	a := witnessAnswer{epoch: epoch}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		a.text = "witness stopped: master seen alive meanwhile"
	case tctx.Err() != nil:
		a.text = fmt.Sprintf("witness timed out after %s and was killed: counted as alive", d.cfg.WitnessTimeout)
	case err == nil:
		a.agreed, a.text = true, "witness agreed (exit 0)"
	case errors.As(err, &exit):
		a.text = fmt.Sprintf("witness says alive (%s)", exit)
	default:
		a.text = fmt.Sprintf("witness could not run: %v: counted as alive", err)
	}
	if last := out.lastLine(); last != "" {
		a.text += ": " + last
	}
	return a
}

// witnessOutput keeps the tail of the witness's output.
type witnessOutput struct {
	mu  sync.Mutex // mu guards buf: stdout and stderr are copied concurrently
	buf []byte
}

// witnessOutputMax is how much of the witness's output is kept.
const witnessOutputMax = 512

func (w *witnessOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > witnessOutputMax {
		w.buf = w.buf[len(w.buf)-witnessOutputMax:]
	}
	return len(p), nil
}

// lastLine returns the last non-empty line of the output, at most 200 bytes.
func (w *witnessOutput) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(w.buf)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if len(last) > 200 {
		last = last[:200] + "..."
	}
	return last
}

// oneLine folds s onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
