package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A Net is a private network for one test: network namespaces ("hosts")
// whose veth interfaces are joined by a bridge that lives in a namespace of
// its own (the "switch"), so nothing of it touches the machine's own network
// namespace, its interfaces or its firewall. Every host gets an address in a
// /24 of 10.0.0.0/8 chosen at random per Net, and its loopback up. Traffic
// between the hosts stays inside the namespaces; several Nets (of tests
// running at the same time) do not see one another even when their subnets
// happen to be equal.
//
// Namespace names are hst-PID-RAND-LABEL: NewNet deletes namespaces left by
// test processes that no longer exist (a test binary killed before its
// cleanup), and the test's cleanup deletes its own, after the processes
// started inside them were killed (cleanups run last-registered first).
type Net struct {
	t      testing.TB
	prefix string // hst-PID-RAND
	subnet string // "10.A.B"
	sw     string // the switch namespace
	hosts  []*Host
}

// A Host is one network namespace of a Net with one interface (eth0) on the
// Net's bridge.
type Host struct {
	// Name is the namespace's name (ip netns exec Name ...).
	Name string
	// Addr is the host's address on the Net, without the prefix length.
	Addr string
	net  *Net
}

// NeedNetns skips the test under -short and fails it with what to install
// when it cannot create network namespaces: root, iproute2, and each of
// the extra programs named (keepalived, iptables).
func NeedNetns(t testing.TB, programs ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Fatal("this test creates network namespaces and must run as root (CI runs it as root)")
	}
	want := map[string]string{"ip": "iproute2", "keepalived": "keepalived", "iptables": "iptables"}
	for _, p := range append([]string{"ip"}, programs...) {
		if _, err := exec.LookPath(p); err != nil {
			pkg := want[p]
			if pkg == "" {
				pkg = p
			}
			t.Fatalf("this test needs %s: apt-get install -y %s (.ci/run installs it)", p, pkg)
		}
	}
}

// NewNet creates the switch namespace and its bridge. Hosts are added with
// AddHost. Everything is deleted when the test ends.
func NewNet(t testing.TB) *Net {
	t.Helper()
	NeedNetns(t)
	removeStaleNamespaces(t)
	n := &Net{
		t:      t,
		prefix: fmt.Sprintf("hst-%d-%s", os.Getpid(), RandHex(3)),
		subnet: fmt.Sprintf("10.%d.%d", 200+rand.IntN(50), rand.IntN(250)),
	}
	n.sw = n.prefix + "-sw"
	t.Cleanup(n.remove)
	n.ip("netns", "add", n.sw)
	n.ip("-n", n.sw, "link", "add", "br0", "type", "bridge")
	n.ip("-n", n.sw, "link", "set", "br0", "up")
	return n
}

// AddHost creates a namespace named for label, a veth pair with one end
// (eth0, address Subnet.(number of hosts + 1)/24) in it and the other on the
// bridge, and brings both and the host's loopback up.
func (n *Net) AddHost(label string) *Host {
	n.t.Helper()
	h := &Host{Name: n.prefix + "-" + label, Addr: fmt.Sprintf("%s.%d", n.subnet, len(n.hosts)+1), net: n}
	port := fmt.Sprintf("p%d", len(n.hosts))
	n.ip("netns", "add", h.Name)
	n.hosts = append(n.hosts, h)
	n.ip("-n", n.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.Name)
	n.ip("-n", n.sw, "link", "set", port, "master", "br0", "up")
	n.ip("-n", h.Name, "addr", "add", h.Addr+"/24", "dev", "eth0")
	n.ip("-n", h.Name, "link", "set", "eth0", "up")
	n.ip("-n", h.Name, "link", "set", "lo", "up")
	return h
}

// Addr returns the address Subnet.last on the Net (a VIP, say), which no
// host has unless a test gives it one.
func (n *Net) Addr(last int) string { return fmt.Sprintf("%s.%d", n.subnet, last) }

func (n *Net) ip(args ...string) {
	n.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// remove deletes the hosts' namespaces and the switch (their interfaces go
// with them).
func (n *Net) remove() {
	for _, h := range n.hosts {
		if out, err := exec.Command("ip", "netns", "del", h.Name).CombinedOutput(); err != nil {
			n.t.Logf("ip netns del %s: %v %s", h.Name, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "del", n.sw).CombinedOutput(); err != nil {
		n.t.Logf("ip netns del %s: %v %s", n.sw, err, out)
	}
}

// removeStaleNamespaces deletes hst-PID-* namespaces whose test process is
// gone.
func removeStaleNamespaces(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, "hst-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if err := exec.Command("ip", "netns", "del", name).Run(); err == nil {
			t.Logf("deleted the namespace %s of an ended test process", name)
		}
	}
}

// Wrapper is the command prefix that runs a program inside the host.
func (h *Host) Wrapper() []string { return []string{"ip", "netns", "exec", h.Name} }

// Command returns a command that runs inside the host.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Run runs a command inside the host and returns its combined output; a
// non-zero exit fails the test.
func (h *Host) Run(name string, args ...string) string {
	h.net.t.Helper()
	out, err := h.Command(name, args...).CombinedOutput()
	if err != nil {
		h.net.t.Fatalf("in %s: %s %s: %v\n%s", h.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Start runs bin inside the host as a Process (see Start); ip netns exec
// execs bin, so the Process's pid is bin's.
func (h *Host) Start(t testing.TB, bin string, args []string, logPath string, env []string, onStuck func(string)) *Process {
	t.Helper()
	w := h.Wrapper()
	return Start(t, w[0], append(append(w[1:], bin), args...), logPath, env, onStuck)
}

// HasAddr reports whether one of the host's interfaces holds ip.
func (h *Host) HasAddr(ip string) (bool, error) {
	out, err := exec.Command("ip", "-n", h.Name, "-o", "-4", "addr", "show").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ip -n %s addr show: %v %s", h.Name, err, out)
	}
	return strings.Contains(string(out), " "+ip+"/"), nil
}

// DialContext opens a connection from inside the host: the socket is created
// on an OS thread that has entered the host's network namespace, and it
// stays in that namespace after the thread returns to its own. It fits
// mysql.Config.DialFunc and http.Transport.DialContext. addr must hold an IP
// address, not a name (no resolver runs inside the namespace).
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := h.dialInside(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func (h *Host) dialInside(ctx context.Context, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer own.Close()
	target, err := os.Open("/run/netns/" + h.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter the network namespace %s: %w", h.Name, err)
	}
	var d net.Dialer
	c, dialErr := d.DialContext(ctx, network, addr)
	if err := setns(own); err != nil {
		// The thread stays locked and ends with this goroutine: no other
		// goroutine ever runs in the wrong namespace.
		if c != nil {
			c.Close()
		}
		return nil, fmt.Errorf("leave the network namespace %s: %w", h.Name, err)
	}
	runtime.UnlockOSThread()
	return c, dialErr
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// KillAll sends SIGKILL to every process inside the host (ip netns pids):
// the whole host's software dies at once, as in a crash, with no process
// getting the chance to clean up after another (keepalived's VRRP child,
// for one, would otherwise remove the VIP and send a priority-0 advert when
// its parent dies). The processes' own owners reap them.
func (h *Host) KillAll() error {
	out, err := exec.Command("ip", "netns", "pids", h.Name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", h.Name, err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill -9 %d in %s: %w", pid, h.Name, err)
		}
	}
	return nil
}
