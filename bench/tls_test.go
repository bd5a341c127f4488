package bench

import (
	"fmt"
	"os"
	"testing"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// benchTLS is the TLS of a run with HOTSTANDBY_BENCH_TLS=1: the master gets
// a certificate for 127.0.0.1 made in the test, and every reader (the agent
// with tls = "verify-full", mariadb-binlog with --ssl-verify-server-cert, the
// native replica with MASTER_SSL=1 and MASTER_SSL_VERIFY_SERVER_CERT=1)
// connects over TLS and checks it. A nil *benchTLS is plain text, for every
// method.
type benchTLS struct {
	ca   string
	cert harness.CertFiles
}

// newBenchTLS makes the certificates under dir when HOTSTANDBY_BENCH_TLS=1.
func newBenchTLS(t *testing.T, dir string) *benchTLS {
	t.Helper()
	if os.Getenv("HOTSTANDBY_BENCH_TLS") != "1" {
		return nil
	}
	ca := harness.NewCA(t, dir, "bench-ca")
	return &benchTLS{ca: ca.File, cert: ca.LocalServer(t, "bench-master")}
}

// server is the master's TLS (nil: none).
func (b *benchTLS) server() *sandbox.TLSConfig {
	if b == nil {
		return nil
	}
	return &sandbox.TLSConfig{CA: b.ca, Cert: b.cert.Cert, Key: b.cert.Key}
}

// agentMaster is the agent's [master] TLS keys.
func (b *benchTLS) agentMaster() string {
	if b == nil {
		return ""
	}
	return fmt.Sprintf("tls = \"verify-full\"\nca_file = %q\n", b.ca)
}

// changeMaster is the CHANGE MASTER TO options of the native replica.
func (b *benchTLS) changeMaster() string {
	if b == nil {
		return ""
	}
	return fmt.Sprintf(", MASTER_SSL=1, MASTER_SSL_CA='%s', MASTER_SSL_VERIFY_SERVER_CERT=1", b.ca)
}

// clientArgs are mariadb-binlog's options.
func (b *benchTLS) clientArgs() []string {
	if b == nil {
		return nil
	}
	return []string{"--ssl", "--ssl-ca=" + b.ca, "--ssl-verify-server-cert"}
}

// label names the transport in the printed results.
func (b *benchTLS) label() string {
	if b == nil {
		return "plain TCP"
	}
	return "TLS (agent verify-full, mariadb-binlog --ssl-verify-server-cert, native MASTER_SSL=1 MASTER_SSL_VERIFY_SERVER_CERT=1)"
}
