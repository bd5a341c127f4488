package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// Mode is a TLS level.
type Mode string

// The levels, weakest first.
const (
	Off        Mode = "off"
	Preferred  Mode = "preferred"
	Required   Mode = "required"
	VerifyCA   Mode = "verify-ca"
	VerifyFull Mode = "verify-full"
)

// Settings are the TLS keys of one server section. The zero value means the
// defaults described in the package documentation.
type Settings struct {
	Level      string `toml:"tls"`         // off, preferred, required, verify-ca, verify-full; empty: default
	CAFile     string `toml:"ca_file"`     // PEM bundle of the CA(s) that sign the server's certificate
	CertFile   string `toml:"cert_file"`   // client certificate (PEM), with KeyFile
	KeyFile    string `toml:"key_file"`    // client key (PEM), with CertFile
	ServerName string `toml:"server_name"` // name checked by verify-full; default: the host
}

// Client is the resolved TLS setup for one server.
type Client struct {
	Mode Mode
	// ServerName is the name verify-full checks (and the SNI sent).
	ServerName string
	// Warning, when not empty, is a line for the log: the setup works but is
	// weaker than a reader might assume.
	Warning string
	base    *tls.Config // nil for Off
}

// IsLoopback reports whether host is a loopback address or "localhost".
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// New resolves s for a server at host. section ("master", "standby") starts
// every error, which names the key and the file: "master.ca_file
// /etc/ca.pem: no such file or directory".
func New(section, host string, s Settings) (*Client, error) {
	mode, warning, err := resolveMode(section, host, s)
	if err != nil {
		return nil, err
	}
	c := &Client{Mode: mode, ServerName: s.ServerName, Warning: warning}
	if c.ServerName == "" {
		c.ServerName = host
	}
	if mode == Off {
		if s.CAFile != "" || s.CertFile != "" || s.KeyFile != "" {
			return nil, fmt.Errorf("%s.tls = \"off\" but %s.ca_file, cert_file or key_file is set: remove them or choose a TLS level", section, section)
		}
		return c, nil
	}
	c.base = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if s.CAFile != "" {
		if c.base.RootCAs, err = LoadCA(s.CAFile); err != nil {
			return nil, fmt.Errorf("%s.ca_file %w", section, err)
		}
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, fmt.Errorf("%s.cert_file and %s.key_file go together: set both or neither", section, section)
	}
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file %s / key_file %s: %s", section, s.CertFile, s.KeyFile, pathless(err))
		}
		c.base.Certificates = []tls.Certificate{pair}
	}
	// verify-full is crypto/tls's own verification; the others skip it and
	// verify-ca puts the chain check back in VerifyConnection.
	c.base.InsecureSkipVerify = mode != VerifyFull
	return c, nil
}

func resolveMode(section, host string, s Settings) (Mode, string, error) {
	switch m := Mode(s.Level); m {
	case Off, Preferred, Required, VerifyCA, VerifyFull:
		if (m == VerifyCA || m == VerifyFull) && s.CAFile == "" {
			return m, "", fmt.Errorf("%s.tls = %q needs %s.ca_file (the CA that signs the server's certificate)", section, m, section)
		}
		return m, "", nil
	case "":
	default:
		return "", "", fmt.Errorf("%s.tls = %q: want off, preferred, required, verify-ca or verify-full", section, s.Level)
	}
	switch {
	case IsLoopback(host):
		return Preferred, "", nil
	case s.CAFile != "":
		return VerifyFull, "", nil
	}
	return Required, fmt.Sprintf("%s %s is not a loopback address and %s.ca_file is not set: the connection is encrypted (tls = \"required\") but the server's certificate is not verified, so a man in the middle is not detected; set %s.ca_file for verify-full", section, host, section, section), nil
}

// LoadCA reads a PEM bundle. Its errors start with the file name.
func LoadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot be read: %s", file, pathless(err))
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: holds no PEM certificate", file)
	}
	return pool, nil
}

// pathless drops the *os.PathError wrapper, whose text repeats the file.
func pathless(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Enabled reports whether the client starts TLS at all. A nil *Client is
// Off, for every method.
func (c *Client) Enabled() bool { return c != nil && c.Mode != Off }

// Fallback reports whether a server that offers no TLS is spoken to in plain
// text (preferred only).
func (c *Client) Fallback() bool { return c != nil && c.Mode == Preferred }

// Verifies reports whether the server's certificate chain is checked.
func (c *Client) Verifies() bool { return c != nil && (c.Mode == VerifyCA || c.Mode == VerifyFull) }

// Config returns a fresh *tls.Config for one kind of connection that records
// each completed handshake in obs (which may be nil); nil when Mode is Off.
func (c *Client) Config(obs *Observer) *tls.Config {
	if c == nil || c.base == nil {
		return nil
	}
	cfg := c.base.Clone()
	mode, roots := c.Mode, c.base.RootCAs
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if mode == VerifyCA {
			if err := verifyChain(cs, roots); err != nil {
				return err
			}
		}
		obs.record(cs, mode == VerifyCA || mode == VerifyFull)
		return nil
	}
	return cfg
}

// verifyChain checks the server's chain against roots, not its name.
func verifyChain(cs tls.ConnectionState, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// ServerConfig is the config of a TLS listener (the binlog server's) that
// presents the certificate in certFile with its key in keyFile.
func ServerConfig(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("serve.cert_file and serve.key_file go together: set both")
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("serve.cert_file %s / key_file %s: %s", certFile, keyFile, pathless(err))
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}, nil
}
