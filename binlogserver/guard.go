package binlogserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/server"
)

// Limits on clients that have not logged in. Before login a client can
// cost the server only this much: packets of maxLoginPacket, at most
// maxLoginBytes in all (TLS records included), maxUnauth connections
// (maxUnauthPerHost from one address), each for at most the login timeout.
const (
	maxLoginPacket   = 64 << 10
	maxLoginBytes    = 256 << 10
	maxUnauth        = 64
	maxUnauthPerHost = 16
	// With TLS offered the framing before login is inside TLS records,
	// where a packet header cannot be refused before go-mysql reserves
	// (and zeroes) the length it announces, up to 16 MiB: fewer
	// connections may log in at once (at most 256 MiB so reserved).
	maxUnauthTLS        = 16
	maxUnauthPerHostTLS = 4
	// Failed logins from one address: the first freeLoginFails are
	// answered at once; each later one waits loginBackoffBase, doubled per
	// failure, up to loginBackoffMax, before its "access denied" (a good
	// login from the address is never held back, and resets the count).
	freeLoginFails   = 3
	loginBackoffBase = 50 * time.Millisecond
	loginBackoffMax  = 5 * time.Second
	// failLogEvery: at most one log line per address in this long about
	// its failed logins; the next says how many were not logged.
	failLogEvery = time.Minute
	// failForget: an address without a failed login for this long starts
	// from zero again.
	failForget = 10 * time.Minute
	maxHosts   = 4096
)

// errLoginPacket ends a connection whose client sent a packet over the
// cap before logging in.
var errLoginPacket = errors.New("a packet before login is larger than 64 KiB")

// errCommandPacket ends a connection whose client sent a command packet
// over maxCommandPacket.
var errCommandPacket = errors.New("a command packet is larger than 1 MiB")

// errLoginBytes ends a connection whose client sent too much before
// logging in.
var errLoginBytes = errors.New("the client sent more than 256 KiB before logging in")

// loginConn is the client's connection as go-mysql reads it. In plain
// connections it follows the protocol's packet framing, and:
//   - refuses a packet header that announces more than maxLoginPacket
//     before login (maxCommandPacket after) before go-mysql sees it
//     (go-mysql reserves the announced length at once: 16 MiB per header);
//   - returns no byte past the end of the current packet, so that
//     go-mysql's read-ahead buffer never holds bytes the dump's ACK reader
//     must read from the connection itself.
//
// Before login it also caps the bytes read in all. After an SSL request
// the framing is inside TLS records: then only the byte cap applies (and
// tls.Conn, read by both, is the only buffer).
type loginConn struct {
	net.Conn
	authed  bool // set by the connection's goroutine once logged in
	tls     bool // the server offers TLS: a 32-byte first packet is an SSL request
	budget  int
	scan    bool // still reading plain packet headers
	hdr     [4]byte
	hn      int // bytes of hdr seen
	left    int // payload bytes left in the current packet
	packets int
	ssl     bool // the current packet is an SSL request
	err     error
}

// RemoteAddr is the client's host without its port: go-mysql names it in
// "Access denied for user 'u'@'host'", as MariaDB does.
func (c *loginConn) RemoteAddr() net.Addr { return hostAddr(hostOf(c.Conn.RemoteAddr().String())) }

type hostAddr string

func (a hostAddr) Network() string { return "tcp" }
func (a hostAddr) String() string  { return string(a) }

func newLoginConn(c net.Conn, tls bool) *loginConn {
	return &loginConn{Conn: c, tls: tls, budget: maxLoginBytes, scan: true}
}

func (c *loginConn) Read(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if !c.authed {
		if c.budget <= 0 {
			c.err = errLoginBytes
			return 0, c.err
		}
		if len(b) > c.budget {
			b = b[:c.budget]
		}
	}
	if c.scan && len(b) > 0 {
		if c.left > 0 {
			b = b[:min(len(b), c.left)]
		} else {
			b = b[:min(len(b), 4-c.hn)]
		}
	}
	n, err := c.Conn.Read(b)
	if !c.authed {
		c.budget -= n
	}
	if c.scan {
		if perr := c.scanHeaders(b[:n]); perr != nil {
			c.err = perr
			return 0, perr
		}
	}
	return n, err
}

