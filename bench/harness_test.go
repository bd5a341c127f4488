package bench

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
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

// buildAgent builds cmd/hotstandby into a temporary directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin, err := harness.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startServer starts a sandbox server under base/name.
func startServer(t *testing.T, base, name string, id uint32, master bool, extra ...string) *sandbox.Server {
	t.Helper()
	return startServerTLS(t, base, name, id, master, nil, extra...)
}

// startServerTLS is startServer with a certificate (nil: none).
func startServerTLS(t *testing.T, base, name string, id uint32, master bool, tls *sandbox.TLSConfig, extra ...string) *sandbox.Server {
	t.Helper()
	s, err := sandbox.Start(context.Background(), sandbox.Config{
		Dir: filepath.Join(base, name), ServerID: id, Master: master, Extra: extra, Log: t.Logf, TLS: tls,
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
type binlogEnd = binlog.FilePos

// masterEnd returns SHOW MASTER STATUS.
func masterEnd(t *testing.T, s *sandbox.Server) binlogEnd {
	t.Helper()
	p, err := harness.MasterPos(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// binlogFile is one line of SHOW BINARY LOGS.
type binlogFile = harness.BinlogFile

func binaryLogs(t *testing.T, s *sandbox.Server) []binlogFile {
	t.Helper()
	logs, err := harness.BinaryLogs(s)
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// statusInt returns a global status variable as an integer.
func statusInt(t *testing.T, s *sandbox.Server, name string) int64 {
	t.Helper()
	n, err := harness.StatusInt(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return n
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
	// MasterTLS holds TOML lines for the [master] section (tls, ca_file).
	MasterTLS string
}

// agentProc is a running hotstandby process.
type agentProc struct {
	*harness.Process
	listen  string
	started time.Time
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
%s
[semisync]
enabled = %t

[status]
listen = %q
`, filepath.Join(a.Dir, "data"), a.ServerID, a.Start, a.Master.Port(), replUser, pwFile, a.MasterTLS, a.SemiSync, listen)
	cfg += a.Extra
	cfgPath := filepath.Join(a.Dir, "hotstandby.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(a.Dir, "agent.log")
	_ = os.Remove(logPath)
	p := &agentProc{listen: listen, started: time.Now()}
	p.Process = harness.Start(t, bin, []string{"run", "--config", cfgPath}, logPath, nil,
		func(line string) { t.Logf("agent: %s\n%s", line, a.Master.Diagnose(context.Background())) })
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends the agent with SIGTERM (SIGKILL after 20 s) and waits for it.
// Stopping a stopped agent does nothing.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	if p.Exited() {
		return
	}
	if !p.Stop(20 * time.Second) {
		t.Errorf("agent did not stop within 20s of SIGTERM: killed it")
	} else if err := p.Err(); err != nil {
		t.Logf("agent exited after SIGTERM: %v", err)
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
	harness.Poll(t, what, d, interval, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("agent exited (%v); log:\n%s", p.Err(), p.LogTail(30))
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
	kb, err := harness.PeakRSS(p.Pid())
	if err != nil {
		t.Fatal(err)
	}
	return kb
}

// reviewLog reports the agent's log lines at WARN or ERROR level (and any
// line that is not slog's, such as a panic) and copies the log to
// HOTSTANDBY_BENCH_LOGDIR/name.log when that is set. It returns how many
// such lines there were.
func (p *agentProc) reviewLog(t *testing.T, name string) int {
	t.Helper()
	if dir := os.Getenv("HOTSTANDBY_BENCH_LOGDIR"); dir != "" {
		if data, err := os.ReadFile(p.LogPath); err == nil {
			_ = os.MkdirAll(dir, 0o700)
			_ = os.WriteFile(filepath.Join(dir, name+".log"), data, 0o600)
		}
	}
	f, err := os.Open(p.LogPath)
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
