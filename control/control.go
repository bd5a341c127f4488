package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MaxRequest is the largest request the server reads, in bytes.
const MaxRequest = 64 << 10

// maxReply is the largest reply the client reads, in bytes.
const maxReply = 1 << 20

// maxPath is the longest path a unix socket can be bound to (sun_path less
// its terminating NUL).
const maxPath = 107

// Request is one control operation, as the client sends it.
type Request struct {
	// Op names the operation ("skip").
	Op string `json:"op"`
	// GTID is the transaction a skip is about (op "skip").
	GTID string `json:"gtid,omitempty"`
	// Force promotes although the promotion is not proven lossless (op
	// "promote"); it is recorded in the audit log.
	Force bool `json:"force,omitempty"`
	// DryRun checks a promotion and changes nothing (op "promote").
	DryRun bool `json:"dry_run,omitempty"`
	// Rejoin makes the old master a replica of the new one after a
	// switchover (op "switchover").
	Rejoin bool `json:"rejoin,omitempty"`
	// Timeout bounds a switchover's wait for the standby (op
	// "switchover"); zero is the daemon's default.
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

// Reply is the daemon's answer: OK with a Message for a person, or not OK
// with the Error that stopped it.
type Reply struct {
	OK      bool   `json:"ok"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Peer is a caller as the kernel reports it (SO_PEERCRED at connect time).
type Peer struct {
	UID, GID uint32
	PID      int32  // 0 if the caller is in another pid namespace
	User     string // the uid's user name; "" if it has none
}

// String is the caller for logs and the audit log:
// "uid 1000 (alice) pid 4242".
func (p Peer) String() string {
	return describeUID(p.UID, p.User) + " pid " + strconv.Itoa(int(p.PID))
}

func describeUID(uid uint32, name string) string {
	if name == "" {
		return "uid " + strconv.FormatUint(uint64(uid), 10)
	}
	return "uid " + strconv.FormatUint(uint64(uid), 10) + " (" + name + ")"
}

// userName returns the user name of uid, or "".
func userName(uid uint32) string {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}

// Handler performs one operation for an authorized caller and returns the
// message for the reply; an error is sent back as the reply's error. ctx
// ends after Config.OpTimeout or when the server closes.
type Handler func(ctx context.Context, p Peer, req Request) (string, error)

// Ops maps op names to their handlers: the daemon's registry of control
// operations.
type Ops map[string]Handler

// Config configures a Server.
type Config struct {
	// Path is the socket's path (in the daemon's data directory; at most
	// 107 bytes, the limit of a unix socket path).
	Path string
	// Ops are the operations the server performs.
	Ops Ops
	// ReadTimeout bounds the wait for a connection's request. Default 5s.
	ReadTimeout time.Duration
	// OpTimeout bounds a handler's run. Default 20s.
	OpTimeout time.Duration
	// Logger receives one line per request; refusals at WARN.
	Logger *slog.Logger
}

// Server serves the control socket.
type Server struct {
	cfg   Config
	log   *slog.Logger
	ln    *net.UnixListener
	owner uint32 // the daemon's effective uid
	name  string // its user name

	wg sync.WaitGroup
}

// Listen creates the control socket at cfg.Path, mode 0600. It removes a
// stale socket file (nothing answers on it) and refuses with ErrInUse if a
// live process answers, or if the path is something other than a socket.
func Listen(cfg Config) (*Server, error) {
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 5 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Path) > maxPath {
		return nil, fmt.Errorf("control socket %s: the path is longer than %d bytes, the limit of a unix socket: use a shorter data_dir", cfg.Path, maxPath)
	}
	log := cfg.Logger.With("component", "control")
	if err := removeStale(cfg.Path, log); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.Path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", cfg.Path, unwrapOpError(err))
	}
	// The data directory (0700) already keeps others away from the short
	// moment between bind and chmod; the daemon also sets umask 077.
	if err := os.Chmod(cfg.Path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", cfg.Path, err)
	}
	owner := uint32(os.Geteuid())
	return &Server{cfg: cfg, log: log, ln: ln, owner: owner, name: userName(owner)}, nil
}

// removeStale removes a socket file that nothing answers on.
func removeStale(path string, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, unwrapOpError(err))
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: %w: the file there is not a socket; remove it", path, ErrInUse)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w: stop that daemon first", path, ErrInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket %s: cannot tell whether another daemon answers on it: %w", path, unwrapOpError(err))
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control socket %s: remove the stale socket: %w", path, unwrapOpError(err))
	}
	log.Info("removed a stale control socket (left by a daemon that did not stop cleanly)", "path", path)
	return nil
}

// Addr is the socket's path.
func (s *Server) Addr() string { return s.cfg.Path }

// Serve accepts connections until ctx ends or Close is called, then waits
// for the requests in progress (their ctx is cancelled). The socket file is
// removed when it returns.
func (s *Server) Serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.ln.Close() })
	defer stop()
	defer s.wg.Wait()
	defer s.ln.Close()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, most likely: the socket stays.
			s.log.Error("control socket: accept failed; retrying", "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			defer func() {
				// Not the op (runOp answers for it): the request's reading
				// or the reply. The daemon goes on; the client sees EOF.
				if r := recover(); r != nil {
					s.log.Error("control socket: panic serving a connection; the daemon goes on", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				}
			}()
			s.serveConn(ctx, c)
		}()
	}
}

// Close stops accepting and removes the socket file.
func (s *Server) Close() error { return s.ln.Close() }

// serveConn answers one connection: credentials, request, authorization,
// the op, the reply.
func (s *Server) serveConn(ctx context.Context, c *net.UnixConn) {
	p, err := peerOf(c)
	if err != nil {
		s.log.Error("control socket: no peer credentials; connection refused", "err", err)
		s.reply(c, Reply{Error: "the daemon cannot read your credentials: " + err.Error()})
		return
	}
	req, err := readRequest(c, s.cfg.ReadTimeout)
	if err != nil {
		s.log.Warn("control request refused", "by", p.String(), "err", err)
		s.reply(c, Reply{Error: err.Error()})
		return
	}
	if err := authorize(p, s.owner, s.name); err != nil {
		s.log.Warn("control request refused", "op", req.Op, "by", p.String(), "err", err)
		s.reply(c, Reply{Error: err.Error()})
		return
	}
	h, ok := s.cfg.Ops[req.Op]
	if !ok {
		err := fmt.Errorf("unknown op %q (this daemon knows: %s)", req.Op, strings.Join(s.opNames(), ", "))
		s.log.Warn("control request refused", "op", req.Op, "by", p.String(), "err", err)
		s.reply(c, Reply{Error: err.Error()})
		return
	}
	s.log.Info("control request", "op", req.Op, "gtid", req.GTID, "by", p.String())
	octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	msg, err := s.runOp(octx, h, p, req)
	cancel()
	if err != nil {
		s.log.Warn("control request refused", "op", req.Op, "gtid", req.GTID, "by", p.String(), "err", err)
		s.reply(c, Reply{Error: err.Error()})
		return
	}
	s.reply(c, Reply{OK: true, Message: msg})
}

// runOp runs the op's handler; a panic in it is recovered, logged at ERROR
// with its stack, and answered as an error wrapping ErrOpPanicked: one
// broken op must not end the daemon (and with it the master's semi-sync
// replica).
func (s *Server) runOp(ctx context.Context, h Handler, p Peer, req Request) (msg string, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control op panicked; the daemon goes on", "op", req.Op, "by", p.String(), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			msg, err = "", fmt.Errorf("%w: %s: %v (the daemon logged the stack and goes on; please report it)", ErrOpPanicked, req.Op, r)
		}
	}()
	return h(ctx, p, req)
}

func (s *Server) opNames() []string {
	names := make([]string, 0, len(s.cfg.Ops))
	for n := range s.cfg.Ops {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s *Server) reply(c *net.UnixConn, r Reply) {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	b, _ := json.Marshal(r)
	if _, err := c.Write(append(b, '\n')); err != nil {
		s.log.Warn("control socket: reply not delivered", "err", err)
	}
}

// peerOf returns the connection's peer credentials, from the kernel.
func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, err
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid, User: userName(cred.Uid)}, nil
}

// authorize is the rule: root, or the daemon's own uid.
func authorize(p Peer, owner uint32, ownerName string) error {
	if p.UID == 0 || p.UID == owner {
		return nil
	}
	who := "root (uid 0)"
	if owner != 0 {
		who = "root (uid 0) and the daemon's user, " + describeUID(owner, ownerName) + ","
	}
	return fmt.Errorf("%s may not use the control socket: only %s may", describeUID(p.UID, p.User), who)
}

// readRequest reads one request within timeout and MaxRequest bytes.
func readRequest(c net.Conn, timeout time.Duration) (Request, error) {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	lr := &io.LimitedReader{R: c, N: MaxRequest + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		var ne net.Error
		switch {
		case lr.N <= 0:
			return Request{}, fmt.Errorf("bad request: larger than %d bytes", MaxRequest)
		case errors.As(err, &ne) && ne.Timeout():
			return Request{}, fmt.Errorf("bad request: none within %s", timeout)
		}
		return Request{}, fmt.Errorf("bad request: %w", err)
	}
	if req.Op == "" {
		return Request{}, errors.New(`bad request: no "op"`)
	}
	return req, nil
}

// Call sends req to the daemon listening at path and returns its message.
// Errors say what to do: ErrNotRunning (no socket, or nobody answers),
// ErrPermission (with the owner of the file that denies it), ErrRefused
// (with the daemon's reason). ctx bounds the whole exchange.
func Call(ctx context.Context, path string, req Request) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return "", dialError(path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return "", fmt.Errorf("control socket %s: send: %w", path, unwrapOpError(err))
	}
	line, err := bufio.NewReader(io.LimitReader(c, maxReply)).ReadBytes('\n')
	if err != nil && (len(line) == 0 || !errors.Is(err, io.EOF)) {
		if ctx.Err() != nil {
			return "", fmt.Errorf("control socket %s: no reply: %w", path, ctx.Err())
		}
		return "", fmt.Errorf("control socket %s: no reply: %w", path, unwrapOpError(err))
	}
	var r Reply
	if err := json.Unmarshal(line, &r); err != nil {
		return "", fmt.Errorf("%w from %s: %v", ErrProtocol, path, err)
	}
	if !r.OK {
		return "", fmt.Errorf("%w: %s", ErrRefused, r.Error)
	}
	return r.Message, nil
}

// dialError turns a failed connect into an error a person can act on.
func dialError(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("%w (no control socket at %s)", ErrNotRunning, path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w (nothing answers on the control socket %s: a daemon that did not stop cleanly left it)", ErrNotRunning, path)
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return fmt.Errorf("%w on %s: %s: run as that user or root", ErrPermission, path, ownerOf(path))
	}
	return fmt.Errorf("control socket %s: %w", path, unwrapOpError(err))
}

// ownerOf names the owner of path, or of the nearest directory above it the
// caller can see ("/var/lib/hotstandby is owned by uid 998 (hotstandby)").
func ownerOf(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				return p + " is owned by " + describeUID(st.Uid, userName(st.Uid))
			}
		}
		if p == filepath.Dir(p) {
			return "its owner is unknown"
		}
	}
}

// unwrapOpError drops the net.OpError and os.PathError layers, whose text
// repeats the path the caller already names.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		err = se.Err
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err
}
