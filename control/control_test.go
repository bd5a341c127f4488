package control

import (
	"bytes"
	"context"
	"encoding/json"
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
)

// nobody is the unprivileged user the cross-user tests run as.
const nobody = 65534

// serve starts a server at dir/control.sock whose "whoami" op answers the
// caller's identity and counts its calls.
func serve(t *testing.T, dir string, cfg Config) (*Server, *atomic.Int32, *harness.SyncBuffer) {
	t.Helper()
	var calls atomic.Int32
	logs := &harness.SyncBuffer{}
	cfg.Path = filepath.Join(dir, "control.sock")
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if cfg.Ops == nil {
		cfg.Ops = Ops{"whoami": func(_ context.Context, p Peer, _ Request) (string, error) {
			calls.Add(1)
			return p.String(), nil
		}}
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return s, &calls, logs
}

func call(t *testing.T, path string, req Request) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Call(ctx, path, req)
}

func TestAuthorize(t *testing.T) {
	tests := []struct {
		name    string
		peer    Peer
		owner   uint32
		wantErr string
	}{
		{"root, daemon as root", Peer{UID: 0, User: "root"}, 0, ""},
		{"root, daemon as a user", Peer{UID: 0, User: "root"}, 998, ""},
		{"the daemon's user", Peer{UID: 998, User: "hotstandby"}, 998, ""},
		{"another user, daemon as root", Peer{UID: 1000, User: "alice"}, 0, "uid 1000 (alice) may not use the control socket: only root (uid 0) may"},
		{"another user, daemon as a user", Peer{UID: 1000, User: "alice"}, 998, "uid 1000 (alice) may not use the control socket: only root (uid 0) and the daemon's user, uid 998 (hotstandby), may"},
		{"a uid without a name", Peer{UID: 4242}, 998, "uid 4242 may not"},
		{"the daemon's gid is not enough", Peer{UID: 1000, GID: 998}, 998, "uid 1000 may not"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := map[uint32]string{998: "hotstandby"}[tt.owner]
			err := authorize(tt.peer, tt.owner, name)
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("authorize(%+v, %d) = %v, want an error containing %q", tt.peer, tt.owner, err, tt.wantErr)
			}
		})
	}
}

func TestPeerString(t *testing.T) {
	if got := (Peer{UID: 1000, GID: 1000, PID: 4242, User: "alice"}).String(); got != "uid 1000 (alice) pid 4242" {
		t.Fatalf("String = %q", got)
	}
	if got := (Peer{UID: 7, PID: 1}).String(); got != "uid 7 pid 1" {
		t.Fatalf("String = %q", got)
	}
}

// TestControlIdentityFromKernel: the handler sees the caller's uid and pid
// as the kernel reports them, and the socket is 0600.
func TestControlIdentityFromKernel(t *testing.T) {
	s, calls, logs := serve(t, t.TempDir(), Config{})
	fi, err := os.Stat(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %s, want a socket with 0600", fi.Mode())
	}
	msg, err := call(t, s.Addr(), Request{Op: "whoami"})
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("uid %d (%s) pid %d", os.Getuid(), userName(uint32(os.Getuid())), os.Getpid())
	if msg != want || calls.Load() != 1 {
		t.Fatalf("whoami = %q (%d calls), want %q", msg, calls.Load(), want)
	}
	if !strings.Contains(logs.String(), "op=whoami") || !strings.Contains(logs.String(), want) {
		t.Fatalf("the request is not logged with who made it:\n%s", logs.String())
	}
}

