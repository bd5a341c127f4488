package bench

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// TestBenchClone measures the time from nothing to a caught-up standby
// for the same master, side by side: hotstandby clone (then run), mariadb-dump
// --single-transaction --master-data | mariadb (then a native replica from
// the dump's position), and mydumper/myloader (then the same). Four clients
// commit on the master throughout; their commit latency is reported for a
// quiet window and for each copy, with the longest commit wait that
// hotstandby's snapshot step measured.
//
//	HOTSTANDBY_BENCH=1 HOTSTANDBY_BENCH_CLONE_MB=2048 HOTSTANDBY_BENCH_CLONE_THREADS=4
func TestBenchClone(t *testing.T) {
	requireBench(t)
	mb := envInt(t, "HOTSTANDBY_BENCH_CLONE_MB", 2048)
	threads := envInt(t, "HOTSTANDBY_BENCH_CLONE_THREADS", 4)
	for _, tool := range []string{"mydumper", "myloader", "mariadb-dump", "mariadb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (apt-get install -y mydumper mariadb-client): %v", tool, err)
		}
	}
	bin := buildAgent(t)
	base := t.TempDir()
	e := &cloneEnv{t: t, base: base, bin: bin, threads: threads, password: "pw-" + harness.RandHex(8)}
	// Semi-sync off: the latency measured is the copy's cost alone.
	e.master = startServer(t, base, "master", 1, true, "rpl_semi_sync_master_enabled=OFF", "innodb_buffer_pool_size=256M")
	ctx := context.Background()
	if err := e.master.CreateUser(ctx, replUser, e.password, replPrivs+", SELECT, RELOAD, SHOW VIEW, TRIGGER, EVENT"); err != nil {
		t.Fatal(err)
	}
	load0 := machineLoad(base)
	fillStart := time.Now()
	e.fill(int64(mb) << 20)
	t.Logf("filled %d MiB of tables in %s", mb, time.Since(fillStart).Round(time.Second))
	e.startWriters()
	defer e.stopWriters()
	quietFrom := time.Now()
	time.Sleep(10 * time.Second) // a quiet window of commits to compare with
	e.quiet = e.window(quietFrom, time.Now())
	e.runHotstandby("s-hotstandby", 11)
	e.runHotstandby("s-hotstandby-keys", 14, "--defer-indexes")
	e.runMariadbDump()
	e.runMydumper()
	e.report(os.Stdout, mb, load0, machineLoad(base))
}

type cloneEnv struct {
	t        *testing.T
	base     string
	bin      string
	threads  int
	password string
	master   *sandbox.Server

	mu      sync.Mutex // mu guards commits
	commits []commitAt

	stop    chan struct{}
	writers sync.WaitGroup

	quiet   latency
	results []cloneRun
}

type commitAt struct {
	at time.Time
	d  time.Duration
}

type latency struct {
	n        int
	p99, max time.Duration
}

// cloneRun is one tool's run.
type cloneRun struct {
	tool              string
	copy, catchUp     time.Duration
	during            latency
	snapshotWait      string // hotstandby only: its measured commit block
	dumpBytes         int64
	standbyGTID, note string
}

// fill creates 16 tables of about size bytes in all, with a secondary index.
func (e *cloneEnv) fill(size int64) {
	const tables = 16
	const rowBytes = 420
	perTable := size / tables / rowBytes
	mustExec(e.t, e.master, "CREATE DATABASE bench")
	for i := range tables {
		mustExec(e.t, e.master, fmt.Sprintf(`CREATE TABLE bench.t%02d (id BIGINT PRIMARY KEY, k INT NOT NULL, c CHAR(120) NOT NULL,
			pad VARCHAR(255) NOT NULL, d DECIMAL(12,2), ts TIMESTAMP(6) NULL, b VARBINARY(16), KEY k (k))`, i))
		for from := int64(1); from <= perTable; from += 100000 {
			to := min(from+99999, perTable)
			mustExec(e.t, e.master, fmt.Sprintf(`INSERT INTO bench.t%02d SELECT seq, seq %% 10007, REPEAT(CHAR(97 + seq %% 26), 120),
				REPEAT(SHA1(seq), 6), seq / 100, FROM_UNIXTIME(1700000000 + seq), UNHEX(MD5(seq)) FROM bench.seq_%d_to_%d`, i, from, to))
		}
	}
	mustExec(e.t, e.master, "CREATE TABLE bench.w (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, at DATETIME(6))")
}

