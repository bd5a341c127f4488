package tlsconf_test

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/tlsconf"
)

func TestDefaultsAndValidation(t *testing.T) {
	dir := t.TempDir()
	ca := harness.NewCA(t, dir, "ca")
	leaf := ca.LocalServer(t, "leaf")
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate\n"), 0o600)
	tests := []struct {
		name     string
		host     string
		s        tlsconf.Settings
		want     tlsconf.Mode
		warn     bool
		wantErr  string
		verifies bool
	}{
		{name: "loopback default", host: "127.0.0.1", want: tlsconf.Preferred},
		{name: "localhost default", host: "localhost", want: tlsconf.Preferred},
		{name: "ipv6 loopback default", host: "::1", want: tlsconf.Preferred},
		{name: "remote with CA", host: "db1.example.com", s: tlsconf.Settings{CAFile: ca.File}, want: tlsconf.VerifyFull, verifies: true},
		{name: "remote without CA", host: "10.0.0.5", want: tlsconf.Required, warn: true},
		{name: "explicit off remote", host: "10.0.0.5", s: tlsconf.Settings{Level: "off"}, want: tlsconf.Off},
		{name: "verify-ca", host: "10.0.0.5", s: tlsconf.Settings{Level: "verify-ca", CAFile: ca.File}, want: tlsconf.VerifyCA, verifies: true},
		{name: "bad level", host: "127.0.0.1", s: tlsconf.Settings{Level: "yes"}, wantErr: `master.tls = "yes": want off, preferred, required, verify-ca or verify-full`},
		{name: "verify-full without CA", host: "127.0.0.1", s: tlsconf.Settings{Level: "verify-full"}, wantErr: `master.tls = "verify-full" needs master.ca_file`},
		{name: "CA missing", host: "127.0.0.1", s: tlsconf.Settings{Level: "verify-full", CAFile: filepath.Join(dir, "nope.pem")}, wantErr: "master.ca_file " + filepath.Join(dir, "nope.pem") + ": cannot be read: no such file or directory"},
		{name: "CA not PEM", host: "127.0.0.1", s: tlsconf.Settings{Level: "verify-full", CAFile: junk}, wantErr: "master.ca_file " + junk + ": holds no PEM certificate"},
		{name: "cert without key", host: "127.0.0.1", s: tlsconf.Settings{CertFile: leaf.Cert}, wantErr: "master.cert_file and master.key_file go together"},
		{name: "cert with wrong key", host: "127.0.0.1", s: tlsconf.Settings{CertFile: leaf.Cert, KeyFile: junk}, wantErr: "master.cert_file " + leaf.Cert + " / key_file " + junk + ": "},
		{name: "off with CA", host: "127.0.0.1", s: tlsconf.Settings{Level: "off", CAFile: ca.File}, wantErr: `master.tls = "off" but`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tlsconf.New("master", tt.host, tt.s)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want prefix %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is more than one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tt.want || (c.Warning != "") != tt.warn || c.Verifies() != tt.verifies {
				t.Errorf("mode %s warning %q verifies %v; want %s warn=%v verifies=%v", c.Mode, c.Warning, c.Verifies(), tt.want, tt.warn, tt.verifies)
			}
			if (c.Config(nil) == nil) != (tt.want == tlsconf.Off) {
				t.Errorf("Config() nil-ness wrong for %s", c.Mode)
			}
		})
	}
}

// serve accepts one TLS connection with the certificate in f and completes
// the handshake.
func serve(t *testing.T, f harness.CertFiles) string {
	t.Helper()
	cfg, err := tlsconf.ServerConfig(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestHandshakes(t *testing.T) {
	dir := t.TempDir()
	ca := harness.NewCA(t, dir, "ca")
	other := harness.NewCA(t, dir, "other")
	good := ca.LocalServer(t, "good")
	wrongName := ca.Issue(t, harness.CertSpec{Name: "wrongname", DNSNames: []string{"db9.example.com"}, IPs: []string{"10.9.9.9"}})
	expired := ca.Issue(t, harness.CertSpec{Name: "expired", IPs: []string{"127.0.0.1"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	soon := ca.Issue(t, harness.CertSpec{Name: "soon", IPs: []string{"127.0.0.1"}, NotAfter: time.Now().Add(3 * 24 * time.Hour)})
	tests := []struct {
		name     string
		cert     harness.CertFiles
		s        tlsconf.Settings
		wantErr  string
		verified bool
		soon     bool
	}{
		{name: "verify-full good", cert: good, s: tlsconf.Settings{Level: "verify-full", CAFile: ca.File}, verified: true},
		{name: "verify-full wrong CA", cert: good, s: tlsconf.Settings{Level: "verify-full", CAFile: other.File}, wantErr: "certificate signed by unknown authority"},
		{name: "verify-full wrong name", cert: wrongName, s: tlsconf.Settings{Level: "verify-full", CAFile: ca.File}, wantErr: "certificate is valid for 10.9.9.9, not 127.0.0.1"},
		{name: "verify-full server_name", cert: wrongName, s: tlsconf.Settings{Level: "verify-full", CAFile: ca.File, ServerName: "db9.example.com"}, verified: true},
		{name: "verify-full expired", cert: expired, s: tlsconf.Settings{Level: "verify-full", CAFile: ca.File}, wantErr: "certificate has expired"},
		{name: "verify-ca ignores the name", cert: wrongName, s: tlsconf.Settings{Level: "verify-ca", CAFile: ca.File}, verified: true},
		{name: "verify-ca wrong CA", cert: good, s: tlsconf.Settings{Level: "verify-ca", CAFile: other.File}, wantErr: "certificate signed by unknown authority"},
		{name: "verify-ca expired", cert: expired, s: tlsconf.Settings{Level: "verify-ca", CAFile: ca.File}, wantErr: "certificate has expired"},
		{name: "required accepts any", cert: expired, s: tlsconf.Settings{Level: "required"}, soon: true}, // expired counts as expiring
		{name: "expires soon", cert: soon, s: tlsconf.Settings{Level: "verify-full", CAFile: ca.File}, verified: true, soon: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.cert)
			host, _, _ := net.SplitHostPort(addr)
			c, err := tlsconf.New("master", host, tt.s)
			if err != nil {
				t.Fatal(err)
			}
			obs := &tlsconf.Observer{}
			conn, err := tls.Dial("tcp", addr, c.Config(obs))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if !obs.Last().At.IsZero() {
					t.Errorf("a refused handshake was recorded: %+v", obs.Last())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			conn.Close()
			o := obs.Last()
			if !o.Encrypted || o.Version == "" || o.Cipher == "" || o.Verified != tt.verified || o.ExpiresSoon(time.Now()) != tt.soon {
				t.Errorf("observation %+v, want verified=%v soon=%v", o, tt.verified, tt.soon)
			}
		})
	}
}

func TestServerConfigErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlsconf.ServerConfig(filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")); err == nil ||
		!strings.Contains(err.Error(), "serve.cert_file "+filepath.Join(dir, "a.crt")) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("err = %v", err)
	}
	if _, err := tlsconf.ServerConfig("", "x"); err == nil {
		t.Error("a key without a certificate was accepted")
	}
}
