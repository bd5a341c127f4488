package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlogserver"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// newServeTLSEnv is newServeEnv with the binlog server's listener given a
// certificate for 127.0.0.1 signed by a test CA (returned), and
// require_tls as asked.
func newServeTLSEnv(t *testing.T, requireTLS bool) (*serveEnv, tlsCerts) {
	t.Helper()
	se, _ := serveConfig(t, false)
	certs := newTLSCerts(t)
	// [serve] is the config's last section: its keys go at the end.
	writeFile(t, se.cfgPath, readFile(t, se.cfgPath)+fmt.Sprintf("cert_file = %q\nkey_file = %q\nrequire_tls = %v\n",
		certs.master.Cert, certs.master.Key, requireTLS))
	se.agent = se.startInProcess(ingest.Hooks{})
	se.waitSemiSyncClient()
	return se, certs
}

// sslReplica is newReplica switched to MASTER_SSL=1 with the given CA and
// MASTER_SSL_VERIFY_SERVER_CERT=1 (its first, plain, START SLAVE is
// stopped before the switch).
func (se *serveEnv) sslReplica(name string, serverID uint32, caFile string) *sandbox.Server {
	se.t.Helper()
	r := se.newReplica(name, serverID, se.startGTID)
	se.setReplicaSSL(r, fmt.Sprintf("MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_VERIFY_SERVER_CERT=1", caFile))
	return r
}

// setReplicaSSL stops r's replication, changes its SSL options and starts
// it again.
func (se *serveEnv) setReplicaSSL(r *sandbox.Server, opts string) {
	se.t.Helper()
	ctx := context.Background()
	for _, q := range []string{"STOP SLAVE", "CHANGE MASTER TO " + opts, "START SLAVE"} {
		if err := r.Exec(ctx, q); err != nil {
			se.t.Fatalf("%s: %v", q, err)
		}
	}
}

// waitIORefused waits until r's IO thread reports errno (empty: any) with
// a message containing want, and is not running.
func waitIORefused(t *testing.T, r *sandbox.Server, what, errno, want string) string {
	t.Helper()
	var st map[string]string
	harness.Poll(t, what, 60*time.Second, 50*time.Millisecond, func() (bool, error) {
		var err error
		if st, err = slaveStatusOf(r); err != nil {
			return false, err
		}
		code := st["Last_IO_Errno"]
		return (code == errno || errno == "" && code != "0" && code != "") && st["Slave_IO_Running"] != "Yes" &&
			strings.Contains(st["Last_IO_Error"], want), nil
	})
	return st["Last_IO_Error"]
}