// startWriters runs 4 clients: single-row inserts and updates of the big
// tables, each commit's latency recorded.
func (e *cloneEnv) startWriters() {
	e.stop = make(chan struct{})
	db, err := sql.Open("mysql", e.master.RootDSN("bench"))
	if err != nil {
		e.t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	for i := range 4 {
		e.writers.Add(1)
		go func() {
			defer e.writers.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				select {
				case <-e.stop:
					return
				default:
				}
				q := fmt.Sprintf("INSERT INTO w (c, at) VALUES (%d, NOW(6))", r.IntN(1000))
				if r.IntN(2) == 0 {
					q = fmt.Sprintf("UPDATE t%02d SET k = k + 1 WHERE id = %d", r.IntN(16), 1+r.IntN(1000))
				}
				start := time.Now()
				if _, err := db.Exec(q); err != nil {
					e.t.Errorf("writer: %v", err)
					return
				}
				d := time.Since(start)
				e.mu.Lock()
				e.commits = append(e.commits, commitAt{start, d})
				e.mu.Unlock()
				time.Sleep(2 * time.Millisecond) // a steady rate, not a saturating one
			}
		}()
	}
	e.t.Cleanup(func() { db.Close() })
}

func (e *cloneEnv) stopWriters() {
	if e.stop != nil {
		close(e.stop)
		e.writers.Wait()
		e.stop = nil
	}
}

// window is the commit latency of commits that started in [from, to).
func (e *cloneEnv) window(from, to time.Time) latency {
	e.mu.Lock()
	var ds []time.Duration
	for _, c := range e.commits {
		if !c.at.Before(from) && c.at.Before(to) {
			ds = append(ds, c.d)
		}
	}
	e.mu.Unlock()
	slices.Sort(ds)
	if len(ds) == 0 {
		return latency{}
	}
	return latency{n: len(ds), p99: percentile(ds, 99), max: ds[len(ds)-1]}
}

