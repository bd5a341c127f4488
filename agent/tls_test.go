package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// tlsCerts are the certificates of one TLS test, made with crypto/x509.
type tlsCerts struct {
	ca, other *harness.CA       // the servers' CA and an unrelated one
	master    harness.CertFiles // 127.0.0.1 and localhost, signed by ca
	standby   harness.CertFiles // the same names, signed by ca
	expired   harness.CertFiles // 127.0.0.1, expired yesterday
}

func newTLSCerts(t *testing.T) tlsCerts {
	dir := t.TempDir()
	c := tlsCerts{ca: harness.NewCA(t, dir, "ca"), other: harness.NewCA(t, dir, "other-ca")}
	c.master = c.ca.LocalServer(t, "master")
	c.standby = c.ca.LocalServer(t, "standby")
	c.expired = c.ca.Issue(t, harness.CertSpec{Name: "expired", IPs: []string{"127.0.0.1"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	return c
}

// newTLSEnv is newEnv with a master that has a certificate and refuses
// plain TCP (require_secure_transport=ON), and a replication user created
// REQUIRE SSL: a connection without TLS cannot even log in. The master runs
// with performance_schema so that the test can read each connection's
// transport from the server's side.
func newTLSEnv(t *testing.T, cert harness.CertFiles, ca string) *testEnv {
	t.Helper()
	needServers(t)
	dir := t.TempDir()
	ctx := context.Background()
	master, err := sandbox.Start(ctx, sandbox.Config{
		Dir: filepath.Join(dir, "m"), ServerID: 1, Master: true, Log: t.Logf,
		TLS:   &sandbox.TLSConfig{CA: ca, Cert: cert.Cert, Key: cert.Key, RequireSecureTransport: true},
		Extra: []string{"rpl_semi_sync_master_timeout=10000", "performance_schema=ON"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Stop(context.Background()) })
	e := &testEnv{t: t, master: master, dir: dir, password: "pw-" + harness.RandHex(12)}
	if err := master.CreateUser(ctx, "repl", e.password, "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN, SELECT"); err != nil {
		t.Fatal(err)
	}
	e.exec("SET SESSION sql_log_bin=0; ALTER USER 'repl'@'127.0.0.1' REQUIRE SSL; ALTER USER 'repl'@'localhost' REQUIRE SSL; SET SESSION sql_log_bin=1")
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=100")
	e.exec("CREATE DATABASE IF NOT EXISTS test")
	e.exec("CREATE TABLE test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, payload VARCHAR(200)) ENGINE=InnoDB")
	e.exec("CREATE TABLE test.nudge (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB")
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=10000")
	e.writeConfig("")
	return e
}

// setSection inserts TOML lines at the top of [section] in the config file.
func (e *testEnv) setSection(section string, lines ...string) {
	e.t.Helper()
	cfg := readFile(e.t, e.cfgPath)
	head := "[" + section + "]\n"
	if !strings.Contains(cfg, head) {
		e.t.Fatalf("config has no %s", head)
	}
	writeFile(e.t, e.cfgPath, strings.Replace(cfg, head, head+strings.Join(lines, "\n")+"\n", 1))
}

// withTLSStandby starts a standby that, like the master, refuses plain TCP
// and has its applier user REQUIRE SSL, and adds a [standby] section with
// tls = "verify-full".
func (e *testEnv) withTLSStandby(c tlsCerts) *sandbox.Server {
	e.t.Helper()
	ctx := context.Background()
	standby, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(e.dir, "s"), ServerID: 2, Log: e.t.Logf, Extra: []string{"performance_schema=ON"},
		TLS: &sandbox.TLSConfig{CA: c.ca.File, Cert: c.standby.Cert, Key: c.standby.Key, RequireSecureTransport: true}})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { standby.Stop(context.Background()) })
	if err := standby.CreateUser(ctx, "applier", e.password, "ALL PRIVILEGES"); err != nil {
		e.t.Fatal(err)
	}
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin=0; ALTER USER 'applier'@'127.0.0.1' REQUIRE SSL; ALTER USER 'applier'@'localhost' REQUIRE SSL; SET SESSION sql_log_bin=1"); err != nil {
		e.t.Fatal(err)
	}
	cfg := strings.Replace(readFile(e.t, e.cfgPath), `start = "current"`, `start = "file:mysql-bin.000001:4"`, 1)
	cfg += fmt.Sprintf(`
[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q
tls = "verify-full"
ca_file = %q
`, standby.Port(), filepath.Join(e.dir, "master.pw"), c.ca.File)
	writeFile(e.t, e.cfgPath, cfg)
	return standby
}

