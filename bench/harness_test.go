package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/sandbox"
)

// replUser is the replication account every reader logs in with.
const replUser = "repl"

// replPrivs are the privileges the agent's preflight checks want.
const replPrivs = "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN"

// requireBench skips the test unless HOTSTANDBY_BENCH=1.
func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv("HOTSTANDBY_BENCH") != "1" {
		t.Skip("benchmark: set HOTSTANDBY_BENCH=1 to run it")
	}
	if err := sandbox.EnsureInstalled(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s = %q: want a positive integer", name, s)
	}
	return n
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// buildAgent builds cmd/hotstandby into a temporary directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hotstandby")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hotstandby/hotstandby/cmd/hotstandby").CombinedOutput()
	if err != nil {
		t.Fatalf("building hotstandby: %v\n%s", err, out)
	}
	return bin
}

// startServer starts a sandbox server under base/name.
func startServer(t *testing.T, base, name string, id uint32, master bool, extra ...string) *sandbox.Server {
	t.Helper()
	s, err := sandbox.Start(context.Background(), sandbox.Config{
		Dir: filepath.Join(base, name), ServerID: id, Master: master, Extra: extra, Log: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Logf("stopping %s: %v", name, err)
		}
	})
	return s
}

func mustExec(t *testing.T, s *sandbox.Server, q string, args ...any) {
	t.Helper()
	if err := s.Exec(context.Background(), q, args...); err != nil {
		t.Fatal(err)
	}
}

// row runs q and returns its first row by column name (NULL reads as "").
// No row gives a nil map.
func row(s *sandbox.Server, q string) (map[string]string, error) {
	rows, err := s.DB().Query(q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(cols))
	for i, c := range cols {
		m[c] = string(vals[i])
	}
	return m, rows.Err()
}

// binlogEnd is a position in the master's binlog.
type binlogEnd struct {
	File string
	Pos  uint64
}

func (e binlogEnd) String() string { return fmt.Sprintf("%s:%d", e.File, e.Pos) }

// masterEnd returns SHOW MASTER STATUS.
func masterEnd(t *testing.T, s *sandbox.Server) binlogEnd {
	t.Helper()
	m, err := row(s, "SHOW MASTER STATUS")
	if err != nil || m == nil {
		t.Fatalf("SHOW MASTER STATUS: %v (row %v)", err, m)
	}
	pos, err := strconv.ParseUint(m["Position"], 10, 64)
	if err != nil {
		t.Fatalf("SHOW MASTER STATUS: position %q", m["Position"])
	}
	return binlogEnd{File: m["File"], Pos: pos}
}

// binlogFile is one line of SHOW BINARY LOGS.
type binlogFile struct {
	Name string
	Size int64
}