// mariadbBinlogEvents runs mariadb-binlog --read-from-remote-server from
// the agent's start position to the end with the extra options and returns
// the master's event header lines, or the error and stderr.
func (se *serveEnv) mariadbBinlogEvents(port int, user, pw string, opts ...string) ([]string, error) {
	file, pos, _ := strings.Cut(se.startPos, ":")
	args := append([]string{"--read-from-remote-server", "--host=127.0.0.1", "--port=" + strconv.Itoa(port),
		"--user=" + user, "--start-position=" + pos, "--to-last-log"}, opts...)
	cmd := exec.Command("mariadb-binlog", append(args, file)...)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+pw) // not in argv
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%v: %s", err, ee.Stderr)
		}
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "server id 1 ") && !strings.Contains(l, "end_log_pos 0 ") && !strings.Contains(l, "Start: binlog") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// TestServeTLSRequired: with [serve] cert_file, key_file and require_tls,
// a stock MariaDB replica with MASTER_SSL=1 and
// MASTER_SSL_VERIFY_SERVER_CERT=1 against the test CA replicates from the
// agent and ends with the master's rows and GTIDs, and status shows its
// connection encrypted; a replica with MASTER_SSL=0 is refused with access
// denied naming require_tls (and the agent's log says so), and never
// dumps; a replica that trusts another CA refuses the agent's certificate
// (and the agent's log says what to check). mariadb-binlog over TLS with
// --ssl-verify-server-cert reads the same events from the agent as from the
// master, and is refused without TLS. The downstream password is in no log.
func TestServeTLSRequired(t *testing.T) {
	se, certs := newServeTLSEnv(t, true)

	tlsR := se.sslReplica("tls", 31, certs.ca.File)
	plain := se.newReplica("plain", 32, se.startGTID)
	se.setReplicaSSL(plain, "MASTER_SSL=0")
	se.loadN(1000)
	se.exec("FLUSH BINARY LOGS")
	se.loadN(500)
	se.waitReplicaEqual(tlsR, "the TLS replica")

	st, err := slaveStatusOf(tlsR)
	if err != nil {
		t.Fatal(err)
	}
	if st["Master_SSL_Allowed"] != "Yes" || st["Master_SSL_Verify_Server_Cert"] != "Yes" {
		t.Fatalf("the TLS replica: Master_SSL_Allowed %q, Master_SSL_Verify_Server_Cert %q", st["Master_SSL_Allowed"], st["Master_SSL_Verify_Server_Cert"])
	}

	ioErr := waitIORefused(t, plain, "the MASTER_SSL=0 replica to be refused with 1045", "1045", "requires TLS")
	if !strings.Contains(ioErr, "Access denied") || !strings.Contains(ioErr, "serve.require_tls") {
		t.Fatalf("the plain replica's Last_IO_Error does not say access denied and why: %q", ioErr)
	}
	t.Logf("plain replica refused: %s", ioErr)
	if n := tableDigest(t, plain); !strings.HasPrefix(n, "0:") {
		t.Fatalf("the refused plain replica has rows: %s", n)
	}
	harness.WaitFor(t, "the refusal with its reason in the agent's log", 10*time.Second, func() bool {
		for _, line := range strings.Split(se.agent.log.String(), "\n") {
			if strings.Contains(line, "replica connection refused") && strings.Contains(line, "requires TLS") {
				return true
			}
		}
		return false
	})

	// Status: the one dumping replica is the TLS one, encrypted.
	rep := se.agent.a.liveReport()
	if rep.Serve == nil || rep.Serve.TLS != "required" || len(rep.Serve.Replicas) != 1 {
		t.Fatalf("status serve: %+v, want TLS required and the TLS replica only", rep.Serve)
	}
	rr := rep.Serve.Replicas[0]
	if rr.ServerID != 31 || !rr.Encrypted || !strings.HasPrefix(rr.TLSVersion, "TLS 1.") || rr.TLSCipher == "" {
		t.Fatalf("status: served replica %+v, want server_id 31 encrypted with a TLS version and cipher", rr)
	}
	var b bytes.Buffer
	rep.WriteText(&b, status.TextOptions{Now: time.Now()})
	if text := b.String(); !strings.Contains(text, "TLS required") || !strings.Contains(text, "encrypted "+rr.TLSVersion+" "+rr.TLSCipher) {
		t.Fatalf("status text does not show the transport:\n%s", text)
	}
	t.Logf("served replica: %s %s", rr.TLSVersion, rr.TLSCipher)

	// A replica that trusts another CA refuses the agent's certificate.
	wrongCA := se.newReplica("wrongca", 33, se.startGTID)
	se.setReplicaSSL(wrongCA, fmt.Sprintf("MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_VERIFY_SERVER_CERT=1", certs.other.File))
	ioErr = waitIORefused(t, wrongCA, "the replica trusting another CA to refuse the agent's certificate", "", "SSL")
	t.Logf("replica with another CA: %s", ioErr)
	harness.WaitFor(t, "the failed TLS handshake in the agent's log", 10*time.Second, func() bool {
		return strings.Contains(se.agent.log.String(), "replica connection refused: its TLS handshake failed")
	})
	if n := tableDigest(t, wrongCA); !strings.HasPrefix(n, "0:") {
		t.Fatalf("the replica with the wrong CA has rows: %s", n)
	}

	// The TLS replica keeps replicating beside the refused ones.
	se.loadN(300)
	se.waitReplicaEqual(tlsR, "the TLS replica after the refusals")

	// mariadb-binlog over TLS, verifying the certificate, reads the same
	// events from the agent as from the master; without TLS it is refused.
	fromMaster, err := se.mariadbBinlogEvents(se.master.Port(), "repl", se.password)
	if err != nil {
		t.Fatalf("mariadb-binlog from the master: %v", err)
	}
	fromAgent, err := se.mariadbBinlogEvents(se.servePort, "downstream", se.servePW,
		"--ssl", "--ssl-ca="+certs.ca.File, "--ssl-verify-server-cert")
	if err != nil {
		t.Fatalf("mariadb-binlog over TLS from the agent: %v", err)
	}
	if len(fromMaster) < 1800 || strings.Join(fromMaster, "\n") != strings.Join(fromAgent, "\n") {
		t.Fatalf("mariadb-binlog: %d events from the master, %d over TLS from the agent, not the same", len(fromMaster), len(fromAgent))
	}
	if _, err := se.mariadbBinlogEvents(se.servePort, "downstream", se.servePW, "--skip-ssl"); err == nil || !strings.Contains(err.Error(), "requires TLS") {
		t.Fatalf("mariadb-binlog without TLS: got %v, want access denied naming require_tls", err)
	}
	assertNoSecret(t, "the agent's log", se.agent.log.String(), se.servePW)
}