// connectionTypes returns, from the server's performance_schema, the
// transport (TCP/IP, SSL/TLS, Socket) of every connection of user.
func connectionTypes(t *testing.T, s *sandbox.Server, user string) []string {
	t.Helper()
	rows, err := s.DB().Query("SELECT CONCAT(PROCESSLIST_ID, ' ', IFNULL(PROCESSLIST_COMMAND, ''), ' ', IFNULL(CONNECTION_TYPE, 'NULL')) FROM performance_schema.threads WHERE PROCESSLIST_USER = ? AND PROCESSLIST_ID IS NOT NULL ORDER BY PROCESSLIST_ID", user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestTLSVerifyFull: against a master and a standby that refuse plain TCP
// and whose users are REQUIRE SSL, the agent streams, ACKs (semi-sync) and
// applies with tls = "verify-full"; the master's performance_schema shows
// every one of the agent's connections as SSL/TLS, and status says for each
// connection that it is encrypted and the certificate verified.
func TestTLSVerifyFull(t *testing.T) {
	c := newTLSCerts(t)
	e := newTLSEnv(t, c.master, c.ca.File)
	e.setSection("master", `tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.ca.File))
	standby := e.withTLSStandby(c)
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	yes0, no0 := e.status("Rpl_semi_sync_master_yes_tx"), e.status("Rpl_semi_sync_master_no_tx")
	for i := range 50 {
		e.exec("INSERT INTO test.t (c, payload) VALUES (?, REPEAT('x', 150))", i)
	}
	if yes, no := e.status("Rpl_semi_sync_master_yes_tx")-yes0, e.status("Rpl_semi_sync_master_no_tx")-no0; yes != 50 || no != 0 {
		t.Fatalf("yes_tx +%d, no_tx +%d; want +50 (every commit ACKed over TLS) and +0", yes, no)
	}
	e.waitApplied(standby, 60*time.Second)
	if m, s := tableRows(t, e.master, "test.t", "id"), tableRows(t, standby, "test.t", "id"); !reflect.DeepEqual(m, s) || len(m) != 50 {
		t.Fatalf("test.t: master %d rows, standby %d rows, equal %v", len(m), len(s), reflect.DeepEqual(m, s))
	}

	// Every kind of connection reports TLS once it has connected.
	want := []string{"master dump", "master monitor", "master probe", "standby applier"}
	harness.WaitFor(t, "every connection to report TLS", 30*time.Second, func() bool {
		seen := map[string]status.TLSReport{}
		for _, r := range p.a.liveReport().TLS {
			seen[r.Connection] = r
		}
		for _, w := range want {
			if r := seen[w]; !r.Seen {
				return false
			}
		}
		return true
	})
	rep := p.a.liveReport()
	for _, r := range rep.TLS {
		if !r.Seen {
			continue
		}
		if !r.Encrypted || !r.Verified || r.Mode != "verify-full" || r.Version == "" || r.Cipher == "" || r.NotAfter == nil || r.ExpiresSoon {
			t.Errorf("%s: %+v; want encrypted, verified, verify-full, a version, a cipher, an expiry far away", r.Connection, r)
		}
	}
	var text strings.Builder
	rep.WriteText(&text, status.TextOptions{Now: time.Now()})
	if !strings.Contains(text.String(), "master dump: encrypted, TLS 1.3") || !strings.Contains(text.String(), "certificate verified") {
		t.Errorf("status text does not say the dump connection is encrypted and verified:\n%s", text.String())
	}
	// --check has nothing to say about TLS (it is OK once the monitor
	// has proven semi-sync, every 2 s).
	harness.WaitFor(t, "status --check to be OK", 30*time.Second, func() bool {
		code, _ := p.a.liveReport().Check(status.DefaultCheckThresholds(), time.Now())
		return code == status.CheckOK
	})

	// The server's own view: every connection of the agent's user is SSL/TLS.
	types := connectionTypes(t, e.master, "repl")
	if len(types) < 3 {
		t.Fatalf("master has %d connections of repl (%v); want the dump, the monitor and the probe", len(types), types)
	}
	for _, ct := range types {
		if !strings.HasSuffix(ct, " SSL/TLS") {
			t.Errorf("a connection of the agent on the master is not SSL/TLS: %s (all: %v)", ct, types)
		}
	}
	if st := connectionTypes(t, standby, "applier"); len(st) == 0 || !strings.HasSuffix(st[0], " SSL/TLS") {
		t.Errorf("applier connections on the standby: %v; want SSL/TLS", st)
	}
	// verify opens its own connections to both servers from another
	// process: with users REQUIRE SSL it can only succeed over TLS.
	out, err := exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("verify over TLS: %v\n%s", err, out)
	}
	assertNoSecret(t, "verify's output", string(out), e.password)
	js, _ := json.Marshal(rep)
	assertNoSecret(t, "status JSON", string(js), e.password)
	assertNoSecret(t, "the log", p.log.String(), e.password)
}

// TestTLSRefusals: a wrong CA, a certificate for another name, an expired
// certificate and tls = "off" against a master that requires TLS each stop
// the agent with one line naming the problem; nothing is streamed and the
// password appears nowhere in the output. An unreadable CA file is a
// configuration error (exit 2) naming the key and the file.
func TestTLSRefusals(t *testing.T) {
	c := newTLSCerts(t)
	good := newTLSEnv(t, c.master, c.ca.File)
	// A user without REQUIRE SSL: only require_secure_transport refuses it.
	if err := good.master.CreateUser(context.Background(), "replplain", good.password, "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      func() *testEnv
		settings []string
		wantCode int
		want     string
		// wrongPassword writes another password into the password file.
		wrongPassword bool
	}{
		{name: "wrong CA", settings: []string{`tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.other.File)},
			wantCode: 1, want: "TLS: the master's certificate was refused: x509: certificate signed by unknown authority"},
		{name: "wrong CA with verify-ca", settings: []string{`tls = "verify-ca"`, fmt.Sprintf("ca_file = %q", c.other.File)},
			wantCode: 1, want: "TLS: the master's certificate was refused: x509: certificate signed by unknown authority"},
		{name: "wrong server name", settings: []string{`tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.ca.File), `server_name = "db9.example.com"`},
			wantCode: 1, want: "TLS: the master's certificate was refused: x509: certificate is valid for localhost, not db9.example.com"},
		{name: "expired certificate", env: func() *testEnv { return newTLSEnv(t, c.expired, c.ca.File) },
			settings: []string{`tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.ca.File)},
			wantCode: 1, want: "TLS: the master's certificate was refused: x509: certificate has expired or is not yet valid"},
		{name: "tls off against a REQUIRE SSL user", settings: []string{`tls = "off"`},
			wantCode: 1, want: "the master requires TLS (require_secure_transport=ON or a user created REQUIRE SSL; MariaDB answers both with Access denied) and the agent connects without it (tls = \"off\"): set tls in the [master] section"},
		{name: "tls off against require_secure_transport", settings: []string{`tls = "off"`, `user = "replplain"`},
			wantCode: 1, want: "the master requires TLS (require_secure_transport=ON or a user created REQUIRE SSL; MariaDB answers both with Access denied) and the agent connects without it (tls = \"off\"): set tls in the [master] section"},
		{name: "wrong password is not called a TLS problem", settings: []string{`tls = "off"`}, wrongPassword: true,
			wantCode: 1, want: "Access denied for user 'repl'@'127.0.0.1' (using password: YES)"},
		{name: "required against a master without TLS", env: func() *testEnv { return newEnv(t) }, settings: []string{`tls = "required"`},
			wantCode: 1, want: "the master offers no TLS (no ssl_cert/ssl_key) and the agent requires it: configure TLS on the master or lower tls in the [master] section"},
		{name: "CA file unreadable", settings: []string{`tls = "verify-full"`, `ca_file = "/nonexistent/ca.pem"`},
			wantCode: 2, want: "master.ca_file /nonexistent/ca.pem: cannot be read: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := good
			if tt.env != nil {
				e = tt.env()
			}
			e.t = t
			e.writeConfig("")
			e.setSection("master", tt.settings...)
			if strings.Contains(strings.Join(tt.settings, "\n"), "user = ") {
				writeFile(t, e.cfgPath, strings.Replace(readFile(t, e.cfgPath), `user = "repl"`+"\n", "", 1))
			}
			if tt.wrongPassword {
				writeFile(t, filepath.Join(e.dir, "master.pw"), "not-"+e.password+"\n")
			}
			os.RemoveAll(filepath.Join(e.dir, "agent"))
			out, code := e.runToExit(60 * time.Second)
			if code != tt.wantCode || !strings.Contains(lastLine(out), tt.want) {
				t.Fatalf("exit %d, last line %q; want exit %d and a line with %q\n%s", code, lastLine(out), tt.wantCode, tt.want, out)
			}
			assertNoSecret(t, "the agent's output", out, e.password)
			if tt.wrongPassword && strings.Contains(out, "requires TLS") {
				t.Errorf("a wrong password is reported as a TLS problem: %s", lastLine(out))
			}
			// Nothing streamed: no relay segment, nothing received.
			if segs, _ := relay.ListSegments(filepath.Join(e.dir, "agent", "relay")); len(segs) != 0 {
				t.Errorf("%d relay segments after a refused connection", len(segs))
			}
			if n := e.status("Rpl_semi_sync_master_clients"); n != 0 {
				t.Errorf("the master counts %d semi-sync replicas after the refusal", n)
			}
		})
	}
}