// TestControlBadRequests: unknown ops and fields, oversized and late
// requests are refused with a reason, and no handler runs.
func TestControlBadRequests(t *testing.T) {
	s, calls, _ := serve(t, t.TempDir(), Config{ReadTimeout: 200 * time.Millisecond})
	if _, err := call(t, s.Addr(), Request{Op: "promote"}); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), `unknown op "promote" (this daemon knows: whoami)`) {
		t.Fatalf("unknown op: %v", err)
	}
	tests := []struct {
		name    string
		send    []byte // nil: send nothing and wait
		wantErr string
	}{
		{"unknown field", []byte(`{"op":"whoami","by":"root"}` + "\n"), `unknown field "by"`},
		{"no op", []byte(`{"gtid":"0-1-5"}` + "\n"), `no "op"`},
		{"not JSON", []byte("skip 0-1-5\n"), "bad request"},
		{"too large", append(append([]byte(`{"op":"whoami","gtid":"`), bytes.Repeat([]byte("x"), MaxRequest)...), []byte(`"}`+"\n")...), "larger than 65536 bytes"},
		{"too late", nil, "none within 200ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rawExchange(t, s.Addr(), tt.send)
			if r.OK || !strings.Contains(r.Error, tt.wantErr) {
				t.Fatalf("reply %+v, want an error containing %q", r, tt.wantErr)
			}
		})
	}
	if calls.Load() != 0 {
		t.Fatalf("%d handler calls for refused requests", calls.Load())
	}
}

// rawExchange writes b (in a goroutine: the server may answer before it has
// read all of it) and reads the reply.
func rawExchange(t *testing.T, path string, b []byte) Reply {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = c.Write(b) }()
	var r Reply
	if err := json.NewDecoder(c).Decode(&r); err != nil {
		t.Fatalf("no reply: %v", err)
	}
	return r
}

