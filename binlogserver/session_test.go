package binlogserver

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
)

// syncBuffer is a log sink the server writes from many goroutines.
type syncBuffer struct {
	mu sync.Mutex // mu guards b
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startTestServer serves an empty relay log on a loopback port.
func startTestServer(t *testing.T, mut ...func(*Config)) (*Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{Listen: "127.0.0.1:0", User: "downstream", Password: "the-password", RelayDir: t.TempDir(),
		Source: fixedSource{}, ServerID: 900, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	for _, m := range mut {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, logs
}

func login(t *testing.T, srv *Server, user, password string) (*client.Conn, error) {
	t.Helper()
	return client.ConnectWithTimeout(srv.Addr(), user, password, "", 30*time.Second)
}

// alive checks that the server still logs replicas in and answers them.
func alive(t *testing.T, srv *Server) {
	t.Helper()
	c, err := login(t, srv, "downstream", "the-password")
	if err != nil {
		t.Fatalf("the server no longer serves: %v", err)
	}
	defer c.Close()
	r, err := c.Execute("SHOW VARIABLES LIKE 'server_id'")
	if err != nil {
		t.Fatalf("the server no longer answers: %v", err)
	}
	if v, _ := r.GetString(0, 1); v != "900" {
		t.Fatalf("server_id %q", v)
	}
}

// readUntilClosed reads what the server sends until it closes the
// connection (or the deadline), and returns it.
func readUntilClosed(t *testing.T, c net.Conn, d time.Duration) ([]byte, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return out, nil
			}
			return out, err
		}
	}
}

// TestEmptyCommandPacket: a logged-in client sends a command packet with
// no command byte. The server answers it with an error and closes that
// connection only; it keeps serving. (go-mysql's dispatch read data[0]:
// the panic took the whole daemon down.)
func TestEmptyCommandPacket(t *testing.T) {
	srv, logs := startTestServer(t)
	for _, pkt := range [][]byte{{0, 0, 0, 0}, {1, 0, 0, 0, mysql.COM_BINLOG_DUMP}, {2, 0, 0, 0, mysql.COM_REGISTER_SLAVE, 1}} {
		c, err := login(t, srv, "downstream", "the-password")
		if err != nil {
			t.Fatal(err)
		}
		c.ResetSequence()
		if _, err := c.Conn.Conn.Write(pkt); err != nil {
			t.Fatal(err)
		}
		if len(pkt) == 4 {
			// No command byte: refused, and the connection ends.
			got, err := readUntilClosed(t, c.Conn.Conn, 30*time.Second)
			if err != nil {
				t.Fatalf("empty packet: the server neither answered nor closed: %v", err)
			}
			if len(got) < 5 || got[4] != 0xff {
				t.Fatalf("empty packet: answer %x, want an ERR packet", got)
			}
		} else {
			// A command too short for its fields: refused with an error.
			_ = c.Conn.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			c.Sequence = 1 // the packet went out raw, as sequence 0
			got, err := c.ReadPacket()
			if err != nil || len(got) == 0 || got[0] != 0xff {
				t.Fatalf("packet %x: answer %x (%v), want an ERR packet", pkt, got, err)
			}
		}
		c.Close()
		alive(t, srv)
	}
	if strings.Contains(logs.String(), "the-password") {
		t.Fatal("the password reached the log")
	}
	if n := srv.Stats().Panics; n != 0 {
		t.Fatalf("%d handlers panicked: the packets must be refused before dispatch", n)
	}
}

