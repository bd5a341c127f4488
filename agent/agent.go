package agent

import (
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
	cfg     Config
	log     *slog.Logger
	store   *checkpoint.Store
	recv    *ingest.Receiver
	applier *applier.Applier // nil without a [standby] section
	metrics *metrics
	monitor *ingest.Monitor
	skips   skipRegistry // operators' skips until the standby commits them
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
	a := &Agent{cfg: cfg, log: log, store: store}
	a.metrics = newMetrics()
	ic := cfg.IngestConfig()
	ic.Metrics = ingest.Metrics{Fsync: a.metrics.fsync, AckLatency: a.metrics.ackLatency}
	a.recv = ingest.NewReceiver(ic, log, store, hooks)
	if cfg.Standby.Enabled() {
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
	a.monitor = ingest.NewMonitor(ic.Source, log, store, a.recv)
	a.metrics.register(a)
	return a, nil
}

// Run serves until ctx ends (nil) or the stream fails permanently (the
// error, one line that says what to fix).
func (a *Agent) Run(ctx context.Context) error {
	defer a.store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
	applierErr := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); a.monitor.Run(ctx, 2*time.Second) }()
	if a.applier != nil {
		wg.Add(3)
		go func() {
			defer wg.Done()
			if err := a.applier.Run(ctx); err != nil {
				// The applier cannot run at all (its configuration): the
				// daemon stops with the reason rather than stream on with
				// a standby that is silently never written.
				applierErr <- err
				cancel()
			}
		}()
		go func() { defer wg.Done(); a.mirrorApplied(ctx) }()
		go func() { defer wg.Done(); a.purgeLoop(ctx, purgeEvery(a.cfg.Relay.Retention.Duration)) }()
	}
	err = a.recv.Run(ctx)
	cancel()
	wg.Wait()
	select {
	case aerr := <-applierErr:
		err = aerr
	default:
	}
	if srv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		scancel()
	}
	return err
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
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			save()
		case <-ctx.Done():
			save()
			return
		}
	}
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
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), closer, nil
}
