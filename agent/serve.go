package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotstandby/hotstandby/binlogserver"
	"github.com/hotstandby/hotstandby/status"
	"github.com/hotstandby/hotstandby/tlsconf"
)

// ServeConfig is the [serve] section: the binlog server that lets stock
// MariaDB replicas replicate from the agent's relay log.
type ServeConfig struct {
	// Listen is host:port or :port; empty (the default) serves nothing. A
	// missing host means 127.0.0.1; another interface only when named.
	Listen string `toml:"listen"`
	// User is the account replicas log in as (mysql_native_password).
	User string `toml:"user"`
	// Password is that account's password; prefer PasswordFile.
	Password string `toml:"password"`
	// PasswordFile is a file whose first line is the password.
	PasswordFile string `toml:"password_file"`
	// CertFile and KeyFile are the listener's certificate and key (PEM):
	// with them, replicas may connect with MASTER_SSL=1.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// RequireTLS refuses replicas that connect without TLS (access denied).
	RequireTLS bool `toml:"require_tls"`
}

// Enabled reports whether the binlog server runs.
func (s ServeConfig) Enabled() bool { return s.Listen != "" }

// validateServe checks the [serve] section and resolves its password.
func (c *Config) validateServe() error {
	s := c.Serve
	if !s.Enabled() {
		return nil
	}
	host, port, err := net.SplitHostPort(s.Listen)
	if err != nil || port == "" {
		return fmt.Errorf("serve.listen = %q: want host:port or :port", s.Listen)
	}
	if host != "" && host != "localhost" && net.ParseIP(host) == nil {
		return fmt.Errorf("serve.listen = %q: the host must be an IP address", s.Listen)
	}
	if s.User == "" {
		return errors.New("serve.user is required with serve.listen")
	}
	file := s.PasswordFile
	if file != "" && !filepath.IsAbs(file) && c.path != "" {
		file = filepath.Join(filepath.Dir(c.path), file)
	}
	if c.servePassword, err = resolvePassword("serve", s.Password, file, ""); err != nil {
		return err
	}
	if c.servePassword == "" {
		return errors.New("serve.password or serve.password_file is required with serve.listen")
	}
	for _, p := range []*string{&c.Serve.CertFile, &c.Serve.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) && c.path != "" {
			*p = filepath.Join(filepath.Dir(c.path), *p)
		}
	}
	if c.Serve.RequireTLS && c.Serve.CertFile == "" && c.Serve.KeyFile == "" {
		return errors.New("serve.require_tls = true needs a certificate: set serve.cert_file and serve.key_file")
	}
	_, err = c.serveTLS()
	return err
}

// serveTLS loads the listener's certificate (nil without one). Errors name
// the key and the file.
func (c Config) serveTLS() (*tls.Config, error) {
	s := c.Serve
	if s.CertFile == "" && s.KeyFile == "" {
		return nil, nil
	}
	for _, f := range []struct{ key, path string }{{"serve.cert_file", s.CertFile}, {"serve.key_file", s.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("%s %s: cannot read it: %v", f.key, f.path, err)
		}
	}
	return tlsconf.ServerConfig(s.CertFile, s.KeyFile)
}

// ServeListen is the address the binlog server listens on (127.0.0.1 when
// serve.listen names no host).
func (c Config) ServeListen() string { return binlogserver.ListenAddr(c.Serve.Listen) }

// serveParts is the running binlog server.
type serveParts struct {
	mu  sync.Mutex // mu guards the field below
	srv *binlogserver.Server
}

func (p *serveParts) get() *binlogserver.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.srv
}

// startServe starts the binlog server over the relay log (with [serve]).
// It listens before it returns, so a port in use stops the daemon with the
// reason.
func (a *Agent) startServe(ctx context.Context, wg *sync.WaitGroup) error {
	if !a.cfg.Serve.Enabled() {
		return nil
	}
	tlsCfg, err := a.cfg.serveTLS()
	if err != nil {
		return err
	}
	if msg := serveCertWarning(a.cfg.Serve.CertFile, tlsCfg, time.Now()); msg != "" {
		a.log.Warn(msg)
	}
	srv, err := binlogserver.New(binlogserver.Config{
		Listen: a.cfg.ServeListen(), User: a.cfg.Serve.User, Password: a.cfg.servePassword,
		RelayDir: a.cfg.RelayDir(), Source: a.recv, ServerID: a.cfg.ServerID, Logger: a.log,
		TLS: tlsCfg, RequireTLS: a.cfg.Serve.RequireTLS,
	})
	if err != nil {
		return fmt.Errorf("serve.listen %s: %w", a.cfg.Serve.Listen, err)
	}
	if ip := net.ParseIP(hostOf(srv.Addr())); ip != nil && !ip.IsLoopback() {
		a.log.Warn("the binlog server listens on a non-loopback address, as configured", "addr", srv.Addr())
	}
	a.serve.mu.Lock()
	a.serve.srv = srv
	a.serve.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			a.log.Error("binlog server stopped", "err", err)
		}
	}()
	return nil
}

