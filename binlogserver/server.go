package binlogserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	conf *server.Server
	auth *server.InMemoryAuthenticationHandler

	bytesSent  atomic.Uint64
	eventsSent atomic.Uint64

	mu       sync.Mutex          // mu guards the fields below
	replicas map[uint32]*replica // by connection id
	changed  chan struct{}       // closed when the durable frontier moves
	last     relay.Frontier
	conns    map[net.Conn]struct{}
	closed   bool
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
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	auth := server.NewInMemoryAuthenticationHandler(mysql.AUTH_NATIVE_PASSWORD)
	if err := auth.AddUser(cfg.User, cfg.Password); err != nil {
		return nil, fmt.Errorf("binlogserver: user %q: %w", cfg.User, err)
	}
	ln, err := net.Listen("tcp", ListenAddr(cfg.Listen))
	if err != nil {
		return nil, fmt.Errorf("binlogserver: listen %s: %w", cfg.Listen, err)
	}
	return &Server{
		cfg:      cfg,
		log:      log.With("component", "binlogserver"),
		ln:       ln,
		conf:     server.NewServer(cfg.Version, mysql.DEFAULT_COLLATION_ID, mysql.AUTH_NATIVE_PASSWORD, nil, nil),
		auth:     auth,
		replicas: map[uint32]*replica{},
		changed:  make(chan struct{}),
		conns:    map[net.Conn]struct{}{},
	}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts replicas until ctx ends or Close is called; it returns
// after every connection has ended.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); s.watch(ctx) }()
	go func() { <-ctx.Done(); s.Close() }()
	s.log.Info("serving the relay log to replicas", "addr", s.Addr(), "user", s.cfg.User)
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

// watch polls the durable frontier and wakes the dumps when it moves.
func (s *Server) watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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

// handle runs one client connection: handshake, queries, dump.
func (s *Server) handle(ctx context.Context, c net.Conn) {
	addr := c.RemoteAddr().String()
	h := &session{s: s, addr: addr, ctx: ctx, heartbeat: 30 * time.Second}
	conn, err := s.conf.NewCustomizedConn(c, s.auth, h)
	if err != nil {
		// The error names the user and address, never the password.
		s.log.Warn("replica connection refused", "addr", addr, "err", err)
		return
	}
	h.conn = conn
	s.log.Info("replica connected", "addr", addr, "user", conn.GetUser())
	for !conn.Closed() {
		if err := conn.HandleCommand(); err != nil {
			if h.dumpErr != nil {
				s.log.Info("replica dump ended", "addr", addr, "server_id", h.serverID, "reason", h.dumpErr)
			}
			return
		}
	}
}
