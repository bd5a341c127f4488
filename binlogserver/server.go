package binlogserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"

	"github.com/hotstandby/hotstandby/relay"
)

// Server serves the relay log to replicas. Create it with New, run it with
// Serve.
type Server struct {
	cfg Config
	// watcher is cfg.Source when it is a Watcher (no poll); else nil.
	watcher Watcher
	log     *slog.Logger
	ln      net.Listener
	conf    *server.Server
	auth    *authHandler
	adm     *admission
	// backoff is the first wait before answering a failed login past
	// freeLoginFails (loginBackoffBase; 0 in the fuzz target).
	backoff time.Duration

	bytesSent     atomic.Uint64
	eventsSent    atomic.Uint64
	acks          atomic.Uint64 // semi-sync ACKs received
	loginFailures atomic.Uint64
	refusedConns  atomic.Uint64 // over the unauthenticated caps
	panics        atomic.Uint64 // connection handlers that panicked

	mu       sync.Mutex          // mu guards the fields below
	replicas map[uint32]*replica // by connection id
	changed  chan struct{}       // closed when the durable frontier moves
	dumping  chan struct{}       // a dump registered (capacity 1): watch polls again
	last     relay.Frontier
	conns    map[net.Conn]struct{}
	connTLS  map[string]ConnTLS // by remote address, while connected
	acked    chan struct{}      // closed at the next semi-sync ACK
	serveCtx context.Context
	closed   bool
}

// ConnTLS is how one replica connection is protected.
type ConnTLS struct {
	Encrypted bool
	Version   string // "TLS 1.3"; empty when plain
	Cipher    string // "TLS_AES_128_GCM_SHA256"; empty when plain
}

// isTLSError reports whether err came from the TLS handshake (an alert
// either way, or a client that is not speaking TLS).
func isTLSError(err error) bool {
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	return errors.As(err, &rh) || errors.As(err, &ae) || strings.Contains(err.Error(), "tls: ")
}

// tlsOf reads the transport of a logged-in connection.
func tlsOf(c *server.Conn) ConnTLS {
	tc, ok := c.Conn.Conn.(*tls.Conn)
	if !ok {
		return ConnTLS{}
	}
	cs := tc.ConnectionState()
	return ConnTLS{Encrypted: true, Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite)}
}

// New validates cfg and listens on cfg.Listen (127.0.0.1 when no host is
// given). Serve accepts connections.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Millisecond
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		cfg:      cfg,
		log:      log.With("component", "binlogserver"),
		conf:     server.NewServer(cfg.Version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, cfg.TLS),
		adm:      newAdmission(cfg.TLS != nil),
		backoff:  loginBackoffBase,
		replicas: map[uint32]*replica{},
		changed:  make(chan struct{}),
		dumping:  make(chan struct{}, 1),
		acked:    make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
		connTLS:  map[string]ConnTLS{},
	}
	auth, err := newAuthHandler(s, cfg.User, cfg.Password, cfg.RequireTLS)
	if err != nil {
		return nil, fmt.Errorf("binlogserver: user %q: %w", cfg.User, err)
	}
	s.auth = auth
	s.watcher, _ = cfg.Source.(Watcher)
	ln, err := net.Listen("tcp", ListenAddr(cfg.Listen))
	if err != nil {
		return nil, fmt.Errorf("binlogserver: listen %s: %w", cfg.Listen, err)
	}
	s.ln = ln
	return s, nil
}

// ConnTLS returns the transport of the connection from addr (a Replica's
// Addr), and false when no such connection is open.
func (s *Server) ConnTLS(addr string) (ConnTLS, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ct, ok := s.connTLS[addr]
	return ct, ok
}

// TLSMode is what the listener offers replicas: "off", "offered" (plain
// connections are accepted too) or "required".
func (s *Server) TLSMode() string {
	switch {
	case s.cfg.RequireTLS:
		return "required"
	case s.cfg.TLS != nil:
		return "offered"
	}
	return "off"
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts replicas until ctx ends or Close is called; it returns
// after every connection has ended.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.serveCtx = ctx
	s.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	if s.watcher == nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.watch(ctx) }()
	}
	go func() { <-ctx.Done(); s.Close() }()
	s.log.Info("serving the relay log to replicas", "addr", s.Addr(), "user", s.cfg.User,
		"tls", s.TLSMode())
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("binlogserver: accept: %w", err)
		}
		if !s.track(c) {
			c.Close()
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.untrack(c)
			s.handle(ctx, c)
		}()
	}
}