// TestLoginPacketCap: before login, a packet header announcing 16 MiB is
// refused at once, without the server reserving the memory: the
// connection is closed and the server allocated far less than one such
// packet per connection.
func TestLoginPacketCap(t *testing.T) {
	srv, _ := startTestServer(t, func(c *Config) { c.LoginTimeout = 5 * time.Second })
	const conns = 6
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			greeting := make([]byte, 4096)
			if _, err := c.Read(greeting); err != nil {
				errs <- err
				return
			}
			start := time.Now()
			// The handshake response: 16 MiB - 1 announced, 1 KiB sent.
			if _, err := c.Write(append([]byte{0xff, 0xff, 0xff, 1}, make([]byte, 1024)...)); err != nil {
				errs <- err
				return
			}
			if _, err := readUntilClosed(t, c, 60*time.Second); err != nil {
				errs <- err
				return
			}
			if d := time.Since(start); d >= 5*time.Second {
				errs <- errors.New("the server kept the connection until the login timeout instead of refusing the packet")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	grew := after.TotalAlloc - before.TotalAlloc
	if grew > 16<<20 {
		t.Fatalf("%d oversized login packets made the server allocate %d MiB", conns, grew>>20)
	}
	t.Logf("%d oversized login packets: %d KiB allocated in all (test included)", conns, grew>>10)
	alive(t, srv)
}

// TestUnauthenticatedConnectionCap: connections that never log in are
// capped (per address); one over the cap is answered "Too many
// connections" at once, and a replica logs in again once they go.
func TestUnauthenticatedConnectionCap(t *testing.T) {
	srv, _ := startTestServer(t)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	refused := false
	for i := 0; i < 200 && !refused; i++ {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		if n > 4 && b[4] == 0xff {
			if code := uint16(b[5]) | uint16(b[6])<<8; code != mysql.ER_CON_COUNT_ERROR {
				t.Fatalf("connection %d refused with %d, want %d", i, code, mysql.ER_CON_COUNT_ERROR)
			}
			refused = true
			t.Logf("connection %d refused: %s", i, b[13:n])
		}
	}
	if !refused {
		t.Fatalf("%d connections that never log in were all accepted", len(held))
	}
	for _, c := range held {
		c.Close()
	}
	held = nil
	// Once they are gone, a replica logs in (the server notices the
	// closes when it reads).
	var c *client.Conn
	var err error
	for range 100 {
		if c, err = login(t, srv, "downstream", "the-password"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after the stalled connections went: %v", err)
	}
	c.Close()
}

// TestWrongUserLikeWrongPassword: a wrong user name gets the same answer as
// a wrong password (access denied, 1045): the server does not say which
// accounts exist.
func TestWrongUserLikeWrongPassword(t *testing.T) {
	srv, _ := startTestServer(t)
	answer := func(user, pw string) (uint16, string) {
		_, err := login(t, srv, user, pw)
		var me *mysql.MyError
		if !errors.As(err, &me) {
			t.Fatalf("user %q: got %v, want a MySQL error", user, err)
		}
		return me.Code, strings.Replace(me.Message, "'"+user+"'", "'USER'", 1)
	}
	c1, m1 := answer("downstream", "wrong")
	c2, m2 := answer("nosuchuser", "wrong")
	if c1 != mysql.ER_ACCESS_DENIED_ERROR || c1 != c2 || m1 != m2 {
		t.Fatalf("wrong password: %d %q; wrong user: %d %q; want both access denied, alike", c1, m1, c2, m2)
	}
}

// TestFailedLoginsLogRateLimited: failed logins from one address are
// logged once, then summarized, not one line each.
func TestFailedLoginsLogRateLimited(t *testing.T) {
	srv, logs := startTestServer(t)
	const fails = 8
	for range fails {
		if _, err := login(t, srv, "downstream", "wrong"); err == nil {
			t.Fatal("a wrong password logged in")
		}
	}
	alive(t, srv) // a good login from the same address is not held back
	lines := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "refused") {
			lines++
		}
	}
	if lines > 2 {
		t.Fatalf("%d failed logins wrote %d log lines:\n%s", fails, lines, logs.String())
	}
}

// TestHeartbeatPeriodClamped: @master_heartbeat_period is clamped as
// MariaDB bounds MASTER_HEARTBEAT_PERIOD (0, or 1 ms to 4294967 s): 1 ns
// must not make a busy loop, a huge value must not overflow, and values
// that are not numbers are refused.
func TestHeartbeatPeriodClamped(t *testing.T) {
	h := &session{s: &Server{cfg: Config{ServerID: 77, RelayDir: t.TempDir(), Version: DefaultVersion}}}
	for _, tt := range []struct {
		value string
		want  time.Duration
	}{
		{"0", 0}, {"1", time.Millisecond}, {"999999", time.Millisecond}, {"200000000", 200 * time.Millisecond},
		{"1e30", 4294967 * time.Second}, {"4294967000000000", 4294967 * time.Second},
	} {
		h.heartbeat = -1
		if _, err := h.HandleQuery("SET @master_heartbeat_period= " + tt.value); err != nil {
			t.Fatalf("%s: %v", tt.value, err)
		}
		if h.heartbeat != tt.want {
			t.Errorf("@master_heartbeat_period= %s: period %v, want %v", tt.value, h.heartbeat, tt.want)
		}
	}
	for _, bad := range []string{"NaN", "Inf", "-1", "abc", "'x'"} {
		if _, err := h.HandleQuery("SET @master_heartbeat_period= " + bad); err == nil {
			t.Errorf("@master_heartbeat_period= %s accepted (period %v)", bad, h.heartbeat)
		}
	}
	_ = math.Inf
}