// serveCertWarning is a warning when the listener's certificate has
// expired or expires within tlsconf.ExpiryWarning of now ("": none).
func serveCertWarning(file string, c *tls.Config, now time.Time) string {
	if c == nil || len(c.Certificates) == 0 || c.Certificates[0].Leaf == nil {
		return ""
	}
	na := c.Certificates[0].Leaf.NotAfter
	switch {
	case !now.Before(na):
		return fmt.Sprintf("serve.cert_file %s expired at %s: replicas that verify it (MASTER_SSL_VERIFY_SERVER_CERT=1) refuse the agent", file, na.UTC().Format(time.RFC3339))
	case na.Sub(now) < tlsconf.ExpiryWarning:
		return fmt.Sprintf("serve.cert_file %s expires at %s, in less than %d days: renew it", file, na.UTC().Format(time.RFC3339), int(tlsconf.ExpiryWarning.Hours()/24))
	}
	return ""
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// serveKeepFrom is the oldest relay segment a connected downstream replica
// still reads (false: none connected).
func (a *Agent) serveKeepFrom() (uint64, bool) {
	if srv := a.serve.get(); srv != nil {
		return srv.OldestNeeded()
	}
	return 0, false
}

// serveReport is the [serve] part of the status report (nil when off).
func (a *Agent) serveReport() *status.ServeReport {
	srv := a.serve.get()
	if srv == nil {
		return nil
	}
	st := srv.Stats()
	rep := &status.ServeReport{Listen: srv.Addr(), BytesSent: st.BytesSent, TLS: srv.TLSMode(), Acks: st.Acks}
	for _, r := range srv.Replicas() {
		ct, _ := srv.ConnTLS(r.Addr)
		rep.Replicas = append(rep.Replicas, status.ServedReplica{
			ServerID: r.ServerID, Addr: r.Addr, Since: r.Since, Mode: r.Mode, Requested: r.Requested,
			SentFile: r.Sent.File, SentPos: r.Sent.Pos, SentGTID: r.SentGTID, Segment: r.Segment,
			BytesSent: r.BytesSent, CaughtUp: r.CaughtUp,
			Encrypted: ct.Encrypted, TLSVersion: ct.Version, TLSCipher: ct.Cipher,
			SemiSync: r.SemiSync, Acks: r.Acks, AckedFile: r.Acked.File, AckedPos: r.Acked.Pos,
		})
	}
	return rep
}

// registerServe adds the binlog server's metrics.
func (m *metrics) registerServe(a *Agent) {
	stats := func() binlogserver.Stats {
		if srv := a.serve.get(); srv != nil {
			return srv.Stats()
		}
		return binlogserver.Stats{}
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotstandby_serve_replicas", Help: "Downstream replicas dumping from the agent's binlog server."},
			func() float64 { return float64(stats().Replicas) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotstandby_serve_sent_bytes_total", Help: "Event bytes the binlog server sent to downstream replicas."},
			func() float64 { return float64(stats().BytesSent) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotstandby_serve_sent_events_total", Help: "Events the binlog server sent to downstream replicas."},
			func() float64 { return float64(stats().EventsSent) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotstandby_serve_semisync_replicas", Help: "Downstream replicas dumping from the agent's binlog server in semi-sync."},
			func() float64 { return float64(stats().SemiSyncReplicas) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotstandby_serve_acks_total", Help: "Semi-sync ACKs downstream replicas sent to the binlog server (informational: the agent does not wait for them)."},
			func() float64 { return float64(stats().Acks) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotstandby_serve_login_failures_total", Help: "Logins to the binlog server refused for a wrong user or password."},
			func() float64 { return float64(stats().LoginFailures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotstandby_serve_refused_connections_total", Help: "Connections to the binlog server refused before login: too many not logged in yet."},
			func() float64 { return float64(stats().RefusedConnections) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotstandby_serve_panics_total", Help: "Binlog server connection handlers that panicked (each closed its own connection only)."},
			func() float64 { return float64(stats().Panics) }),
	)
}
