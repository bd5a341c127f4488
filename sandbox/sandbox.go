package sandbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// portAttempts is how many ports Start tries when it picks the port itself
// and another process takes the port between the pick and the bind.
const portAttempts = 3

// Server is one local mariadbd process and the directory it lives in. Its
// methods may be called from any goroutine; Stop, Kill and Restart are
// serialized with one another.
type Server struct {
	cfg   Config   // Dir absolute, StartTimeout non-zero
	bins  binaries // resolved program paths
	paths layout   // files under cfg.Dir
	port  int      // fixed once Start returns

	life sync.Mutex // life serializes Stop, Kill and Restart

	mu   sync.Mutex // mu guards the fields below
	proc *process   // the running process; nil when stopped
	db   *sql.DB    // root pool, opened by DB; closed and cleared when the server stops
}

// Start writes Dir/my.cnf, initializes the datadir with mariadb-install-db if
// it is missing or empty (otherwise the existing datadir is reused), starts
// mariadbd in the background and waits until it answers a query over its
// unix socket. On failure the returned error carries the tail of the error
// log, which is also sent to cfg.Log.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("sandbox: start mariadbd in %s: %w", cfg.Dir, err)
	}
	cfg.Dir = dir
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	paths, err := newLayout(dir)
	if err != nil {
		return nil, err
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{dir, filepath.Dir(paths.binlog), paths.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sandbox: start mariadbd in %s: %w", dir, err)
		}
	}
	s := &Server{cfg: cfg, bins: bins, paths: paths, port: cfg.Port}
	for attempt := 1; ; attempt++ {
		if cfg.Port == 0 {
			if s.port, err = FreePort(); err != nil {
				return nil, fmt.Errorf("sandbox: start mariadbd in %s: %w", dir, err)
			}
		}
		tail, err := s.start(ctx)
		if err == nil {
			return s, nil
		}
		if cfg.Port != 0 || attempt == portAttempts || !strings.Contains(tail, "Address already in use") {
			return nil, err
		}
	}
}

// start writes my.cnf, installs the datadir if needed and launches mariadbd.
// On failure it also returns the error-log lines of this attempt.
func (s *Server) start(ctx context.Context) (string, error) {
	if err := os.WriteFile(s.paths.cnf, []byte(myCnf(s.cfg, s.paths, s.port)), 0o600); err != nil {
		return "", fmt.Errorf("sandbox: start mariadbd in %s: %w", s.paths.dir, err)
	}
	if err := s.installIfEmpty(ctx); err != nil {
		return "", fmt.Errorf("sandbox: start mariadbd in %s: %w", s.paths.dir, err)
	}
	return s.launch(ctx)
}

// installIfEmpty runs mariadb-install-db if the datadir is missing or empty.
// A failed install removes the datadir so that the next attempt starts clean.
func (s *Server) installIfEmpty(ctx context.Context) error {
	entries, err := os.ReadDir(s.paths.data)
	if err == nil && len(entries) > 0 {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var from int64
	if fi, err := os.Stat(s.paths.errLog); err == nil {
		from = fi.Size()
	}
	cmd := exec.CommandContext(ctx, s.bins.installDB, "--defaults-file="+s.paths.cnf,
		"--auth-root-authentication-method=normal", "--skip-test-db")
	cmd.Dir = s.paths.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		os.RemoveAll(s.paths.data)
		// The bootstrap server logs to log_error; the script's own output
		// ends in generic advice after this line.
		out, _, _ = bytes.Cut(out, []byte("Installation of system tables failed!"))
		msg := tailLines(out, 20) + "\nerror log:\n" + errorLogSince(s.paths.errLog, from, 30)
		s.logLines(msg)
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, msg)
	}
	return nil
}