// TestServeTLSOffered: with a certificate and no require_tls, the listener
// offers TLS: a MASTER_SSL=1 replica (verifying the certificate) and a
// plain one both replicate, and status tells them apart.
func TestServeTLSOffered(t *testing.T) {
	se, certs := newServeTLSEnv(t, false)
	tlsR := se.sslReplica("tls", 31, certs.ca.File)
	plain := se.newReplica("plain", 32, se.startGTID)
	se.setReplicaSSL(plain, "MASTER_SSL=0")
	se.loadN(800)
	se.waitReplicaEqual(tlsR, "the TLS replica")
	se.waitReplicaEqual(plain, "the plain replica")
	rep := se.agent.a.liveReport()
	if rep.Serve == nil || rep.Serve.TLS != "offered" || len(rep.Serve.Replicas) != 2 {
		t.Fatalf("status serve: %+v, want TLS offered and two replicas", rep.Serve)
	}
	var b bytes.Buffer
	rep.WriteText(&b, status.TextOptions{Now: time.Now()})
	if text := b.String(); !strings.Contains(text, "TLS offered") || !strings.Contains(text, "unencrypted") || !strings.Contains(text, "encrypted TLS 1.") {
		t.Fatalf("status text does not tell the two transports apart:\n%s", text)
	}
	for _, rr := range rep.Serve.Replicas {
		want := rr.ServerID == 31
		if rr.Encrypted != want || (rr.TLSVersion != "") != want {
			t.Fatalf("status: replica %d encrypted %v (%q), want %v", rr.ServerID, rr.Encrypted, rr.TLSVersion, want)
		}
	}
}