// scanHeaders follows the packet framing through b (within one packet:
// Read never reads across a packet's end).
func (c *loginConn) scanHeaders(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if c.left > 0 {
		c.left -= len(b)
		if c.left == 0 {
			c.endPacket()
		}
		return nil
	}
	c.hn += copy(c.hdr[c.hn:], b)
	if c.hn < 4 {
		return nil
	}
	c.hn = 0
	length := int(c.hdr[0]) | int(c.hdr[1])<<8 | int(c.hdr[2])<<16
	limit, what := maxLoginPacket, errLoginPacket
	if c.authed {
		limit, what = maxCommandPacket, errCommandPacket
	}
	if length > limit {
		return what
	}
	c.left = length
	if c.packets == 0 && length == 32 && c.tls && !c.authed {
		c.ssl = true
	}
	if length == 0 {
		c.endPacket()
	}
	return nil
}

// endPacket counts a whole packet; after an SSL request TLS follows.
func (c *loginConn) endPacket() {
	c.packets++
	if c.ssl {
		c.scan = false
	}
}

// admission tracks the connections that have not logged in yet and the
// failed logins, per address.
type admission struct {
	max, maxPerHost int

	mu     sync.Mutex // mu guards the fields below
	unauth int
	hosts  map[string]*hostState
}

type hostState struct {
	unauth   int
	fails    int                  // failed logins since the last success (or failForget)
	lastFail time.Time            // when the last one was
	logged   map[string]time.Time // by kind of refusal: when one was last logged
	unlogged map[string]int       // by kind: refusals not logged since
}

func newAdmission(tls bool) *admission {
	a := &admission{max: maxUnauth, maxPerHost: maxUnauthPerHost, hosts: map[string]*hostState{}}
	if tls {
		a.max, a.maxPerHost = maxUnauthTLS, maxUnauthPerHostTLS
	}
	return a
}

// enter admits a new connection from host, or says why not.
func (a *admission) enter(host string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.host(host)
	switch {
	case a.unauth >= a.max:
		return fmt.Errorf("%d connections are logging in already", a.unauth)
	case h.unauth >= a.maxPerHost:
		return fmt.Errorf("%d connections from %s are logging in already", h.unauth, host)
	}
	a.unauth++
	h.unauth++
	return nil
}

// leave ends a connection's login phase (logged in or not).
func (a *admission) leave(host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.unauth--
	if h, ok := a.hosts[host]; ok {
		h.unauth--
	}
}

func (a *admission) host(host string) *hostState {
	h, ok := a.hosts[host]
	if ok {
		return h
	}
	if len(a.hosts) >= maxHosts {
		now := time.Now()
		for k, v := range a.hosts {
			if v.unauth == 0 && now.Sub(v.lastFail) > failForget {
				delete(a.hosts, k)
			}
		}
		if len(a.hosts) >= maxHosts {
			for k, v := range a.hosts { // still full: forget any idle one
				if v.unauth == 0 {
					delete(a.hosts, k)
					break
				}
			}
		}
	}
	h = &hostState{}
	a.hosts[host] = h
	return h
}

// failed records a failed login from host and returns how long to wait
// before answering it, and whether to log it (with how many earlier
// failures went unlogged).
func (a *admission) failed(host string, now time.Time, base time.Duration) (wait time.Duration, log bool, unlogged, fails int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.host(host)
	if now.Sub(h.lastFail) > failForget {
		h.fails = 0
	}
	h.fails++
	h.lastFail = now
	if h.fails > freeLoginFails && base > 0 {
		wait = base << min(h.fails-freeLoginFails-1, 16)
		wait = min(wait, loginBackoffMax)
	}
	log, unlogged = h.mayLog("login", now)
	return wait, log, unlogged, h.fails
}

