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

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/binlog"
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
	applier  *applier.Applier // nil without a [standby] section, and in replica mode
	replica  *replicaMode     // set in replica mode ([standby] mode = "replica")
	metrics  *metrics
	monitor  *ingest.Monitor
	skips    skipRegistry   // operators' skips until the standby commits them
	roleOps  roleOpLock     // one promote, switchover or rejoin at a time
	failover *failoverParts // nil without a [standby] section
	serve    serveParts     // the binlog server, with [serve]

	// Set by Run: how the promoter stops the receiver and the applier for
	// good, and learns that they have stopped.
	ctx                     context.Context // the daemon's lifetime (promotions run on it)
	stopStream, stopApplier func()
	recvDone, applierDone   chan struct{}
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
	if cfg.Standby.Enabled() && cfg.ApplyMode() == ModeReplica {
		a.replica = &replicaMode{a: a}
	} else if cfg.Standby.Enabled() {
		st, err := store.Load()
		if err != nil {
			store.Close()
			return nil, err
		}
		a.applier = applier.New(applier.Config{
			DSN: cfg.StandbyDSN(), RelayDir: cfg.RelayDir(), Start: st.Applied, Logger: log,
			MasterServerID: func() uint32 { return a.recv.Status().Identity.ServerID },
			MasterHistory: func() ([]binlog.GTID, bool) {
				v := a.monitor.View()
				return v.History, v.HistoryKnown
			},
			Skipped: a.skipCommitted,
		}, a.recv)
	}
	a.monitor = ingest.NewMonitor(cfg.monitorSource(ic.Source), log, store, a.recv)
	for _, w := range cfg.TLSWarnings() {
		log.Warn(w)
	}
	if a.applier != nil || a.replica != nil {
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
	err = a.runRole(ctx, &wg)
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
// stream fails permanently:
//   - standby: the receiver, the monitor, the applier, purge and (unless
//     failover.mode = off) the detector;
//   - promoting (a promotion a crash interrupted): the applier, to finish
//     the drain, and the promotion from its last recorded step; never the
//     stream;
//   - master (promoted): nothing but status and control. The agent never
//     streams from or acknowledges the old master again, even when started
//     with the old configuration.
func (a *Agent) runRole(ctx context.Context, wg *sync.WaitGroup) error {
	role, err := a.store.LoadRole()
	if err != nil {
		return err
	}
	recvCtx, stopRecv := context.WithCancel(ctx)
	applierCtx, stopApplier := context.WithCancel(ctx)
	defer stopRecv()
	defer stopApplier()
	a.stopStream, a.stopApplier = stopRecv, stopApplier
	a.recvDone, a.applierDone = make(chan struct{}), make(chan struct{})
	applierErr := make(chan error, 1)
	startApplier := func() {
		if a.replica != nil {
			if err := a.replica.start(applierCtx, wg, a.applierDone); err != nil {
				applierErr <- err
				stopRecv()
			}
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(a.applierDone)
			if err := a.applier.Run(applierCtx); err != nil {
				// The applier cannot run at all (its configuration): the
				// daemon stops with the reason rather than stream on with
				// a standby that is silently never written.
				applierErr <- err
				stopRecv()
			}
		}()
	}
	switch role.Role {
	case checkpoint.RoleMaster:
		close(a.recvDone)
		close(a.applierDone)
		a.log.Warn("this standby was promoted: the agent never streams from or acknowledges the old master again",
			"epoch", role.Epoch, "old_master", role.OldAddr, "promoted_at", role.UpdatedAt.Format(time.RFC3339), "reason", role.Reason)
		<-ctx.Done()
		return nil
	case checkpoint.RolePromoting:
		close(a.recvDone)
		if a.failover == nil {
			return fmt.Errorf("a promotion (epoch %d) is in progress but the configuration has no [standby] section to finish it on", role.Epoch)
		}
		if _, err := a.recv.RecoverRelay(); err != nil {
			return fmt.Errorf("resume the promotion of epoch %d: %w", role.Epoch, err)
		}
		startApplier()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.failover.promoter.Resume(ctx); err != nil {
				a.log.Error("the interrupted promotion did not finish; `hotstandby promote` resumes it", "err", err)
			}
		}()
		<-ctx.Done()
		return nil
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.monitor.Run(recvCtx, 2*time.Second) }()
	a.takeOverStandby(ctx) // first run only: before the apply mode reads the standby
	if a.replica != nil {
		startApplier()
		if a.failover.detector != nil {
			wg.Add(1)
			go func() { defer wg.Done(); a.runDetector(recvCtx) }()
		}
	}
	if a.applier != nil {
		startApplier()
		wg.Add(2)
		go func() { defer wg.Done(); a.mirrorApplied(ctx) }()
		go func() { defer wg.Done(); a.purgeLoop(recvCtx, purgeEvery(a.cfg.Relay.Retention.Duration)) }()
		if a.failover.detector != nil {
			wg.Add(1)
			go func() { defer wg.Done(); a.runDetector(recvCtx) }()
		}
	}
	if err := a.startServe(recvCtx, wg); err != nil {
		return err
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

// purgeEvery is how often to look for segments to purge: a minute, or
// sooner for short retentions.
func purgeEvery(retention time.Duration) time.Duration {
	return max(min(time.Minute, retention/2), 200*time.Millisecond)
}

// mirrorApplied copies the applier's frontier into the checkpoint store once
// a second (a hint for the next start; the standby is the truth).
func (a *Agent) mirrorApplied(ctx context.Context) {
	var last relay.Frontier
	save := func() {
		f := a.applier.Status().Frontier
		if f.Pos.FilePos.IsZero() || (f.Segment == last.Segment && f.Offset == last.Offset) {
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