// Close stops listening and ends every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	return s.ln.Close()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// watch polls the durable frontier and wakes the dumps when it moves, for a
// Source that is not a Watcher (a Watcher wakes them itself). With no dump
// registered it sleeps until one is: an agent without downstream replicas
// spends nothing on it.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		idle := len(s.replicas) == 0
		s.mu.Unlock()
		if idle {
			t.Stop()
			select {
			case <-ctx.Done():
				return
			case <-s.dumping:
			}
			t.Reset(s.cfg.Poll)
		}
		f := s.cfg.Source.Durable()
		s.mu.Lock()
		if f.Segment != s.last.Segment || f.Offset != s.last.Offset {
			s.last = f
			close(s.changed)
			s.changed = make(chan struct{})
		}
		s.mu.Unlock()
	}
}

// waitChan returns a channel closed at the next move of the durable frontier.
func (s *Server) waitChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// handle runs one client connection: admission, handshake, commands,
// dump. A panic in it ends this connection only (logged with its stack).
func (s *Server) handle(ctx context.Context, c net.Conn) {
	addr := c.RemoteAddr().String()
	defer s.recoverConn(addr, c)
	host := hostOf(addr)
	if err := s.adm.enter(host); err != nil {
		s.refusedConns.Add(1)
		tooMany(c, err.Error())
		return
	}
	admitted := true
	defer func() {
		if admitted {
			s.adm.leave(host)
		}
	}()
	h := &session{s: s, addr: addr, ctx: ctx, heartbeat: 30 * time.Second}
	lc := newLoginConn(c, s.cfg.TLS != nil)
	_ = c.SetDeadline(time.Now().Add(s.cfg.LoginTimeout))
	conn, err := s.conf.NewCustomizedConn(lc, s.auth, h)
	if err != nil {
		if ctx.Err() != nil {
			return // the server is stopping: the handshake was cut, not refused
		}
		if isAccessDenied(err) && !strings.Contains(err.Error(), "requires TLS") {
			return // a wrong user or password: logged (rate-limited) by OnAuthFailure
		}
		// One line per address per minute: a client that connects in a
		// loop must not flood the log.
		kind := "other"
		switch {
		case s.cfg.TLS != nil && isTLSError(err):
			kind = "tls"
		case errors.Is(err, errLoginPacket), errors.Is(err, errLoginBytes):
			kind = "size"
		case isAccessDenied(err):
			kind = "require_tls"
		}
		log, unlogged := s.adm.mayLog(host, kind, time.Now())
		if !log {
			return
		}
		switch kind {
		case "tls":
			s.log.Warn("replica connection refused: its TLS handshake failed; does it trust the CA that signed serve.cert_file, and does the certificate name the host it connects to?",
				"addr", addr, "err", err, "not_logged_since_last_line", unlogged)
		case "size":
			s.log.Warn("replica connection refused before login", "addr", addr, "reason", err, "not_logged_since_last_line", unlogged)
		default:
			s.log.Warn("replica connection refused", "addr", addr, "err", err, "not_logged_since_last_line", unlogged)
		}
		return
	}
	lc.authed = true
	s.adm.leave(host)
	admitted = false
	_ = c.SetDeadline(time.Time{}) // the TLS connection's deadlines are c's
	h.conn = conn
	ct := tlsOf(conn)
	s.mu.Lock()
	s.connTLS[addr] = ct
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.connTLS, addr)
		s.mu.Unlock()
	}()
	if ct.Encrypted {
		s.log.Info("replica connected", "addr", addr, "user", conn.GetUser(), "tls", ct.Version, "cipher", ct.Cipher)
	} else {
		s.log.Info("replica connected", "addr", addr, "user", conn.GetUser(), "tls", "off")
	}
	h.commands()
	if h.dumpErr != nil {
		s.log.Info("replica dump ended", "addr", addr, "server_id", h.serverID, "reason", h.dumpErr)
	}
}

// isAccessDenied reports a refused login (wrong user or password, TLS
// required).
func isAccessDenied(err error) bool {
	var me *mysql.MyError
	return errors.As(err, &me) && me.Code == mysql.ER_ACCESS_DENIED_ERROR || errors.Is(err, server.ErrAccessDenied)
}

// recoverConn ends a connection whose handler panicked, and only it.
func (s *Server) recoverConn(addr string, c net.Conn) {
	if r := recover(); r != nil {
		s.panics.Add(1)
		s.log.Error("a replica connection's handler panicked: closing that connection", "addr", addr, "panic", fmt.Sprint(r),
			"stack", string(debug.Stack()))
		c.Close()
	}
}
