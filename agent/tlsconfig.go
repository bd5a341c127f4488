package agent

import (
	"crypto/tls"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/status"
	"github.com/hotstandby/hotstandby/tlsconf"
)

// The connections the agent opens, per server, each with a TLS observer of
// its own so that status can say how each one is protected.
var (
	masterConns  = []string{"dump", "monitor", "probe", "sql"}
	standbyConns = []string{"applier", "sql"}
)

// tlsSeq makes the go-sql-driver TLS names unique within the process (the
// driver's registry is global; tests run several agents in one process).
var tlsSeq atomic.Int64

// tlsSetup is the resolved TLS of both servers; copies of a Config share it.
type tlsSetup struct {
	master, standby *tlsconf.Client
	names           map[string]string            // "master/sql" -> registered go-sql-driver name
	obs             map[string]*tlsconf.Observer // "master/dump" -> its observer
	hosts           map[string]string            // "master" -> host
}

// resolveTLSPaths makes relative TLS file names relative to the config
// file's directory dir, as password_file is.
func (c *Config) resolveTLSPaths(dir string) {
	for _, p := range []*string{&c.Master.CAFile, &c.Master.CertFile, &c.Master.KeyFile,
		&c.Standby.CAFile, &c.Standby.CertFile, &c.Standby.KeyFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// setupTLS resolves [master] and [standby] TLS keys and registers one
// go-sql-driver TLS config per connection kind. Errors name the key.
func (c *Config) setupTLS() error {
	s := &tlsSetup{names: map[string]string{}, obs: map[string]*tlsconf.Observer{}, hosts: map[string]string{}}
	var err error
	if s.master, err = tlsconf.New("master", c.Master.Host, c.Master.Settings); err != nil {
		return err
	}
	s.hosts["master"] = c.Master.Host
	if c.Standby.Enabled() {
		if s.standby, err = tlsconf.New("standby", c.Standby.Host, c.Standby.Settings); err != nil {
			return err
		}
		s.hosts["standby"] = c.Standby.Host
	}
	seq := tlsSeq.Add(1)
	for server, cl := range map[string]*tlsconf.Client{"master": s.master, "standby": s.standby} {
		kinds := masterConns
		if server == "standby" {
			kinds = standbyConns
		}
		for _, kind := range kinds {
			key := server + "/" + kind
			s.obs[key] = &tlsconf.Observer{}
			if cl == nil || !cl.Enabled() {
				continue
			}
			name := fmt.Sprintf("hotstandby-%d-%s-%s", seq, server, kind)
			if err := mysql.RegisterTLSConfig(name, cl.Config(s.obs[key])); err != nil {
				return fmt.Errorf("%s.tls: %w", server, err)
			}
			s.names[key] = name
		}
	}
	c.tls = s
	return nil
}

// TLSWarnings are lines for the log about TLS that works but protects less
// than a reader might assume.
func (c Config) TLSWarnings() []string {
	if c.tls == nil {
		return nil
	}
	var out []string
	for _, cl := range []*tlsconf.Client{c.tls.master, c.tls.standby} {
		if cl != nil && cl.Warning != "" {
			out = append(out, cl.Warning)
		}
	}
	return out
}

// DSN is the one builder of go-sql-driver DSNs for the agent's connections:
// server is "master" or "standby", conn one of the connection kinds
// ("sql" for verify, fence, clone and other short-lived queries). The DSN
// carries the password: never print it.
func (c Config) DSN(server, conn string) string {
	if c.tls == nil {
		c.tls = &tlsSetup{}
	}
	m := mysql.NewConfig()
	m.Net = "tcp"
	var cl *tlsconf.Client
	if server == "standby" {
		m.User, m.Passwd, m.Addr, cl = c.Standby.User, c.standbyPassword, c.Standby.Addr(), c.tls.standby
		m.Timeout, m.ReadTimeout, m.WriteTimeout = 5*time.Second, time.Hour, time.Minute
	} else {
		m.User, m.Passwd, m.Addr, cl = c.Master.User, c.password, c.Master.Addr(), c.tls.master
		m.Timeout = 5 * time.Second
	}
	if name := c.tls.names[server+"/"+conn]; name != "" {
		m.TLSConfig, m.AllowFallbackToPlaintext = name, cl.Fallback()
	}
	return m.FormatDSN()
}

// observedConnector is a connector for DSN(server, conn) that records in
// that connection kind's observer whether each new connection is
// encrypted: with tls = "preferred" go-sql-driver falls back to plain text
// without a word, and status would say no handshake was seen. Other levels
// give nil (off: known plain; required and stricter: never plain, and the
// handshake records itself).
func (c Config) observedConnector(server, conn string) (driver.Connector, error) {
	if c.tls == nil {
		return nil, nil
	}
	cl := c.tls.master
	if server == "standby" {
		cl = c.tls.standby
	}
	if !cl.Fallback() {
		return nil, nil
	}
	return tlsconf.ObservedConnector(c.DSN(server, conn), c.tls.obs[server+"/"+conn])
}

// masterTLS returns the go-mysql TLS config of one master connection kind
// (nil when tls = "off"), whether it falls back to plain, and the observer.
func (c Config) masterTLS(conn string) (*tls.Config, bool, *tlsconf.Observer) {
	if c.tls == nil {
		return nil, false, nil
	}
	obs := c.tls.obs["master/"+conn]
	return c.tls.master.Config(obs), c.tls.master.Fallback(), obs
}

// monitorSource is src with the monitor connection's TLS.
func (c Config) monitorSource(src binlog.SourceConfig) binlog.SourceConfig {
	tc, fallback, obs := c.masterTLS("monitor")
	src.TLS, src.TLSFallback, src.OnPlaintext = tc, fallback, obs.RecordPlain
	return src
}

// probeTLS is the failover probe's TLS config (nil when tls = "off").
func (c Config) probeTLS() *tls.Config {
	tc, _, _ := c.masterTLS("probe")
	return tc
}

// probeFallback reports whether the probe may fall back to plain text.
func (c Config) probeFallback() bool {
	_, fallback, _ := c.masterTLS("probe")
	return fallback
}

// TLSReport says, for each connection the agent opened, how TLS protects it.
func (c Config) TLSReport() []status.TLSReport {
	if c.tls == nil {
		return nil
	}
	var out []status.TLSReport
	add := func(server string, cl *tlsconf.Client, kinds []string) {
		if cl == nil {
			return
		}
		host := c.tls.hosts[server]
		for _, kind := range kinds {
			o := c.tls.obs[server+"/"+kind].Last()
			if kind == "sql" && o.At.IsZero() {
				continue // verify, fence, clone: shown once one ran in this process
			}
			r := status.TLSReport{Connection: server + " " + kind, Mode: string(cl.Mode),
				Loopback: tlsconf.IsLoopback(host), Seen: !o.At.IsZero() || cl.Mode == tlsconf.Off,
				Encrypted: o.Encrypted, Version: o.Version, Cipher: o.Cipher, Verified: o.Verified, Subject: o.Subject}
			if !o.NotAfter.IsZero() {
				na := o.NotAfter
				r.NotAfter = &na
				r.ExpiresSoon = o.ExpiresSoon(time.Now())
			}
			out = append(out, r)
		}
	}
	add("master", c.tls.master, masterConns)
	add("standby", c.tls.standby, standbyConns)
	return out
}