// TestServeTLSConfigErrors: [serve] TLS mistakes are one line naming the
// key (and the file); a good certificate pair loads.
func TestServeTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certs := newTLSCerts(t)
	if err := os.WriteFile(filepath.Join(dir, "serve.pw"), []byte("down-secret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "nope.crt")
	base := "data_dir = \"d\"\nserver_id = 7\n[master]\nuser = \"repl\"\npassword = \"hunter2-secret\"\n" +
		"[serve]\nlisten = \":3307\"\nuser = \"d\"\npassword_file = \"serve.pw\"\n"
	tests := []struct{ name, body, wantErr string }{
		{name: "require without cert", body: "require_tls = true\n",
			wantErr: "serve.require_tls = true needs a certificate: set serve.cert_file and serve.key_file"},
		{name: "cert without key", body: fmt.Sprintf("cert_file = %q\n", certs.master.Cert),
			wantErr: "serve.cert_file and serve.key_file go together"},
		{name: "unreadable cert", body: fmt.Sprintf("cert_file = %q\nkey_file = %q\n", missing, certs.master.Key),
			wantErr: "serve.cert_file " + missing + ": cannot read it: no such file or directory"},
		{name: "unreadable key relative", body: fmt.Sprintf("cert_file = %q\nkey_file = \"nope.key\"\n", certs.master.Cert),
			wantErr: "serve.key_file " + filepath.Join(dir, "nope.key") + ": cannot read it"},
		{name: "key of another cert", body: fmt.Sprintf("cert_file = %q\nkey_file = %q\n", certs.master.Cert, certs.standby.Key),
			wantErr: "serve.cert_file " + certs.master.Cert + " / key_file " + certs.standby.Key},
		{name: "good", body: fmt.Sprintf("cert_file = %q\nkey_file = %q\nrequire_tls = true\n", certs.master.Cert, certs.master.Key)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, fmt.Sprintf("c%d.toml", i))
			if err := os.WriteFile(p, []byte(base+tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc, err := cfg.serveTLS()
				if err != nil || tc == nil || len(tc.Certificates) != 1 || !cfg.Serve.RequireTLS {
					t.Fatalf("the good pair: %v, %v", tc, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("the error is more than one line: %q", err)
			}
			assertNoSecret(t, "a config error", err.Error(), "down-secret-pw")
		})
	}
}

// TestServeCertWarning: a listener certificate that has expired, or
// expires within 14 days, is a warning naming serve.cert_file; a fresh one
// is none.
func TestServeCertWarning(t *testing.T) {
	dir := t.TempDir()
	ca := harness.NewCA(t, dir, "ca")
	now := time.Now()
	for _, tt := range []struct {
		name     string
		notAfter time.Time
		want     string
	}{
		{"fresh", now.Add(365 * 24 * time.Hour), ""},
		{"soon", now.Add(3 * 24 * time.Hour), "expires at"},
		{"expired", now.Add(-time.Hour), "expired at"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := ca.Issue(t, harness.CertSpec{Name: tt.name, IPs: []string{"127.0.0.1"},
				NotBefore: now.Add(-48 * time.Hour), NotAfter: tt.notAfter})
			cfg := Config{Serve: ServeConfig{CertFile: f.Cert, KeyFile: f.Key}}
			tc, err := cfg.serveTLS()
			if err != nil {
				t.Fatal(err)
			}
			got := serveCertWarning(f.Cert, tc, now)
			if tt.want == "" && got != "" || tt.want != "" && (!strings.Contains(got, tt.want) || !strings.Contains(got, "serve.cert_file "+f.Cert)) {
				t.Fatalf("warning %q, want %q", got, tt.want)
			}
		})
	}
}

type zeroSource struct{}

func (zeroSource) Durable() relay.Frontier { return relay.Frontier{} }

// TestServeLoginTimeout: a client that connects to the TLS listener and
// never logs in (nor starts its TLS handshake) is disconnected after the
// login timeout, and the refusal is logged; it holds nothing open.
func TestServeLoginTimeout(t *testing.T) {
	certs := newTLSCerts(t)
	cfg := Config{Serve: ServeConfig{CertFile: certs.master.Cert, KeyFile: certs.master.Key}}
	tc, err := cfg.serveTLS()
	if err != nil {
		t.Fatal(err)
	}
	lb := &harness.SyncBuffer{}
	srv, err := binlogserver.New(binlogserver.Config{Listen: "127.0.0.1:0", User: "d", Password: "pw-" + harness.RandHex(8),
		RelayDir: t.TempDir(), Source: zeroSource{}, ServerID: 9, TLS: tc, RequireTLS: true,
		LoginTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(lb, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The test's own bound, far above the login timeout: the read must
	// end because the agent closed the connection.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	greeting, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the stalled client was not disconnected by the agent: %v", err)
	}
	if len(greeting) == 0 {
		t.Fatal("no handshake greeting before the disconnect")
	}
	harness.WaitFor(t, "the refusal in the log", 10*time.Second, func() bool {
		return strings.Contains(lb.String(), "replica connection refused")
	})
}
