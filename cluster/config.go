package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/hotstandby/hotstandby/tlsconf"
)

// Role is what a member does in the cluster.
type Role string

// The roles.
const (
	// RoleStandby members campaign for the acknowledger's seat and count in
	// the ACK quorum.
	RoleStandby Role = "standby"
	// RoleDR members (disaster recovery, usually at another site) replicate
	// asynchronously: they never campaign and never count in the quorum.
	RoleDR Role = "dr"
)

// DefaultLeaseTTL is the acknowledger lease's TTL when lease_ttl is unset.
const DefaultLeaseTTL = 2 * time.Second

// Config is the [cluster] section. Its zero value (no section in the file)
// means no cluster: the agent runs as it does without one and never needs
// etcd (see Enabled).
type Config struct {
	// Etcd lists the etcd cluster's client URLs, all http:// or all
	// https://, each scheme://host:port with no path.
	Etcd []string `toml:"etcd"`
	// Settings are the TLS keys as in [master] (tls, ca_file, cert_file,
	// key_file, server_name). With https:// endpoints, cert_file/key_file
	// are the agent's client certificate for etcd's --client-cert-auth.
	tlsconf.Settings
	// Name is the cluster's name: it scopes every key the agents write in
	// etcd, so several clusters can share one etcd.
	Name string `toml:"name"`
	// Member is this agent's name, unique in the cluster.
	Member string `toml:"member"`
	// Role is "standby" (the default) or "dr".
	Role Role `toml:"role"`
	// Standbys names every standby member (this one included when its
	// role is standby). The list is static on purpose: a quorum counted
	// among whoever happens to be registered shrinks with a partition.
	Standbys []string `toml:"standbys"`
	// AckQuorum is how many standby members (the acknowledger included)
	// must hold a transaction fsynced before the acknowledger ACKs it to
	// the master. 0: a majority of Standbys. Less than a majority is
	// refused: a promotion that reads a majority could then miss an OK'd
	// commit.
	AckQuorum int `toml:"ack_quorum"`
	// LeaseTTL is the TTL of the acknowledger's etcd lease, in whole
	// seconds (etcd's unit); 0: DefaultLeaseTTL. etcd raises a TTL below
	// its minimum (1.5 election timeouts, 2 s with etcd's defaults); the
	// Acknowledger then works with the TTL etcd granted.
	LeaseTTL time.Duration `toml:"lease_ttl"`
}

// DefaultConfig returns the defaults of the keys that have one.
func DefaultConfig() Config {
	return Config{Role: RoleStandby, LeaseTTL: DefaultLeaseTTL}
}