// newStandby starts an empty standby.
func (e *cloneEnv) newStandby(name string, id uint32) *sandbox.Server {
	s := startServer(e.t, e.base, name, id, false, "innodb_buffer_pool_size=256M")
	if err := s.CreateUser(context.Background(), "applier", e.password, "ALL PRIVILEGES"); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// waitCaughtUp waits until the standby's gtid_binlog_pos equals the
// master's (the writers are stopped).
func (e *cloneEnv) waitCaughtUp(s *sandbox.Server, what string) string {
	var got string
	harness.Poll(e.t, what+" to catch up", 30*time.Minute, 50*time.Millisecond, func() (bool, error) {
		want, err := e.master.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
		if err != nil {
			return false, err
		}
		got, _ = s.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
		return got == want, nil
	})
	return got
}

// compare checks that the standby's tables equal the master's (CHECKSUM
// TABLE; no generated columns here).
func (e *cloneEnv) compare(s *sandbox.Server, tool string) {
	for i := range 16 {
		q := fmt.Sprintf("CHECKSUM TABLE bench.t%02d", i)
		m, err1 := row(e.master, q)
		o, err2 := row(s, q)
		if err1 != nil || err2 != nil || m["Checksum"] != o["Checksum"] {
			e.t.Fatalf("%s: bench.t%02d differs from the master (%v %v %v %v)", tool, i, m, o, err1, err2)
		}
	}
}

var blockedRE = regexp.MustCompile(`commits on the master waited (\S+) for the snapshot \(BLOCK_COMMIT waited (\S+) of it`)

func (e *cloneEnv) runHotstandby(name string, id uint32, extra ...string) {
	t := e.t
	syncDisks()
	s := e.newStandby(name, id)
	pwFile := filepath.Join(e.base, "pw")
	os.WriteFile(pwFile, []byte(e.password+"\n"), 0o600)
	cfg := filepath.Join(e.base, name+".toml")
	port, _ := sandbox.FreePort()
	os.WriteFile(cfg, []byte(fmt.Sprintf(`data_dir = %q
server_id = 9001
[master]
host = "127.0.0.1"
port = %d
user = "repl"
password_file = %q
[semisync]
enabled = false
[status]
listen = "127.0.0.1:%d"
[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q
`, filepath.Join(e.base, name+"-agent"), e.master.Port(), pwFile, port, s.Port(), pwFile)), 0o600)
	start := time.Now()
	out, err := exec.Command(e.bin, append([]string{"clone", "--config", cfg, "--workers", fmt.Sprint(e.threads)}, extra...)...).CombinedOutput()
	copied := time.Now()
	if err != nil {
		t.Fatalf("hotstandby clone: %v\n%s", err, out)
	}
	run := cloneRun{tool: strings.Replace(fmt.Sprintf("hotstandby clone --workers %d %s, then run", e.threads, strings.Join(extra, " ")), " ,", ",", 1), copy: copied.Sub(start), during: e.window(start, copied)}
	if m := blockedRE.FindStringSubmatch(string(out)); m != nil {
		run.snapshotWait = m[1] + " (BLOCK_COMMIT " + m[2] + ")"
	}
	agent := exec.Command(e.bin, "run", "--config", cfg)
	logf, _ := os.Create(filepath.Join(e.base, name+"-agent.log"))
	agent.Stdout, agent.Stderr = logf, logf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { agent.Process.Kill(); agent.Wait(); logf.Close() }()
	e.stopWriters()
	run.standbyGTID = e.waitCaughtUp(s, "hotstandby")
	run.catchUp = time.Since(copied)
	e.compare(s, "hotstandby")
	e.results = append(e.results, run)
	agent.Process.Kill()
	s.Stop(context.Background())
	e.startWriters()
}

// startNativeReplica points s at the master from file:pos and starts it.
func (e *cloneEnv) startNativeReplica(s *sandbox.Server, file string, pos int64) {
	mustExec(e.t, s, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='%s', MASTER_PASSWORD='%s', MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d",
		e.master.Port(), replUser, e.password, file, pos))
	mustExec(e.t, s, "START SLAVE")
}

var changeMasterRE = regexp.MustCompile(`MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+)`)

func (e *cloneEnv) runMariadbDump() {
	t := e.t
	syncDisks()
	s := e.newStandby("s-mariadb-dump", 12)
	start := time.Now()
	dump := exec.Command("mariadb-dump", "--socket="+e.master.Socket(), "-uroot", "--single-transaction", "--master-data=2", "--databases", "bench")
	load := exec.Command("mariadb", "--socket="+s.Socket(), "-uroot", "--init-command=SET SESSION sql_log_bin=0")
	pipe, _ := dump.StdoutPipe()
	// The dump's head names the position (--master-data=2: as a comment).
	var file string
	var pos int64
	pr, pw, _ := os.Pipe()
	load.Stdin = pr
	var dumpErr, loadErr strings.Builder
	dump.Stderr, load.Stderr = &dumpErr, &loadErr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	if err := dump.Start(); err != nil {
		t.Fatal(err)
	}
	var n int64
	br := bufio.NewReaderSize(pipe, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if file == "" {
			if m := changeMasterRE.FindSubmatch(line); m != nil {
				file = string(m[1])
				fmt.Sscan(string(m[2]), &pos)
			}
		}
		n += int64(len(line))
		if _, werr := pw.Write(line); werr != nil {
			t.Fatal(werr)
		}
		if err != nil {
			break
		}
	}
	pw.Close()
	if err := dump.Wait(); err != nil {
		t.Fatalf("mariadb-dump: %v %s", err, dumpErr.String())
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("mariadb: %v %s", err, loadErr.String())
	}
	pr.Close()
	copied := time.Now()
	if file == "" {
		t.Fatal("mariadb-dump wrote no CHANGE MASTER position")
	}
	run := cloneRun{tool: "mariadb-dump --single-transaction --master-data | mariadb, then a native replica", copy: copied.Sub(start), during: e.window(start, copied), dumpBytes: n}
	e.startNativeReplica(s, file, pos)
	e.stopWriters()
	run.standbyGTID = e.waitCaughtUp(s, "mariadb-dump's replica")
	run.catchUp = time.Since(copied)
	e.compare(s, "mariadb-dump")
	e.results = append(e.results, run)
	s.Stop(context.Background())
	e.startWriters()
}

