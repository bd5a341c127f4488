package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	golog "github.com/siddontang/go-log/log"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
)

// Agent is the daemon: it streams the master's binlog into the relay log,
// acknowledges durable positions and serves its status.
type Agent struct {
	cfg      Config
	log      *slog.Logger
	store    *checkpoint.Store
	recv     *ingest.Receiver
	mode     applyMode // how the standby applies: picked once in newAgent
	metrics  *metrics
	monitor  *ingest.Monitor
	skips    skipRegistry   // operators' skips until the standby commits them
	roleOps  roleOpLock     // one promote, switchover or rejoin at a time
	failover *failoverParts // nil without a [standby] section
	serve    serveParts     // the binlog server, with [serve]
	oldWatch oldMasterWatch // the promoted agent's watch of the old master

	// Set by Run: how the promoter stops the receiver for good, and learns
	// that it has stopped.
	ctx        context.Context // the daemon's lifetime (promotions run on it)
	stopStream func()
	recvDone   chan struct{}
}

// New opens the agent's data directory (0700) and checkpoint store. Only one
// agent may use a data directory at a time.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	return newAgent(cfg, log, ingest.Hooks{})
}

func newAgent(cfg Config, log *slog.Logger, hooks ingest.Hooks) (*Agent, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, unwrapPathError(err))
	}
	store, err := checkpoint.Open(cfg.CheckpointPath(), false)
	if err != nil {
		if errors.Is(err, checkpoint.ErrLocked) {
			return nil, fmt.Errorf("data_dir %s is in use by another hotstandby process", cfg.DataDir)
		}
		return nil, err
	}
	// A clone that has not completed left a partial copy on the standby.
	if c, err := store.LoadClone(); err != nil || (c != nil && c.State != checkpoint.CloneComplete) {
		store.Close()
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the standby holds a partial copy: the clone started %s is %s (%s): run `hotstandby clone` with this config again (it starts over); the agent does not stream onto a partial copy",
			c.StartedAt.Format(time.RFC3339), c.State, cmp.Or(c.Error, "interrupted: no error was recorded"))
	}
	a := &Agent{cfg: cfg, log: log, store: store}
	a.metrics = newMetrics()
	ic := cfg.IngestConfig()
	ic.Metrics = ingest.Metrics{Fsync: a.metrics.fsync, AckLatency: a.metrics.ackLatency}
	a.recv = ingest.NewReceiver(ic, log, store, hooks)
	if a.mode, err = newApplyMode(a); err != nil {
		store.Close()
		return nil, err
	}
	a.monitor = ingest.NewMonitor(cfg.monitorSource(ic.Source), log, store, a.recv)
	for _, w := range cfg.TLSWarnings() {
		log.Warn(w)
	}
	if cfg.Standby.Enabled() { // the one question about the standby: is there one to fail over to
		fp, err := a.newFailover()
		if err != nil {
			store.Close()
			return nil, err
		}
		a.failover = fp
	}
	a.metrics.register(a)
	a.metrics.registerServe(a)
	return a, nil
}

// Run serves until ctx ends (nil) or the stream fails permanently (the
// error, one line that says what to fix).
func (a *Agent) Run(ctx context.Context) error {
	defer a.store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.ctx = ctx
	// Before the control socket listens: a promotion asked at once finds
	// the stream's stop in place (runRole starts the stream on recvCtx).
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	a.stopStream, a.recvDone = stopRecv, make(chan struct{})
	ctl, err := a.listenControl()
	if err != nil {
		return err
	}
	// On every return: cancel, wait for the goroutines (the control socket
	// is removed), then close the store.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); ctl.Serve(ctx) }()
	var srv *http.Server
	if a.cfg.Status.Listen != "" {
		ln, err := net.Listen("tcp", a.cfg.Status.Listen)
		if err != nil {
			return fmt.Errorf("status.listen %s: %w", a.cfg.Status.Listen, err)
		}
		mux := http.NewServeMux()
		// Read-only: other methods get 405. Control operations go through
		// the control socket.
		mux.HandleFunc("GET /status", a.serveStatus)
		mux.Handle("GET /metrics", a.metrics.handler())
		mux.HandleFunc("GET /healthz", a.serveHealthz)
		mux.HandleFunc("GET /readyz", a.serveReadyz)
		srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		a.log.Info("status endpoint listening", "addr", ln.Addr().String())
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.notifySystemd(ctx) }()
	err = a.runRole(ctx, recvCtx, &wg)
	cancel()
	wg.Wait()
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	return err
}