// cell is one value of a text result set the session built.
func cell(t *testing.T, r *mysql.Result, row, col int) string {
	t.Helper()
	if r == nil || r.Resultset == nil || len(r.RowDatas) <= row {
		return ""
	}
	vals, err := r.RowDatas[row].ParseText(r.Fields, nil)
	if err != nil || len(vals) <= col {
		t.Fatalf("row %d: %v", row, err)
	}
	return string(vals[col].AsString())
}

// TestSemiSyncQueries: the queries a semi-sync replica and go-mysql's
// BinlogSyncer send to ask for semi-sync are answered so that they turn it
// on: rpl_semi_sync_master_enabled is ON, and @rpl_semi_sync_slave=1 is
// taken, also among several assignments in one SET.
func TestSemiSyncQueries(t *testing.T) {
	h := &session{s: &Server{cfg: Config{ServerID: 77, RelayDir: t.TempDir(), Version: DefaultVersion}}}
	for _, q := range []string{
		"SHOW VARIABLES LIKE 'rpl_semi_sync_master_enabled'",
		"SHOW VARIABLES WHERE Variable_name IN ('rpl_semi_sync_master_enabled', 'rpl_semi_sync_source_enabled')",
	} {
		r, err := h.HandleQuery(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if v := cell(t, r, 0, 1); v != "ON" {
			t.Fatalf("%s: %q, want ON", q, v)
		}
	}
	for _, q := range []string{"SET @rpl_semi_sync_slave= 1", "SET @rpl_semi_sync_slave = 1, @rpl_semi_sync_replica = 1;"} {
		h2 := &session{s: h.s}
		if _, err := h2.HandleQuery(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !h2.semiSyncRequested() {
			t.Fatalf("%s: semi-sync not requested", q)
		}
	}
	h3 := &session{s: h.s}
	if _, err := h3.HandleQuery("SET @master_binlog_checksum='NONE', @slave_connect_state='0-1-5,1-1-7'"); err != nil {
		t.Fatal(err)
	}
	if h3.connectState == nil || *h3.connectState != "0-1-5,1-1-7" || h3.semiSyncRequested() {
		t.Fatalf("multi-SET: state %v, semi-sync %v", h3.connectState, h3.semiSyncRequested())
	}
}

// TestKillUnknownConnection: KILL of a connection that is not dumping is
// refused as MariaDB refuses it (1094).
func TestKillUnknownConnection(t *testing.T) {
	h := &session{s: &Server{cfg: Config{ServerID: 77, RelayDir: t.TempDir(), Version: DefaultVersion}, replicas: map[uint32]*replica{}}}
	_, err := h.HandleQuery("KILL 12345")
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != mysql.ER_NO_SUCH_THREAD {
		t.Fatalf("KILL 12345: %v, want 1094", err)
	}
}

// panicConn panics in Read once armed.
type panicConn struct {
	net.Conn
	armed atomic.Bool
}

func (c *panicConn) Read(b []byte) (int, error) {
	if c.armed.Load() {
		panic("injected read panic")
	}
	return c.Conn.Read(b)
}

// TestHandlerPanicEndsOnlyItsConnection: a panic in a connection's handler
// (here injected into its reads) is recovered: logged with its stack,
// counted, that connection closed, and the server goes on serving.
func TestHandlerPanicEndsOnlyItsConnection(t *testing.T) {
	srv, logs := startTestServer(t)
	cli, end := net.Pipe()
	pc := &panicConn{Conn: end}
	done := make(chan struct{})
	go func() { defer close(done); srv.handle(context.Background(), pc) }()
	c, err := client.ConnectWithDialer(context.Background(), "tcp", "pipe", "downstream", "the-password", "",
		func(context.Context, string, string) (net.Conn, error) { return cli, nil })
	if err != nil {
		t.Fatal(err)
	}
	pc.armed.Store(true)
	if _, err := c.Execute("SELECT 1"); err == nil {
		t.Fatal("the query was answered")
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the connection's handler did not end")
	}
	if n := srv.Stats().Panics; n != 1 {
		t.Fatalf("Stats().Panics = %d", n)
	}
	if l := logs.String(); !strings.Contains(l, "panicked") || !strings.Contains(l, "injected read panic") || !strings.Contains(l, "goroutine") {
		t.Fatalf("the panic is not logged with its stack:\n%s", l)
	}
	alive(t, srv)
}