var metadataRE = regexp.MustCompile(`Log: (\S+)\s+Pos: (\d+)`)

func (e *cloneEnv) runMydumper() {
	t := e.t
	syncDisks()
	s := e.newStandby("s-mydumper", 13)
	dir := filepath.Join(e.base, "mydumper")
	start := time.Now()
	threads := fmt.Sprint(e.threads)
	if out, err := exec.Command("mydumper", "--socket", e.master.Socket(), "-u", "root", "-t", threads, "--trx-consistency-only", "-B", "bench", "-o", dir).CombinedOutput(); err != nil {
		t.Fatalf("mydumper: %v %s", err, out)
	}
	dumped := time.Now()
	if out, err := exec.Command("myloader", "--socket", s.Socket(), "-u", "root", "-t", threads, "-d", dir).CombinedOutput(); err != nil {
		t.Fatalf("myloader: %v %s", err, out)
	}
	copied := time.Now()
	meta, err := os.ReadFile(filepath.Join(dir, "metadata"))
	if err != nil {
		t.Fatal(err)
	}
	m := metadataRE.FindSubmatch(meta)
	if m == nil {
		t.Fatalf("mydumper metadata has no position:\n%s", meta)
	}
	var pos int64
	fmt.Sscan(string(m[2]), &pos)
	var size int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() {
			size += fi.Size()
		}
		return nil
	})
	run := cloneRun{tool: fmt.Sprintf("mydumper -t %d | myloader -t %d, then a native replica", e.threads, e.threads), copy: copied.Sub(start),
		during: e.window(start, copied), dumpBytes: size, note: fmt.Sprintf("dump %s, load %s", dumped.Sub(start).Round(time.Millisecond), copied.Sub(dumped).Round(time.Millisecond))}
	e.startNativeReplica(s, string(m[1]), pos)
	e.stopWriters()
	run.standbyGTID = e.waitCaughtUp(s, "mydumper's replica")
	run.catchUp = time.Since(copied)
	e.compare(s, "mydumper")
	e.results = append(e.results, run)
	s.Stop(context.Background())
}

func (e *cloneEnv) report(w *os.File, mb int, load0, load1 string) {
	fmt.Fprintf(w, "\nClone: %d MiB in 16 tables, %d threads, 4 clients committing throughout; load before: %s; after: %s\n", mb, e.threads, load0, load1)
	fmt.Fprintf(w, "master commit latency without a copy: %d commits, p99 %.2f ms, max %.2f ms\n", e.quiet.n, ms(e.quiet.p99), ms(e.quiet.max))
	var rows [][]string
	ref := e.results[0].copy + e.results[0].catchUp
	for _, r := range e.results {
		total := r.copy + r.catchUp
		rows = append(rows, []string{r.tool, fmt.Sprintf("%.1f", r.copy.Seconds()), fmt.Sprintf("%.1f", r.catchUp.Seconds()), fmt.Sprintf("%.1f", total.Seconds()),
			fmt.Sprintf("%.2f", total.Seconds()/ref.Seconds()), fmt.Sprintf("%.2f / %.2f", ms(r.during.p99), ms(r.during.max)), orDash(r.snapshotWait), r.note})
	}
	printTable(w, []string{"tool", "copy s", "catch-up s", "total s", "x hotstandby", "commit p99 / max ms during the copy", "snapshot commit wait", "note"}, rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