// mayLog says whether a refusal of this kind from the host may be logged
// now (at most one line per kind per failLogEvery), and how many were not
// logged since the last.
func (h *hostState) mayLog(kind string, now time.Time) (bool, int) {
	if h.logged == nil {
		h.logged, h.unlogged = map[string]time.Time{}, map[string]int{}
	}
	if now.Sub(h.logged[kind]) >= failLogEvery {
		n := h.unlogged[kind]
		h.logged[kind], h.unlogged[kind] = now, 0
		return true, n
	}
	h.unlogged[kind]++
	return false, 0
}

// mayLog is hostState.mayLog for host's other refusals before login.
func (a *admission) mayLog(host, kind string, now time.Time) (bool, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.host(host).mayLog(kind, now)
}

// succeeded clears host's failed logins.
func (a *admission) succeeded(host string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if h, ok := a.hosts[host]; ok {
		h.fails = 0
	}
}

// authHandler is the one account, and the require_tls check: like
// MariaDB's REQUIRE SSL, it is made after the password is checked. A user
// name that is not the account gets a decoy credential no password
// matches, so that a wrong user and a wrong password are answered alike
// (1045 access denied), in the same way.
type authHandler struct {
	user       string
	cred       server.Credential
	decoy      server.Credential
	requireTLS bool
	s          *Server
}

func newAuthHandler(s *Server, user, password string, requireTLS bool) (*authHandler, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &authHandler{
		user:       user,
		cred:       server.Credential{Passwords: []string{password}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD},
		decoy:      server.Credential{Passwords: []string{hex.EncodeToString(b[:])}, AuthPluginName: mysql.AUTH_NATIVE_PASSWORD},
		requireTLS: requireTLS,
		s:          s,
	}, nil
}

// GetCredential returns the account's credential, or the decoy.
func (a *authHandler) GetCredential(user string) (server.Credential, bool, error) {
	if user == a.user {
		return a.cred, true, nil
	}
	return a.decoy, true, nil
}

// OnAuthSuccess refuses a plain connection when TLS is required.
func (a *authHandler) OnAuthSuccess(c *server.Conn) error {
	host := hostOf(c.RemoteAddr().String())
	if a.requireTLS && !tlsOf(c).Encrypted {
		return mysql.NewError(mysql.ER_ACCESS_DENIED_ERROR, fmt.Sprintf(
			"Access denied for user '%s'@'%s': this hotstandby binlog server requires TLS (serve.require_tls = true); connect with MASTER_SSL=1",
			c.GetUser(), host))
	}
	a.s.adm.succeeded(host)
	return nil
}

// OnAuthFailure holds back the answer to a failed login, longer with each
// failure from the same address, and logs failed logins at most once per
// failLogEvery per address.
func (a *authHandler) OnAuthFailure(c *server.Conn, err error) {
	a.s.loginFailures.Add(1)
	host := hostOf(c.RemoteAddr().String())
	wait, log, unlogged, fails := a.s.adm.failed(host, time.Now(), a.s.backoff)
	if log {
		// The error names the user and address, never the password.
		a.s.log.Warn("replica connection refused: wrong user or password", "host", host, "user", c.GetUser(), "err", err,
			"failed_logins_from_host", fails, "not_logged_since_last_line", unlogged)
	}
	if wait > 0 {
		ctx := a.s.ctx()
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

// tooMany answers a connection refused before the handshake: ERR 1040, as
// MariaDB answers past max_connections.
func tooMany(c net.Conn, why string) {
	msg := "Too many connections: " + why
	code := uint16(mysql.ER_CON_COUNT_ERROR)
	body := append([]byte{0xff, byte(code), byte(code >> 8), '#'}, "08004"...)
	body = append(body, msg...)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(append([]byte{byte(len(body)), byte(len(body) >> 8), byte(len(body) >> 16), 0}, body...))
}

var _ server.AuthenticationHandler = (*authHandler)(nil)

// ctxKey avoids a nil context before Serve.
func (s *Server) ctx() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serveCtx == nil {
		return context.Background()
	}
	return s.serveCtx
}