// launch spawns mariadbd and waits until it answers. On failure it kills the
// process and returns the error-log lines written by this attempt.
func (s *Server) launch(ctx context.Context) (string, error) {
	var from int64
	if fi, err := os.Stat(s.paths.errLog); err == nil {
		from = fi.Size()
	}
	p, err := spawn(s.cfg.Wrapper, s.bins.mariadbd, s.paths.cnf, s.paths.errLog, s.cfg.Detached)
	if err != nil {
		return "", fmt.Errorf("sandbox: start mariadbd in %s: %w", s.paths.dir, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	if err := s.waitReady(ctx, p); err != nil {
		p.kill()
		s.detach()
		tail := errorLogSince(s.paths.errLog, from, 30)
		s.logLines(tail)
		return tail, fmt.Errorf("sandbox: start mariadbd in %s: %w\nerror log:\n%s", s.paths.dir, err, tail)
	}
	return "", nil
}

// waitReady polls the server with SELECT 1 until it answers, exits, or
// StartTimeout passes.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%w: exited during startup: %v", ErrNotRunning, p.err)
		case <-ctx.Done():
			return fmt.Errorf("no answer within %v: %w (last error: %v)", s.cfg.StartTimeout, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var one int
	return s.DB().QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// closeDB closes the root pool, if open. Stop and Kill call it before they
// signal the server, so that idle connections quit while it can still hear
// them; queries in flight are not waited for.
func (s *Server) closeDB() {
	s.mu.Lock()
	db := s.db
	s.db = nil
	s.mu.Unlock()
	if db != nil {
		db.Close()
	}
}

// detach forgets the exited process and closes any pool opened meanwhile.
func (s *Server) detach() {
	s.mu.Lock()
	s.proc = nil
	s.mu.Unlock()
	s.closeDB()
}

// current returns the running process, or nil.
func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Stop shuts the server down cleanly with SIGTERM and waits for it to exit.
// If ctx ends first the server is killed and Stop returns an error. Stopping
// a stopped server does nothing. The pool returned by DB is closed.
func (s *Server) Stop(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	return s.stop(ctx)
}

func (s *Server) stop(ctx context.Context) error {
	p := s.current()
	if p == nil {
		return nil
	}
	s.closeDB()
	if err := p.signal(syscall.SIGTERM, false); err != nil {
		return fmt.Errorf("sandbox: stop mariadbd in %s: %w", s.paths.dir, err)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.kill()
		s.detach()
		return fmt.Errorf("sandbox: stop mariadbd in %s: killed: %w", s.paths.dir, ctx.Err())
	}
	s.detach()
	if p.err != nil {
		tail := s.ErrorLogTail(20)
		s.logLines(tail)
		return fmt.Errorf("sandbox: stop mariadbd in %s: %w\nerror log:\n%s", s.paths.dir, p.err, tail)
	}
	return nil
}

// Kill sends SIGKILL to the server's process group and waits for it to exit,
// as a crash would end it. Killing a stopped server does nothing. The pool
// returned by DB is closed.
func (s *Server) Kill() error {
	s.life.Lock()
	defer s.life.Unlock()
	p := s.current()
	if p == nil {
		return nil
	}
	s.closeDB()
	err := p.kill()
	s.detach()
	if err != nil {
		return fmt.Errorf("sandbox: kill mariadbd in %s: %w", s.paths.dir, err)
	}
	return nil
}

// Restart starts the server again on the same directory and port, stopping it
// cleanly first if it is running. If the datadir was removed meanwhile it is
// initialized again.
func (s *Server) Restart(ctx context.Context) error {
	s.life.Lock()
	defer s.life.Unlock()
	if err := s.stop(ctx); err != nil {
		return err
	}
	_, err := s.start(ctx)
	return err
}

// Running reports whether the server's process is running.
func (s *Server) Running() bool {
	p := s.current()
	return p != nil && !p.exited()
}

// PID returns the process id of the running mariadbd, or 0 if it is not
// running.
func (s *Server) PID() int {
	p := s.current()
	if p == nil || p.exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Addr returns the server's TCP address, "127.0.0.1:PORT".
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Socket returns the path of the server's unix socket. It is Dir/mariadbd.sock
// unless that path is too long for a socket; see the package documentation.
func (s *Server) Socket() string { return s.paths.socket }

// Dir returns the server's absolute base directory.
func (s *Server) Dir() string { return s.paths.dir }

// DataDir returns the server's datadir, Dir/data.
func (s *Server) DataDir() string { return s.paths.data }

// BinlogBase returns the log_bin base name, Dir/binlog/mysql-bin; the binary
// logs are BinlogBase() + ".000001" and so on.
func (s *Server) BinlogBase() string { return s.paths.binlog }

// DefaultsFile returns the path of the server's my.cnf, suitable for
// `mariadb --defaults-file=...` (as the first option) and for mariadb-binlog.
func (s *Server) DefaultsFile() string { return s.paths.cnf }

// ErrorLog returns the path of the server's error log.
func (s *Server) ErrorLog() string { return s.paths.errLog }
