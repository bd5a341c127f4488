package failover

import (
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Prober asks the master whether it answers, once per call.
type Prober interface {
	// Probe returns nil if the master answered within the probe's timeout,
	// as the expected server. Otherwise its error wraps one of the ErrProbe
	// sentinels (a Prober of tests may return any error; the Detector
	// counts every error as a failed probe except ErrProbeAuth and
	// ErrProbeServer, which prove that a server answered). Probe must
	// return soon after ctx is done. The Detector calls it from one
	// goroutine, never concurrently.
	Probe(ctx context.Context) error
}

// Probe errors. Each error returned by SQLProber.Probe wraps exactly one of
// them, and also the underlying error (test both with errors.Is).
var (
	// ErrProbeRefused means nothing listens on the master's address: the
	// host is up and its kernel answered the TCP connection with a reset.
	// mariadbd crashed, was killed or stopped.
	ErrProbeRefused = errors.New("refused")

	// ErrProbeTimeout means no answer within the probe timeout: a dead host
	// or network, a frozen server (SIGSTOP, a paused VM), or a server too
	// loaded to answer in time. It counts as a failure, which is why the
	// probe timeout must exceed the master's worst response time.
	ErrProbeTimeout = errors.New("timeout")

	// ErrProbeAuth means a server answered but refused the probe's
	// credentials (or their authentication method). The server is alive:
	// the Detector counts it as an answer, not as a failure, and the
	// operator must fix the probe's account.
	ErrProbeAuth = errors.New("auth error")

	// ErrProbeNotMaster means a server answered on the master's address but
	// its @@server_id is not the master's: the address reaches another
	// server, so the master did not answer. It counts as a failure.
	ErrProbeNotMaster = errors.New("not the master")

	// ErrProbeServer means the server answered the probe with an error
	// other than an authentication error (too many connections, shutdown
	// in progress, ...). The server is alive: the Detector counts it as an
	// answer, not as a failure.
	ErrProbeServer = errors.New("server error")

	// ErrProbeNetwork means the connection failed in another way: reset,
	// closed by the peer, host or network unreachable, name not resolved.
	// It counts as a failure.
	ErrProbeNetwork = errors.New("connection lost")
)

// probeAnswered reports whether err, returned by a Prober, proves that a
// server answered at the master's address (ErrProbeAuth, ErrProbeServer).
func probeAnswered(err error) bool {
	return errors.Is(err, ErrProbeAuth) || errors.Is(err, ErrProbeServer)
}

// probeHostUp reports whether err, a failed probe's error, shows that the
// master's host answered at the TCP level while no MySQL server did: the
// connection was refused (nothing listens on the port), or closed or reset
// by the peer (mariadbd stopped or was killed under the probe). A timeout,
// an unreachable host or network, or a name that does not resolve is not:
// the host, or the way to it, is gone. The Detector gives the first kind
// the restart grace.
func probeHostUp(err error) bool {
	if errors.Is(err, ErrProbeRefused) {
		return true
	}
	if !errors.Is(err, ErrProbeNetwork) {
		return false
	}
	var dns *net.DNSError
	return !errors.As(err, &dns) && !errors.Is(err, syscall.EHOSTUNREACH) && !errors.Is(err, syscall.ENETUNREACH) &&
		!errors.Is(err, syscall.EHOSTDOWN) && !errors.Is(err, syscall.ENETDOWN)
}

// SQLProberConfig says how an SQLProber reaches the master.
type SQLProberConfig struct {
	// Addr is the master's host:port.
	Addr string
	// User and Password are the probe's account. The account needs no
	// privilege: SELECT @@server_id runs for anyone. Password is never
	// logged and never appears in an error.
	User     string
	Password string
	// ServerID is the master's @@server_id. A server that answers with
	// another one is not the master (ErrProbeNotMaster). Zero accepts any
	// server.
	ServerID uint32
	// Timeout bounds one probe, connection and query together; it is also
	// the driver's connect, read and write timeout. Use
	// DetectConfig.ProbeTimeout.
	Timeout time.Duration
	// Logger receives the driver's messages at debug level; nil discards
	// them.
	Logger *slog.Logger
	// TLS, when not nil, is the connection's TLS config; with TLSFallback a
	// master that offers no TLS is probed in plain text.
	TLS         *tls.Config
	TLSFallback bool
}

// SQLProber probes the master with SELECT @@server_id over a single
// connection of its own (database/sql with SetMaxOpenConns(1)). The
// connection is kept between probes, so that a loaded master only has to
// answer a query, not accept a connection; it is checked for liveness
// before each probe and dropped after any error, and the next probe
// connects again.
type SQLProber struct {
	addr     string
	serverID uint32
	timeout  time.Duration
	db       *sql.DB

	mu sync.Mutex // mu serializes Probe and Close
}

var _ Prober = (*SQLProber)(nil)

// NewSQLProber returns a prober for cfg. It does not connect: the first
// Probe does.
func NewSQLProber(cfg SQLProberConfig) (*SQLProber, error) {
	if cfg.Addr == "" {
		return nil, errors.New("failover: probe: master address is empty")
	}
	if cfg.Timeout <= 0 {
		return nil, fmt.Errorf("failover: probe: timeout %s: want more than 0", cfg.Timeout)
	}
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = cfg.Addr
	mc.User = cfg.User
	mc.Passwd = cfg.Password
	mc.Timeout = cfg.Timeout
	mc.ReadTimeout = cfg.Timeout
	mc.WriteTimeout = cfg.Timeout
	mc.Logger = probeDriverLogger{cfg.Logger}
	mc.TLS, mc.AllowFallbackToPlaintext = cfg.TLS, cfg.TLSFallback
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		// The message names a DSN parameter, never the password.
		return nil, fmt.Errorf("failover: probe %s: %w", cfg.Addr, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	return &SQLProber{addr: cfg.Addr, serverID: cfg.ServerID, timeout: cfg.Timeout, db: db}, nil
}

// Probe runs SELECT @@server_id on the master under the configured timeout
// and checks the answer against the master's server_id. Its errors wrap one
// of the ErrProbe sentinels; if ctx itself ends, the error wraps ctx.Err()
// instead.
func (p *SQLProber) Probe(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	// Taking the connection from the pool checks that it is still alive
	// and connects again if it is not, so a master that was killed since
	// the last probe shows as refused, not as a lost connection.
	conn, err := p.db.Conn(pctx)
	if err != nil {
		return p.classify(ctx, pctx, start, err)
	}
	var id uint32
	err = conn.QueryRowContext(pctx, "SELECT @@server_id").Scan(&id)
	if err == nil && p.serverID != 0 && id != p.serverID {
		err = fmt.Errorf("%w: %s answers with server_id %d, the master's is %d",
			ErrProbeNotMaster, p.addr, id, p.serverID)
	}
	if err != nil {
		// Never reuse a connection after an error: the next probe
		// connects again (and may reach another server).
		conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
		if errors.Is(err, ErrProbeNotMaster) {
			return err
		}
		return p.classify(ctx, pctx, start, err)
	}
	conn.Close() // back to the pool, for the next probe
	return nil
}

// Close closes the prober's connection. Probe must not be called after it.
func (p *SQLProber) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.db.Close()
}

// classify wraps err, which a probe started at start under pctx (derived
// from ctx) returned, with the sentinel that says what happened.
func (p *SQLProber) classify(ctx, pctx context.Context, start time.Time, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("failover: probe %s: %w", p.addr, ctx.Err())
	}
	var me *mysql.MySQLError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: %w", ErrProbeRefused, err)
	case errors.As(err, &me) && probeAuthCode(me.Number):
		return fmt.Errorf("%w: %s: %w", ErrProbeAuth, p.addr, err)
	case errors.As(err, &me):
		return fmt.Errorf("%w: %s: %w", ErrProbeServer, p.addr, err)
	case errors.Is(err, mysql.ErrNativePassword), errors.Is(err, mysql.ErrCleartextPassword),
		errors.Is(err, mysql.ErrOldPassword), errors.Is(err, mysql.ErrUnknownPlugin):
		return fmt.Errorf("%w: %s: %w", ErrProbeAuth, p.addr, err)
	case pctx.Err() != nil || time.Since(start) >= p.timeout || probeNetTimeout(err):
		// When a deadline fires (the context's, or the driver's read
		// deadline a moment earlier) the driver closes the socket and
		// returns "invalid connection", logging the i/o timeout: the
		// time spent says what happened.
		return fmt.Errorf("%w: %s did not answer within %s (%w)", ErrProbeTimeout, p.addr, p.timeout, err)
	default:
		return fmt.Errorf("%w: %s: %w", ErrProbeNetwork, p.addr, err)
	}
}

// probeAuthCode reports whether a server error code refuses the client's
// credentials or account.
func probeAuthCode(code uint16) bool {
	switch code {
	case 1044, // ER_DBACCESS_DENIED_ERROR
		1045, // ER_ACCESS_DENIED_ERROR
		1251, // ER_NOT_SUPPORTED_AUTH_MODE
		1698, // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
		1820, // ER_MUST_CHANGE_PASSWORD
		1862, // ER_MUST_CHANGE_PASSWORD_LOGIN
		3118, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
		4151: // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
		return true
	}
	return false
}

// probeNetTimeout reports whether err is a network timeout.
func probeNetTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// probeDriverLogger sends go-sql-driver's messages to slog at debug level.
// The driver's messages carry addresses and error texts, never the DSN.
type probeDriverLogger struct{ log *slog.Logger }

// Print implements mysql.Logger.
func (l probeDriverLogger) Print(v ...any) {
	if l.log != nil {
		l.log.Debug("mysql driver", "msg", strings.TrimSpace(fmt.Sprint(v...)))
	}
}
