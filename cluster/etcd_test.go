package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/tlsconf"
)

// etcdBin is Debian's etcd-server (3.4); .ci/run installs it.
const etcdBin = "/usr/bin/etcd"

// etcdMember is one etcd process of a test cluster.
type etcdMember struct {
	name      string
	clientURL string
	proc      *harness.Process
	stopped   bool // SIGSTOPped
}

// etcdCluster is a real etcd cluster on 127.0.0.1, one process per member,
// data under t.TempDir(), killed when the test ends.
type etcdCluster struct {
	t       *testing.T
	members []*etcdMember
	tls     *tls.Config // the test clients' TLS (nil: plain http)
}

// etcdTLS makes a cluster serve https with client certificates required:
// its server certificate and the CA that signs the clients'.
type etcdTLS struct {
	ca     *harness.CA
	server harness.CertFiles
	client harness.CertFiles // for the test's own clients
}

// needEtcd skips the test when etcd is not installed.
func needEtcd(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(etcdBin); err != nil {
		t.Skipf("%s is not installed (Debian: apt-get install etcd-server; .ci/run installs it): %v", etcdBin, err)
	}
}

// freePorts returns n distinct free loopback ports (held open together, so
// they differ, then released for etcd to take).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startEtcd starts an n-member cluster and waits until every member serves
// a linearizable read.
func startEtcd(t *testing.T, n int) *etcdCluster { return startEtcdWith(t, n, nil) }

// startEtcdWith is startEtcd, serving https with client certificates when
// sec is not nil.
func startEtcdWith(t *testing.T, n int, sec *etcdTLS) *etcdCluster {
	t.Helper()
	needEtcd(t)
	ports := freePorts(t, 2*n)
	c := &etcdCluster{t: t}
	scheme := "http"
	if sec != nil {
		scheme = "https"
		pool, err := tlsconf.LoadCA(sec.ca.File)
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(sec.client.Cert, sec.client.Key)
		if err != nil {
			t.Fatal(err)
		}
		c.tls = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i, ports[2*i+1]))
	}
	token := "hs-" + harness.RandHex(6)
	for i := range n {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("e%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		m := &etcdMember{name: fmt.Sprintf("e%d", i), clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i])}
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		args := []string{"--name", m.name, "--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", token, "--logger", "zap", "--log-outputs", "stderr"}
		if sec != nil {
			args = append(args, "--cert-file", sec.server.Cert, "--key-file", sec.server.Key,
				"--client-cert-auth", "--trusted-ca-file", sec.ca.File)
		}
		m.proc = harness.Start(t, etcdBin, args, filepath.Join(dir, "etcd.log"), nil, nil)
		c.members = append(c.members, m)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, m := range c.members {
				t.Logf("etcd %s log (tail):\n%s", m.name, m.proc.LogTail(30))
			}
		}
	})
	for _, m := range c.members {
		c.waitHealthy(m)
	}
	return c
}

// client is a test client for the given members (all when none given).
func (c *etcdCluster) client(ms ...*etcdMember) *clientv3.Client {
	c.t.Helper()
	if len(ms) == 0 {
		ms = c.members
	}
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.clientURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, TLS: c.tls, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cli.Close() })
	return cli
}

// waitHealthy waits until m answers a linearizable read (it has a leader
// and a quorum).
func (c *etcdCluster) waitHealthy(m *etcdMember) {
	c.t.Helper()
	cli := c.client(m)
	harness.Poll(c.t, "etcd "+m.name+" to serve a linearizable read", 60*time.Second, 50*time.Millisecond, func() (bool, error) {
		if m.proc.Exited() {
			return false, fmt.Errorf("etcd %s exited: %v\n%s", m.name, m.proc.Err(), m.proc.LogTail(20))
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := cli.Get(ctx, "health")
		return err == nil, nil
	})
}

// leader is the member that is etcd's raft leader now.
func (c *etcdCluster) leader() *etcdMember {
	c.t.Helper()
	var found *etcdMember
	harness.WaitFor(c.t, "an etcd raft leader", 30*time.Second, func() bool {
		for _, m := range c.members {
			if m.proc.Exited() || m.stopped {
				continue
			}
			cli := c.client(m)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.clientURL)
			cancel()
			cli.Close()
			if err == nil && st.Leader != 0 && st.Header.MemberId == st.Leader {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// stop freezes m (SIGSTOP): its sockets stay open and answer nothing, as a
// host that hangs or a partition without resets. cont undoes it.
func (c *etcdCluster) stop(m *etcdMember) {
	c.t.Helper()
	if err := m.proc.Signal(syscall.SIGSTOP); err != nil {
		c.t.Fatal(err)
	}
	m.stopped = true
}

func (c *etcdCluster) cont(m *etcdMember) {
	c.t.Helper()
	if err := m.proc.Signal(syscall.SIGCONT); err != nil {
		c.t.Fatal(err)
	}
	m.stopped = false
}

// clientPrefix is clientv3.WithPrefix (named here to keep imports short).
func clientPrefix() clientv3.OpOption { return clientv3.WithPrefix() }

// st0Key is the member's current election key ("" when it holds no seat).
func (a *Acknowledger) st0Key() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.key
}