func binaryLogs(t *testing.T, s *sandbox.Server) []binlogFile {
	t.Helper()
	rows, err := s.DB().Query("SHOW BINARY LOGS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []binlogFile
	for rows.Next() {
		var f binlogFile
		dest := []any{&f.Name, &f.Size}
		for len(dest) < len(cols) {
			dest = append(dest, new(sql.RawBytes))
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// statusInt returns a global status variable as an integer.
func statusInt(t *testing.T, s *sandbox.Server, name string) int64 {
	t.Helper()
	v, err := s.Status(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("status %s = %q: not a number", name, v)
	}
	return n
}

// waitFor polls cond every interval until it holds; it fails the test when
// cond errs or d passes.
func waitFor(t *testing.T, what string, d, interval time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(interval)
	}
}

// agentSpec is what an agent's config file says.
type agentSpec struct {
	Dir      string // holds the config, the password file, data/ and the log
	Master   *sandbox.Server
	Password string
	ServerID uint32
	Start    string // current, file:NAME:POS
	SemiSync bool
	Extra    string // appended to the config file as is (TOML), e.g. a [standby] section
}

// agentProc is a running hotstandby process.
type agentProc struct {
	cmd     *exec.Cmd
	listen  string
	logPath string
	started time.Time
	done    chan struct{}
	err     error // exit status, valid once done is closed
}

// startAgent writes the config and starts `hotstandby run`. Its standard
// output and error go to Dir/agent.log.
func startAgent(t *testing.T, bin string, a agentSpec) *agentProc {
	t.Helper()
	pwFile := filepath.Join(a.Dir, "master.pw")
	if err := os.WriteFile(pwFile, []byte(a.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`data_dir = %q
server_id = %d
start = %q

[master]
host = "127.0.0.1"
port = %d
user = %q
password_file = %q

[semisync]
enabled = %t

[status]
listen = %q
`, filepath.Join(a.Dir, "data"), a.ServerID, a.Start, a.Master.Port(), replUser, pwFile, a.SemiSync, listen)
	cfg += a.Extra
	cfgPath := filepath.Join(a.Dir, "hotstandby.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(a.Dir, "agent.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &agentProc{cmd: cmd, listen: listen, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// exited reports whether the process has ended.
func (p *agentProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the agent with SIGTERM (SIGKILL after 20 s) and waits for it.
// Stopping a stopped agent does nothing.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Logf("agent exited after SIGTERM: %v", p.err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("agent did not stop within 20s of SIGTERM: killing it")
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// agentStatus is the part of the /status JSON the benchmarks read.
type agentStatus struct {
	Stream struct {
		State      string  `json:"state"`
		Events     *uint64 `json:"events_received"`
		Bytes      *uint64 `json:"bytes_received"`
		Reconnects *uint64 `json:"reconnects"`
		LastError  string  `json:"last_error"`
	} `json:"stream"`
	Received struct {
		File string  `json:"file"`
		Pos  *uint64 `json:"pos"`
	} `json:"received"`
	SemiSync struct {
		Enabled  bool    `json:"enabled"`
		AcksSent *uint64 `json:"acks_sent"`
	} `json:"semisync"`
}

func (s agentStatus) at(e binlogEnd) bool {
	return s.Received.File == e.File && s.Received.Pos != nil && *s.Received.Pos == e.Pos
}

func (s agentStatus) received() string {
	if s.Received.Pos == nil {
		return "unknown"
	}
	return fmt.Sprintf("%s:%d", s.Received.File, *s.Received.Pos)
}

func u64(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

var statusClient = &http.Client{Timeout: 2 * time.Second}

// status fetches GET /status.
func (p *agentProc) status() (agentStatus, error) {
	resp, err := statusClient.Get("http://" + p.listen + "/status")
	if err != nil {
		return agentStatus{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentStatus{}, fmt.Errorf("status endpoint: %s", resp.Status)
	}
	var st agentStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return agentStatus{}, fmt.Errorf("status endpoint: %w", err)
	}
	return st, nil
}

// waitStatus polls /status until cond holds. The endpoint not answering yet
// is not an error; the agent exiting or a failed state is.
func (p *agentProc) waitStatus(t *testing.T, what string, d, interval time.Duration, cond func(agentStatus) bool) agentStatus {
	t.Helper()
	var last agentStatus
	waitFor(t, what, d, interval, func() (bool, error) {
		if p.exited() {
			return false, fmt.Errorf("agent exited (%v); log:\n%s", p.err, p.logTail(30))
		}
		st, err := p.status()
		if err != nil {
			return false, nil
		}
		last = st
		if st.Stream.State == "failed" {
			return false, fmt.Errorf("agent failed: %s", st.Stream.LastError)
		}
		return cond(st), nil
	})
	return last
}

// peakRSS returns VmHWM of the running agent in KiB.
func (p *agentProc) peakRSS(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("reading the agent's /proc status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmHWM in the agent's /proc status")
	return 0
}

// logTail returns the last n lines of the agent's log.
func (p *agentProc) logTail(n int) string {
	data, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// reviewLog reports the agent's log lines at WARN or ERROR level (and any
// line that is not slog's, such as a panic) and copies the log to
// HOTSTANDBY_BENCH_LOGDIR/name.log when that is set. It returns how many
// such lines there were.
func (p *agentProc) reviewLog(t *testing.T, name string) int {
	t.Helper()
	if dir := os.Getenv("HOTSTANDBY_BENCH_LOGDIR"); dir != "" {
		if data, err := os.ReadFile(p.logPath); err == nil {
			_ = os.MkdirAll(dir, 0o700)
			_ = os.WriteFile(filepath.Join(dir, name+".log"), data, 0o600)
		}
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		t.Errorf("agent log: %v", err)
		return 0
	}
	defer f.Close()
	var bad []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "level=INFO") || strings.Contains(line, "level=DEBUG") {
			continue
		}
		bad = append(bad, line)
	}
	if len(bad) > 0 {
		shown := bad
		if len(shown) > 20 {
			shown = shown[:20]
		}
		t.Logf("agent %s: %d log lines above INFO (or not from slog):\n%s", name, len(bad), strings.Join(shown, "\n"))
	}
	return len(bad)
}

// median returns the median of xs (the mean of the middle two for an even
// count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile returns the p-th percentile (0-100) of sorted durations, by the
// nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// syncDisks flushes dirty pages, so that one run's writeback does not land
// in the next run's fsyncs.
func syncDisks() { syscall.Sync() }

// printTable writes rows as an aligned text table.
func printTable(w io.Writer, header []string, rows [][]string) {
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			fmt.Fprintf(&b, " %-*s |", width[i], c)
		}
		fmt.Fprintln(w, b.String())
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, r := range rows {
		line(r)
	}
}

// machineLoad says what else runs on the machine, since the benchmarks
// share its two cores and its disk: the load average, and the mariadbd and
// Go test processes that this test did not start (its servers live under
// base).
func machineLoad(base string) string {
	loadavg, _ := os.ReadFile("/proc/loadavg")
	ents, _ := os.ReadDir("/proc")
	var servers, tests int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		switch prog := filepath.Base(args[0]); {
		case prog == "mariadbd" && !strings.Contains(string(cmdline), base):
			servers++
		case strings.HasSuffix(prog, ".test"):
			tests++
		}
	}
	fields := strings.Fields(string(loadavg))
	if len(fields) > 3 {
		fields = fields[:3]
	}
	return fmt.Sprintf("load average %s; other mariadbd processes: %d; other Go test binaries: %d",
		strings.Join(fields, " "), servers, tests)
}