// Enabled reports whether a [cluster] section is configured at all.
func (c Config) Enabled() bool {
	return len(c.Etcd) > 0 || c.Name != "" || c.Member != "" || len(c.Standbys) > 0
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate checks every key; each error is one line that names the key,
// the bad value and what would be accepted.
func (c Config) Validate() error {
	if len(c.Etcd) == 0 {
		return fmt.Errorf("cluster.etcd is empty: list the etcd client URLs, like etcd = [\"https://10.0.0.1:2379\", \"https://10.0.0.2:2379\", \"https://10.0.0.3:2379\"]")
	}
	if _, _, err := c.endpoints(); err != nil {
		return err
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("cluster.name = %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Name)
	}
	if !nameRE.MatchString(c.Member) {
		return fmt.Errorf("cluster.member = %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", c.Member)
	}
	if err := c.validateMembers(); err != nil {
		return err
	}
	ttl := c.ttl()
	if ttl < time.Second || ttl > time.Minute || ttl%time.Second != 0 {
		return fmt.Errorf("cluster.lease_ttl = %s: want whole seconds from 1s to 60s (etcd's leases count in seconds)", c.LeaseTTL)
	}
	_, _, err := c.TLSConfig()
	return err
}

func (c Config) validateMembers() error {
	switch c.role() {
	case RoleStandby, RoleDR:
	default:
		return fmt.Errorf("cluster.role = %q: want standby or dr", c.Role)
	}
	if len(c.Standbys) == 0 {
		return fmt.Errorf("cluster.standbys is empty: name every standby member, like standbys = [\"db2\", \"db3\", \"db4\"]")
	}
	seen := map[string]bool{}
	for _, m := range c.Standbys {
		if !nameRE.MatchString(m) {
			return fmt.Errorf("cluster.standbys: %q is not a member name (1-64 letters, digits, '.', '_' or '-')", m)
		}
		if seen[m] {
			return fmt.Errorf("cluster.standbys names %q twice", m)
		}
		seen[m] = true
	}
	switch r := c.role(); {
	case r == RoleStandby && !seen[c.Member]:
		return fmt.Errorf("cluster.member = %q is not in cluster.standbys %q: add it, or set cluster.role = \"dr\"", c.Member, c.Standbys)
	case r == RoleDR && seen[c.Member]:
		return fmt.Errorf("cluster.member = %q has role dr but is in cluster.standbys: a DR member never counts in the quorum; remove it from the list", c.Member)
	}
	n, majority := len(c.Standbys), len(c.Standbys)/2+1
	if q := c.AckQuorum; q != 0 && (q < majority || q > n) {
		return fmt.Errorf("cluster.ack_quorum = %d with %d standbys: want %d to %d (at least a majority, so that any majority read at failover holds every OK'd commit)", q, n, majority, n)
	}
	return nil
}

func (c Config) role() Role {
	if c.Role == "" {
		return RoleStandby
	}
	return c.Role
}

func (c Config) ttl() time.Duration {
	if c.LeaseTTL == 0 {
		return DefaultLeaseTTL
	}
	return c.LeaseTTL
}

// Quorum is the number of standby members that must hold a transaction
// fsynced before it is acknowledged: ack_quorum, or a majority of Standbys.
func (c Config) Quorum() int {
	if c.AckQuorum != 0 {
		return c.AckQuorum
	}
	return len(c.Standbys)/2 + 1
}

// Prefix is the etcd key prefix of this cluster; the acknowledger election
// is under Prefix()+"acknowledger/". Nothing but the agents may write there.
func (c Config) Prefix() string { return "/hotstandby/" + c.Name + "/" }

// endpoints parses Etcd: the endpoints as clientv3 wants them (host:port
// for http, the URL for https), whether they are https, and the first
// non-loopback host ("" when all are loopback).
func (c Config) endpoints() (eps []string, secure bool, err error) {
	seen := map[string]bool{}
	for i, raw := range c.Etcd {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
			return nil, false, fmt.Errorf("cluster.etcd[%d] = %q: want http://host:port or https://host:port", i, raw)
		}
		if u.Port() == "" {
			return nil, false, fmt.Errorf("cluster.etcd[%d] = %q has no port: etcd's client port is usually 2379", i, raw)
		}
		if i > 0 && (u.Scheme == "https") != secure {
			return nil, false, fmt.Errorf("cluster.etcd mixes http:// and https:// (%q): use one scheme for every endpoint", raw)
		}
		secure = u.Scheme == "https"
		ep := u.Scheme + "://" + u.Host
		if seen[ep] {
			return nil, false, fmt.Errorf("cluster.etcd lists %q twice", raw)
		}
		seen[ep] = true
		eps = append(eps, ep)
	}
	return eps, secure, nil
}

// TLSConfig is the client TLS config for etcd: nil for http:// endpoints.
// warning, when not empty, is a line for the log: the setup works but is
// weaker than a reader might assume (https without ca_file to a host that is
// not loopback: encrypted, not verified).
// http:// to a host that is not loopback is refused unless tls = "off" says
// so: the quorum's traffic never crosses a network in clear text by
// accident.
func (c Config) TLSConfig() (tc *tls.Config, warning string, err error) {
	eps, secure, err := c.endpoints()
	if err != nil {
		return nil, "", err
	}
	u, _ := url.Parse(eps[0])
	if !secure {
		if c.Level != "" && c.Level != string(tlsconf.Off) {
			return nil, "", fmt.Errorf("cluster.tls = %q but cluster.etcd uses http://: use https:// endpoints, or remove cluster.tls", c.Level)
		}
		if c.Level == "" {
			for _, ep := range eps {
				pu, _ := url.Parse(ep)
				if !tlsconf.IsLoopback(pu.Hostname()) {
					return nil, "", fmt.Errorf("cluster.etcd %q is plain http to a host that is not loopback: use https:// (with cluster.ca_file), or set cluster.tls = \"off\" to accept clear text", ep)
				}
			}
		}
		if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" {
			return nil, "", fmt.Errorf("cluster.ca_file, cert_file or key_file is set but cluster.etcd uses http://: use https:// endpoints")
		}
		return nil, "", nil
	}
	if c.Level == string(tlsconf.Off) {
		return nil, "", fmt.Errorf("cluster.tls = \"off\" but cluster.etcd uses https://: use http:// endpoints or choose a TLS level")
	}
	host := u.Hostname()
	for _, ep := range eps {
		if pu, _ := url.Parse(ep); !tlsconf.IsLoopback(pu.Hostname()) {
			host = pu.Hostname()
			break
		}
	}
	cl, err := tlsconf.New("cluster", host, c.Settings)
	if err != nil {
		return nil, "", err
	}
	tc = cl.Config(nil)
	// gRPC sets tls.Config.ServerName to each endpoint's host, whatever it
	// held: verify-full then checks each endpoint's own host. A configured
	// server_name is checked here instead, on the verified chain.
	tc.ServerName = ""
	if cl.Mode == tlsconf.VerifyFull && c.ServerName != "" {
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = verifyName(tc.RootCAs, c.ServerName)
	}
	return tc, cl.Warning, nil
}

// verifyName checks the server's chain against roots and its certificate
// against name (not the host dialed).
func verifyName(roots *x509.CertPool, name string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name})
		if err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
}