// TestControlListenStaleAndLive: a socket left by a crash is replaced; a
// live one, or a file that is not a socket, is refused.
func TestControlListenStaleAndLive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "control.sock")
	// A crash leaves the file behind with nothing listening.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := call(t, path, Request{Op: "whoami"}); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "nothing answers on the control socket "+path) {
		t.Fatalf("call on a stale socket: %v", err)
	}
	s, _, logs := serve(t, dir, Config{})
	if !strings.Contains(logs.String(), "removed a stale control socket") {
		t.Fatalf("stale socket removal not logged:\n%s", logs.String())
	}
	if _, err := call(t, s.Addr(), Request{Op: "whoami"}); err != nil {
		t.Fatalf("after replacing the stale socket: %v", err)
	}
	// A second daemon on the same socket is refused, and the first keeps it.
	if _, err := Listen(Config{Path: path}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	if _, err := call(t, s.Addr(), Request{Op: "whoami"}); err != nil {
		t.Fatalf("the first server lost its socket: %v", err)
	}
	notSock := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(notSock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(Config{Path: notSock}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if _, err := Listen(Config{Path: "/" + strings.Repeat("d", maxPath) + "/control.sock"}); err == nil || !strings.Contains(err.Error(), "shorter data_dir") {
		t.Fatalf("Listen on a too long path: %v", err)
	}
}

// TestControlCloseRemovesSocket: after Serve returns the socket file is gone
// and a caller is told the daemon is not running.
func TestControlCloseRemovesSocket(t *testing.T) {
	dir := t.TempDir()
	s, err := Listen(Config{Path: filepath.Join(dir, "control.sock")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	cancel()
	<-done
	if _, err := os.Lstat(s.Addr()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Serve returned: %v", err)
	}
	if _, err := call(t, s.Addr(), Request{Op: "whoami"}); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), "no control socket at "+s.Addr()) {
		t.Fatalf("call with no socket: %v", err)
	}
}

// TestControlHandlerError: a handler's error is the reply's error.
func TestControlHandlerError(t *testing.T) {
	s, _, logs := serve(t, t.TempDir(), Config{Ops: Ops{"skip": func(context.Context, Peer, Request) (string, error) {
		return "", errors.New("applier: not stopped on that GTID")
	}}})
	_, err := call(t, s.Addr(), Request{Op: "skip", GTID: "0-1-5"})
	if !errors.Is(err, ErrRefused) || err.Error() != "refused: applier: not stopped on that GTID" {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"control request refused\" component=control op=skip gtid=0-1-5 by=\"uid ") {
		t.Fatalf("refusal not logged at WARN with who:\n%s", logs.String())
	}
}

// TestControlHandlerPanics: an op that panics (a nil dereference, as
// switchover did in replica mode) is answered as an error, logged at ERROR
// with its stack, and the server goes on answering.
func TestControlHandlerPanics(t *testing.T) {
	s, _, logs := serve(t, t.TempDir(), Config{Ops: Ops{
		"switchover": func(context.Context, Peer, Request) (string, error) {
			var m map[string]*Peer
			return m["x"].User, nil // nil dereference
		},
		"whoami": func(_ context.Context, p Peer, _ Request) (string, error) { return p.String(), nil },
	}})
	_, err := call(t, s.Addr(), Request{Op: "switchover"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), ErrOpPanicked.Error()) || !strings.Contains(err.Error(), "nil pointer dereference") {
		t.Fatalf("err = %v; want the panic answered as a refusal", err)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR msg=\"control op panicked; the daemon goes on\"") || !strings.Contains(l, "op=switchover") || !strings.Contains(l, "control_test.go") {
		t.Fatalf("panic not logged at ERROR with op and stack:\n%s", l)
	}
	if msg, err := call(t, s.Addr(), Request{Op: "whoami"}); err != nil || !strings.Contains(msg, "uid") {
		t.Fatalf("after the panic: %q, %v; want the server still answering", msg, err)
	}
}

// TestControlHelperProcess is the client run as another user by
// TestControlOtherUser; it prints Call's result.
func TestControlHelperProcess(t *testing.T) {
	path := os.Getenv("HS_CONTROL_SOCKET")
	if path == "" {
		t.Skip("helper process for TestControlOtherUser")
	}
	msg, err := call(t, path, Request{Op: "whoami"})
	if err != nil {
		fmt.Printf("ERR %v\n", err)
		os.Exit(3)
	}
	fmt.Printf("OK %s\n", msg)
	os.Exit(0)
}

// TestControlOtherUser runs a client as uid 65534 (nobody): the file modes
// keep it out, and where they do not (a socket made world-writable), the
// server refuses it by its kernel-reported uid. No handler runs.
func TestControlOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	// A directory everyone can enter, holding a copy of this test binary
	// (go test's own directory is private).
	pub, err := os.MkdirTemp("", "hsctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	bin := filepath.Join(pub, "control.test")
	copyFile(t, os.Args[0], bin, 0o755)
	sockDir := filepath.Join(pub, "data")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	s, calls, logs := serve(t, sockDir, Config{})
	asNobody := func() string {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^TestControlHelperProcess$")
		cmd.Dir = pub
		cmd.Env = []string{"HS_CONTROL_SOCKET=" + s.Addr(), "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	tests := []struct {
		name    string
		dirMode os.FileMode
		sock    os.FileMode
		want    string
	}{
		{"data dir 0700", 0o700, 0o600, "ERR permission denied on " + s.Addr() + ": " + sockDir + " is owned by uid 0 (root): run as that user or root"},
		{"socket 0600", 0o755, 0o600, "ERR permission denied on " + s.Addr() + ": " + s.Addr() + " is owned by uid 0 (root): run as that user or root"},
		{"socket 0666: the uid check", 0o755, 0o666, "ERR refused: uid 65534 (nobody) may not use the control socket: only root (uid 0) may"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.Chmod(sockDir, tt.dirMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(s.Addr(), tt.sock); err != nil {
				t.Fatal(err)
			}
			if out := asNobody(); !strings.Contains(out, tt.want) {
				t.Fatalf("client as nobody got:\n%s\nwant %q", out, tt.want)
			}
		})
	}
	if calls.Load() != 0 {
		t.Fatalf("the handler ran %d times for another user", calls.Load())
	}
	if !strings.Contains(logs.String(), `level=WARN msg="control request refused" component=control op=whoami by="uid 65534 (nobody) pid `) {
		t.Fatalf("the refusal is not logged with the caller's identity:\n%s", logs.String())
	}
	// The owner (root) still gets through.
	if msg, err := call(t, s.Addr(), Request{Op: "whoami"}); err != nil || msg != "uid 0 (root) pid "+strconv.Itoa(os.Getpid()) {
		t.Fatalf("root: %q, %v", msg, err)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, mode); err != nil {
		t.Fatal(err)
	}
}