// runRole runs what the recorded role calls for until ctx ends or the
// stream fails permanently (the stream runs on recvCtx, which
// a.stopStream cancels; runRole closes a.recvDone once it cannot run):
//   - standby: the receiver, the monitor, the applier, purge and (unless
//     failover.mode = off) the detector;
//   - promoting (a promotion a crash interrupted): the promotion from its
//     last recorded step; before the old master is isolated, beside
//     everything the standby role runs (the stream runs until then);
//     after, the applier until the drain is done (never after it: its
//     session would set read_only=ON), and never the stream;
//   - master (promoted): nothing but status and control. The agent never
//     streams from or acknowledges the old master again, even when started
//     with the old configuration.
func (a *Agent) runRole(ctx, recvCtx context.Context, wg *sync.WaitGroup) error {
	role, err := a.store.LoadRole()
	if err != nil {
		close(a.recvDone)
		return err
	}
	stopRecv := a.stopStream
	applierErr := make(chan error, 1)
	a.startOldMasterWatch(ctx, wg)
	startApplier := func() {
		a.mode.start(ctx, wg, func(err error) {
			select {
			case applierErr <- err:
			default:
			}
			stopRecv()
		})
		wg.Add(1)
		go func() { defer wg.Done(); a.mirrorApplied(ctx) }()
	}
	resume := false
	switch role.Role {
	case checkpoint.RoleMaster:
		close(a.recvDone)
		a.log.Warn("this standby was promoted: the agent never streams from or acknowledges the old master again",
			"epoch", role.Epoch, "old_master", role.OldAddr, "promoted_at", role.UpdatedAt.Format(time.RFC3339), "reason", role.Reason)
		<-ctx.Done()
		return nil
	case checkpoint.RolePromoting:
		if a.failover == nil {
			close(a.recvDone)
			return fmt.Errorf("a promotion (epoch %d) is in progress but the configuration has no [standby] section to finish it on", role.Epoch)
		}
		if !checkpoint.StreamStopped(role.Step) {
			resume = true // beside the standby role's parts, below
			break
		}
		close(a.recvDone)
		if _, err := a.recv.RecoverRelay(); err != nil {
			return fmt.Errorf("resume the promotion of epoch %d: %w", role.Epoch, err)
		}
		if checkpoint.Drained(role.Step) {
			// Never again: the direct applier's session sets read_only=ON,
			// and replica mode would configure replication again.
			a.log.Info("the interrupted promotion is past its drain: the standby's applier is not started again", "step", role.Step)
		} else {
			startApplier()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.resumePromotion(ctx); err != nil {
				a.log.Error("the interrupted promotion did not finish; `hotstandby promote` resumes it", "err", err)
			}
		}()
		<-ctx.Done()
		return nil
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.monitor.Run(recvCtx, 2*time.Second) }()
	a.takeOverStandby(ctx) // first run only: before the apply mode reads the standby
	startApplier()
	wg.Add(1)
	go func() { defer wg.Done(); a.purgeLoop(recvCtx, purgeEvery(a.cfg.Relay.Retention.Duration)) }()
	if a.failover != nil && a.failover.detector != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.runDetector(recvCtx) }()
	}
	if err := a.startServe(recvCtx, wg); err != nil {
		return err
	}
	if resume {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.resumePromotion(ctx); err != nil {
				a.log.Error("the interrupted promotion did not finish; `hotstandby promote` resumes it", "err", err)
			}
		}()
	}
	err = a.recv.Run(recvCtx)
	close(a.recvDone)
	select {
	case aerr := <-applierErr:
		return aerr
	default:
	}
	if err != nil || ctx.Err() != nil {
		return err
	}
	// The stream was stopped for good (a promotion): serve until the end.
	<-ctx.Done()
	return nil
}

// resumePromotion finishes a promotion a crash interrupted; a panic in it
// is an error, not the daemon's end.
func (a *Agent) resumePromotion(ctx context.Context) (err error) {
	defer a.recoverOp("resume the promotion", &err)
	_, err = a.failover.promoter.Resume(ctx)
	return err
}

// purgeEvery is how often to look for segments to purge: a minute, or
// sooner for short retentions.
func purgeEvery(retention time.Duration) time.Duration {
	return max(min(time.Minute, retention/2), 200*time.Millisecond)
}

// mirrorApplied copies the apply mode's frontier into the checkpoint store
// once a second (a hint for the next start, and what the status of a
// stopped daemon reads; the standby is the truth).
func (a *Agent) mirrorApplied(ctx context.Context) {
	var last relay.Frontier
	save := func() {
		f, ok := a.mode.frontier()
		if !ok || (f.Segment == last.Segment && f.Offset == last.Offset && f.Pos.GTID.Equal(last.Pos.GTID)) {
			return
		}
		if err := a.store.SaveApplied(f, time.Now()); err != nil {
			a.log.Error("applied frontier not saved", "err", err)
			return
		}
		last = f
	}
	everyUntilDone(ctx, time.Second, save)
}

// everyUntilDone calls f every period, and once more when ctx ends (the
// last word of a mirror: what the daemon knew when it stopped).
func everyUntilDone(ctx context.Context, period time.Duration, f func()) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			f()
		case <-ctx.Done():
			f()
			return
		}
	}
}

// errorText logs an error attribute as its message: slog's text handler
// formats other values with %+v, which for go-mysql's (pingcap) errors
// prints a stack trace into the line.
func errorText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindAny {
		if err, ok := a.Value.Any().(error); ok && err != nil {
			return slog.String(a.Key, err.Error())
		}
	}
	return a
}

// NewLogger builds the daemon's logger from the [log] section: text or JSON,
// to standard error or to a file rotated by go-log's rotating handler. The
// returned closer closes the file.
func NewLogger(cfg LogConfig, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var w io.Writer = stderr
	var closer io.Closer = io.NopCloser(nil)
	if cfg.File != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.File), 0o700); err != nil {
			return nil, nil, fmt.Errorf("log.file %s: %w", cfg.File, unwrapPathError(err))
		}
		f, err := os.OpenFile(cfg.File, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("log.file %s: %w", cfg.File, unwrapPathError(err))
		}
		f.Close()
		h, err := golog.NewRotatingFileHandler(cfg.File, cfg.MaxSizeMB<<20, cfg.Backups)
		if err != nil {
			return nil, nil, fmt.Errorf("log.file %s: %w", cfg.File, err)
		}
		w, closer = h, h
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.Level)))
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: errorText}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), closer, nil
}