// TestTLSCertificateExpiresSoon: a master certificate that expires within 14
// days is named by status and makes `status --check` WARN.
func TestTLSCertificateExpiresSoon(t *testing.T) {
	c := newTLSCerts(t)
	soon := c.ca.Issue(t, harness.CertSpec{Name: "soon", IPs: []string{"127.0.0.1"}, DNSNames: []string{"localhost"},
		NotAfter: time.Now().Add(3 * 24 * time.Hour)})
	e := newTLSEnv(t, soon, c.ca.File)
	e.setSection("master", `tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.ca.File))
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	var line string
	harness.WaitFor(t, "status --check to warn about the certificate", 30*time.Second, func() bool {
		var code int
		code, line = p.a.liveReport().Check(status.DefaultCheckThresholds(), time.Now())
		return code == status.CheckWarning && strings.Contains(line, "the master dump server's certificate (CN=soon) expires")
	})
	var text strings.Builder
	p.a.liveReport().WriteText(&text, status.TextOptions{Now: time.Now()})
	if !strings.Contains(text.String(), "(SOON)") {
		t.Errorf("status text does not flag the certificate:\n%s", text.String())
	}
}

// TestTLSConfigKeys: the TLS keys of [master] and [standby] load, relative
// files are relative to the config file, and bad values are one line naming
// the key. No server needed.
func TestTLSConfigKeys(t *testing.T) {
	dir := t.TempDir()
	ca := harness.NewCA(t, dir, "ca")
	base := fmt.Sprintf("data_dir = %q\nserver_id = 9\n[master]\nuser = \"repl\"\nhost = %%q\n%%s\n[standby]\nhost = \"127.0.0.1\"\nuser = \"a\"\n%%s\n", filepath.Join(dir, "d"))
	tests := []struct {
		name, host, master, standby string
		wantMaster, wantStandby     string // modes of the master dump and standby applier rows
		wantErr                     string
	}{
		{name: "defaults on loopback", host: "127.0.0.1", wantMaster: "preferred", wantStandby: "preferred"},
		{name: "remote master with relative CA", host: "db1.example.com", master: `ca_file = "ca.pem"`, wantMaster: "verify-full", wantStandby: "preferred"},
		{name: "remote master without CA", host: "10.1.2.3", wantMaster: "required", wantStandby: "preferred"},
		{name: "standby verify-ca", host: "127.0.0.1", standby: `tls = "verify-ca"` + "\n" + `ca_file = "ca.pem"`, wantMaster: "preferred", wantStandby: "verify-ca"},
		{name: "bad level", host: "127.0.0.1", master: `tls = "on"`, wantErr: `master.tls = "on": want off, preferred, required, verify-ca or verify-full`},
		{name: "standby CA missing", host: "127.0.0.1", standby: `tls = "verify-full"` + "\n" + `ca_file = "missing.pem"`, wantErr: "standby.ca_file " + filepath.Join(dir, "missing.pem") + ": cannot be read"},
		{name: "unknown key", host: "127.0.0.1", master: `tls_mode = "off"`, wantErr: "unknown key master.tls_mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "hs.toml")
			writeFile(t, path, fmt.Sprintf(base, tt.host, tt.master, tt.standby))
			cfg, err := LoadConfig(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v, want one line with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			modes := map[string]string{}
			for _, r := range cfg.TLSReport() {
				modes[r.Connection] = r.Mode
			}
			if modes["master dump"] != tt.wantMaster || modes["standby applier"] != tt.wantStandby {
				t.Errorf("modes %v; want master %s, standby %s", modes, tt.wantMaster, tt.wantStandby)
			}
			if tt.wantMaster == "required" && len(cfg.TLSWarnings()) != 1 {
				t.Errorf("warnings %q; want one about the unverified certificate", cfg.TLSWarnings())
			}
			if dsn := cfg.MasterDSN(); tt.wantMaster != "off" && !strings.Contains(dsn, "tls=hotstandby-") {
				t.Errorf("master DSN has no TLS config: the verify and fence connections would be plain")
			}
		})
	}
	_ = ca
}

// TestTLSCheckWarnsPlainRemote: `status --check` warns about a connection to
// another host that is not encrypted, and not about one on loopback.
func TestTLSCheckWarnsPlainRemote(t *testing.T) {
	rep := status.Report{Daemon: "running", Stream: status.StreamReport{State: status.StateStreaming}, TLS: []status.TLSReport{
		{Connection: "master dump", Mode: "off", Seen: true},
		{Connection: "standby applier", Mode: "preferred", Seen: true, Loopback: true},
	}}
	code, line := rep.Check(status.DefaultCheckThresholds(), time.Now())
	if code != status.CheckWarning || !strings.Contains(line, "the master dump connection is not encrypted and the server is not on this host") {
		t.Errorf("check %d %q; want a WARNING about the master dump connection", code, line)
	}
	if strings.Contains(line, "standby applier") {
		t.Errorf("a loopback connection is warned about: %q", line)
	}
}

// TestTLSClientCertificate: a replication user created REQUIRE X509 is
// refused without a client certificate and streams with cert_file/key_file.
func TestTLSClientCertificate(t *testing.T) {
	c := newTLSCerts(t)
	client := c.ca.Issue(t, harness.CertSpec{Name: "agent-client", Client: true})
	e := newTLSEnv(t, c.master, c.ca.File)
	e.exec("SET SESSION sql_log_bin=0; ALTER USER 'repl'@'127.0.0.1' REQUIRE X509; ALTER USER 'repl'@'localhost' REQUIRE X509; SET SESSION sql_log_bin=1")
	e.setSection("master", `tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.ca.File))
	out, code := e.runToExit(60 * time.Second)
	if code != 1 || !strings.Contains(lastLine(out), "Access denied for user 'repl'") {
		t.Fatalf("without a client certificate: exit %d, last line %q; want exit 1 and access denied", code, lastLine(out))
	}
	assertNoSecret(t, "the agent's output", out, e.password)
	e.writeConfig("")
	e.setSection("master", `tls = "verify-full"`, fmt.Sprintf("ca_file = %q", c.ca.File),
		fmt.Sprintf("cert_file = %q", client.Cert), fmt.Sprintf("key_file = %q", client.Key))
	os.RemoveAll(filepath.Join(e.dir, "agent"))
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.waitCaughtUp(p.a.liveReport)
}
