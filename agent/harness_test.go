package agent

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// hsBinary is the hotstandby binary built once for the tests that kill the
// agent's process.
var hsBinary string

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Short() {
		dir, err := os.MkdirTemp("", "hsbin")
		if err != nil {
			panic(err)
		}
		if hsBinary, err = harness.Build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// testEnv is one master and one agent data directory.
type testEnv struct {
	t        *testing.T
	master   *sandbox.Server
	dir      string
	password string
	cfgPath  string
	// panicsExpected: the test provokes a panic the agent recovers from;
	// checkNoPanic lets it pass.
	panicsExpected bool
}

// panicLines returns the lines of an agent's log that show a panic: one
// the agent recovered (logged at ERROR) or one that ended the process (the
// runtime's "panic:" and "fatal error:").
func panicLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") ||
			(strings.Contains(l, "level=ERROR") && strings.Contains(strings.ToLower(l), "panic")) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkNoPanic fails the test when an agent's log shows a panic, even one
// the agent recovered from and answered as an error.
func (e *testEnv) checkNoPanic(who, log string) {
	e.t.Helper()
	if e.panicsExpected {
		return
	}
	if l := panicLines(log); l != "" {
		e.t.Errorf("the %s panicked (a recovered panic is still a bug):\n%s", who, l)
	}
}

func needServers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs MariaDB servers")
	}
	if err := sandbox.EnsureInstalled(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// newEnv starts a semi-sync master and writes an agent config for it.
func newEnv(t *testing.T, extra ...string) *testEnv {
	t.Helper()
	needServers(t)
	dir := t.TempDir()
	ctx := context.Background()
	master, err := sandbox.Start(ctx, sandbox.Config{
		Dir: filepath.Join(dir, "m"), ServerID: 1, Master: true, Log: t.Logf,
		Extra: append([]string{"rpl_semi_sync_master_timeout=10000"}, extra...),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Stop(context.Background()) })
	e := &testEnv{t: t, master: master, dir: dir, password: "pw-" + harness.RandHex(12)}
	if err := master.CreateUser(ctx, "repl", e.password, "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN"); err != nil {
		t.Fatal(err)
	}
	// No semi-sync replica yet: don't let setup wait out the timeout.
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=100")
	e.exec("CREATE DATABASE IF NOT EXISTS test")
	e.exec("CREATE TABLE test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, payload VARCHAR(200)) ENGINE=InnoDB")
	e.exec("CREATE TABLE test.nudge (id INT PRIMARY KEY, at DATETIME(6)) ENGINE=InnoDB")
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=10000")
	e.writeConfig("")
	return e
}

func (e *testEnv) exec(q string, args ...any) {
	e.t.Helper()
	if err := e.master.Exec(context.Background(), q, args...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) status(name string) int64 {
	e.t.Helper()
	v, err := e.master.Status(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// writeConfig writes hotstandby.toml; extra is appended as TOML.
func (e *testEnv) writeConfig(extra string) {
	e.t.Helper()
	pwFile := filepath.Join(e.dir, "master.pw")
	if err := os.WriteFile(pwFile, []byte(e.password+"\n"), 0o600); err != nil {
		e.t.Fatal(err)
	}
	port, err := sandbox.FreePort()
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := fmt.Sprintf(`data_dir = %q
server_id = 9001
start = "current"

[master]
host = "127.0.0.1"
port = %d
user = "repl"
password_file = %q
heartbeat = "250ms"
read_timeout = "2s"

[semisync]
enabled = true

[status]
listen = "127.0.0.1:%d"

[reconnect]
initial = "50ms"
max = "500ms"
`, filepath.Join(e.dir, "agent"), e.master.Port(), pwFile, port)
	e.cfgPath = filepath.Join(e.dir, "hotstandby.toml")
	if err := os.WriteFile(e.cfgPath, []byte(cfg+extra), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) config() Config {
	e.t.Helper()
	cfg, err := LoadConfig(e.cfgPath)
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// inProcess is an agent running in the test's process.
type inProcess struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
	log    *harness.SyncBuffer
}

func (e *testEnv) startInProcess(hooks ingest.Hooks) *inProcess {
	e.t.Helper()
	lb := &harness.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := newAgent(e.config(), log, hooks)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcess{a: a, cancel: cancel, done: make(chan error, 1), log: lb}
	go func() { p.done <- a.Run(ctx) }()
	e.t.Cleanup(func() {
		if e.t.Failed() {
			// Where each goroutine is, before the stop changes it: a
			// failure that is a hang shows its cause here.
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			e.t.Logf("goroutines at the failure:\n%s", stacks.String())
		}
		if err := p.stop(); err != nil {
			var stacks bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			e.t.Errorf("in-process agent: %v; goroutines now:\n%s", err, stacks.String())
		}
		e.checkNoPanic("in-process agent", lb.String())
		if e.t.Failed() {
			e.t.Logf("agent log:\n%s", lb.String())
		}
	})
	return p
}

func (p *inProcess) stop() error {
	p.cancel()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(20 * time.Second):
		return errors.New("agent did not stop")
	}
}

// waitSemiSyncClient waits until the master counts a semi-sync replica and
// is in semi-sync mode again. A master that fell back to async switches back
// when the replica acknowledges its current position, which it asks for on
// the next commit: nudge it with one.
func (e *testEnv) waitSemiSyncClient() {
	e.t.Helper()
	harness.WaitFor(e.t, "the master to see a semi-sync replica", 20*time.Second, func() bool {
		return e.status("Rpl_semi_sync_master_clients") >= 1
	})
	harness.WaitFor(e.t, "the master to be in semi-sync mode", 20*time.Second, func() bool {
		if v, _ := e.master.Status(context.Background(), "Rpl_semi_sync_master_status"); v == "ON" {
			return true
		}
		e.exec("REPLACE INTO test.nudge VALUES (1, NOW(6))")
		return false
	})
}

// masterPos returns SHOW MASTER STATUS.
func (e *testEnv) masterPos() binlog.FilePos {
	e.t.Helper()
	p, err := harness.MasterPos(e.master)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// waitCaughtUp waits until report() says received reached the master's
// current position.
func (e *testEnv) waitCaughtUp(report func() status.Report) {
	e.t.Helper()
	want := e.masterPos()
	harness.WaitFor(e.t, "the agent to receive up to "+want.String(), 60*time.Second, func() bool {
		r := report()
		return r.Received.File == want.File && r.Received.Pos != nil && *r.Received.Pos == want.Pos
	})
}

// load commits n single-row transactions from `clients` connections.
func (e *testEnv) load(ctx context.Context, clients, n int) (committed int64, err error) {
	db, err := sql.Open("mysql", e.master.RootDSN("test"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(clients)
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if _, err := db.ExecContext(ctx, "INSERT INTO t (c, payload) VALUES (?, ?)", i, strings.Repeat("x", int(i%100))); err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return done.Load(), <-errs
}

// compareRelay checks the relay log against the master's binlog files: every
// stored event equals the master's event at the same position byte for
// byte, positions follow each other with no gap and no repeat, and the
// relay covers everything from its first event to the master's end.
func compareRelay(t *testing.T, binlogDir, relayDir string) (events int) {
	t.Helper()
	return compareRelayOpts(t, binlogDir, relayDir, true)
}

// compareRelayPrefix is compareRelay without the coverage check: the relay
// log may end before the master's binlog does.
func compareRelayPrefix(t *testing.T, binlogDir, relayDir string) (events int) {
	t.Helper()
	return compareRelayOpts(t, binlogDir, relayDir, false)
}

func compareRelayOpts(t *testing.T, binlogDir, relayDir string, coverage bool) (events int) {
	t.Helper()
	segs, err := relay.ListSegments(relayDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) == 0 {
		t.Fatal("relay log is empty")
	}
	masterEvents := map[string]map[uint64][]byte{}
	readMaster := func(file string) map[uint64][]byte {
		if m, ok := masterEvents[file]; ok {
			return m
		}
		m := map[uint64][]byte{}
		r, err := relay.OpenSegment(filepath.Join(binlogDir, file))
		if err != nil {
			t.Fatalf("master binlog %s: %v", file, err)
		}
		defer r.Close()
		for {
			ev, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("master binlog %s: %v", file, err)
			}
			h, _ := binlog.ParseHeader(ev)
			m[h.Start()] = append([]byte(nil), ev...)
		}
		masterEvents[file] = m
		return m
	}
	type place struct {
		file string
		pos  uint64
	}
	seen := map[place]bool{}
	var cur place
	var firstFile string
	var firstPos uint64
	for _, seg := range segs {
		r, err := relay.OpenSegment(seg.Path)
		if err != nil {
			t.Fatal(err)
		}
		if cur.file != seg.MasterFile {
			cur = place{file: seg.MasterFile}
		}
		m := readMaster(seg.MasterFile)
		for {
			ev, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("relay segment %s: %v", seg.Path, err)
			}
			h, _ := binlog.ParseHeader(ev)
			p := place{cur.file, h.Start()}
			if firstFile == "" {
				firstFile, firstPos = cur.file, h.Start()
			}
			if cur.pos != 0 && h.Start() != cur.pos {
				t.Fatalf("relay gap in %s: event at %d, previous ended at %d", cur.file, h.Start(), cur.pos)
			}
			if seen[p] {
				t.Fatalf("relay holds the event at %s:%d twice", p.file, p.pos)
			}
			seen[p] = true
			want, ok := m[h.Start()]
			if !ok {
				t.Fatalf("relay event at %s:%d (type %d) is not an event of the master's binlog", p.file, p.pos, h.Type)
			}
			if !bytes.Equal(want, ev) {
				t.Fatalf("relay event at %s:%d differs from the master's", p.file, p.pos)
			}
			events++
			cur.pos = uint64(h.LogPos)
			if h.Type == binlog.RotateEvent {
				next, _ := binlog.RotateTarget(ev, true)
				cur = place{file: next.File}
				m = readMaster(next.File)
			}
		}
		r.Close()
	}
	if !coverage {
		return events
	}
	// Coverage: every master event from the first relay event on is there
	// (format descriptions are the segments' headers).
	files, _ := filepath.Glob(filepath.Join(binlogDir, "mysql-bin.[0-9]*"))
	for _, f := range files {
		name := filepath.Base(f)
		if c, err := (binlog.FilePos{File: name}).Compare(binlog.FilePos{File: firstFile}); err != nil || c < 0 {
			continue
		}
		for start, ev := range readMaster(name) {
			h, _ := binlog.ParseHeader(ev)
			if h.Type == binlog.FormatDescriptionEvent || (name == firstFile && start < firstPos) {
				continue
			}
			if !seen[place{name, start}] {
				t.Fatalf("master event %s:%d (type %d) is missing from the relay log", name, start, h.Type)
			}
		}
	}
	return events
}

// mariadbBinlogReads runs mariadb-binlog over every relay segment.
func mariadbBinlogReads(t *testing.T, relayDir string) {
	t.Helper()
	segs, err := relay.ListSegments(relayDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		cmd := exec.Command("mariadb-binlog", "--base64-output=never", s.Path)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("mariadb-binlog %s: %v\n%s", s.Path, err, stderr.String())
		}
		if strings.Contains(strings.ToLower(stderr.String()), "error") {
			t.Fatalf("mariadb-binlog %s reported: %s", s.Path, stderr.String())
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// recoverRelay runs the relay's crash recovery, as the agent's next start
// would, so that a relay left by kill -9 can be inspected.
func recoverRelay(t *testing.T, c Config) {
	t.Helper()
	st, err := checkpointState(c)
	if err != nil {
		t.Fatal(err)
	}
	relay, end, err := relay.Open(relay.DefaultConfig(c.RelayDir()), st.Received)
	if err != nil {
		t.Fatalf("relay recovery: %v", err)
	}
	if err := relay.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := end.Pos.FilePos.AtLeast(st.Received.Pos.FilePos); !ok {
		t.Fatalf("recovered end %s is before the durable checkpoint %s", end.Pos, st.Received.Pos)
	}
}

// withStandby starts a standby server and adds a [standby] section in the
// harness's mode: replica, the users' default, unless
// HOTSTANDBY_TEST_APPLY_MODE=direct runs the tests in the other mode.
func (e *testEnv) withStandby() *sandbox.Server {
	e.t.Helper()
	return e.withStandbyMode(testApplyMode())
}

// testApplyMode is the apply mode of withStandby.
func testApplyMode() string {
	if os.Getenv("HOTSTANDBY_TEST_APPLY_MODE") == ModeDirect {
		return ModeDirect
	}
	return ModeReplica
}

// withStandbyMode starts a standby server and adds a [standby] section with
// the given apply mode (ModeReplica is the users' default).
func (e *testEnv) withStandbyMode(mode string) *sandbox.Server {
	e.t.Helper()
	ctx := context.Background()
	standby, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(e.dir, "s"), ServerID: 2, Log: e.t.Logf})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { standby.Stop(context.Background()) })
	if err := standby.CreateUser(ctx, "applier", e.password, "ALL PRIVILEGES"); err != nil {
		e.t.Fatal(err)
	}
	// The standby starts empty: replicate the master's whole history.
	cfg := strings.Replace(readFile(e.t, e.cfgPath), `start = "current"`, `start = "file:mysql-bin.000001:4"`, 1)
	cfg += fmt.Sprintf(`
[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q
mode = %q
`, standby.Port(), filepath.Join(e.dir, "master.pw"), mode)
	writeFile(e.t, e.cfgPath, cfg)
	return standby
}

// waitApplied waits until the standby's gtid_binlog_pos equals the master's.
func (e *testEnv) waitApplied(standby *sandbox.Server, d time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	var got, want string
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		// Re-read the master too: commits of cancelled clients may still
		// be finishing there.
		want, _ = e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		got, _ = standby.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		// The standby's binlog position moves when a transaction is
		// written to its binlog, a moment before InnoDB makes it visible;
		// the agent's applied frontier moves once COMMIT has returned.
		if rep, err := status.Get(ctx, e.config().StatusSource()); got == want && err == nil && rep.Applied != nil && rep.Applied.GTID == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("standby gtid_binlog_pos %q, master %q after %s", got, want, d)
}

// tableRows returns every row of a table as text (ordered), for comparison.
func tableRows(t *testing.T, s *sandbox.Server, table, order string) []string {
	t.Helper()
	rows, err := s.DB().Query("SELECT * FROM " + table + " ORDER BY " + order)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, v := range vals {
			if v == nil {
				b.WriteString("NULL|")
			} else {
				fmt.Fprintf(&b, "%x|", []byte(v))
			}
		}
		out = append(out, b.String())
	}
	return out
}

// interruptSignal stops the agent process cleanly.
var interruptSignal = os.Interrupt
