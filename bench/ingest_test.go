package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
)

// ingestRun is one timed copy of the whole binlog.
type ingestRun struct {
	secs float64
	rss  int64 // agent only: VmHWM in KiB
}

// ingestEnv is the master with its generated binlog and the replica server.
type ingestEnv struct {
	master, replica *sandbox.Server
	password        string
	base            string // scratch directory for the runs' outputs
	files           []binlogFile
	end             binlogEnd
	bytes           int64 // sum of the binlog files' sizes
	events          int64 // events in the binlog files
	tls             *benchTLS
}

func TestBenchIngest(t *testing.T) {
	requireBench(t)
	targetMiB := envInt(t, "HOTSTANDBY_BENCH_MB", 512)
	runs := envInt(t, "HOTSTANDBY_BENCH_RUNS", 3)
	bin := buildAgent(t)
	base := t.TempDir()
	e := &ingestEnv{base: base, password: "pw-" + harness.RandHex(12), tls: newBenchTLS(t, base)}
	e.master = startServerTLS(t, base, "master", 1, true, e.tls.server(),
		"rpl_semi_sync_master_enabled=OFF", "max_binlog_size=1G")
	e.replica = startServer(t, base, "replica", 2, false)
	if err := e.master.CreateUser(context.Background(), replUser, e.password, replPrivs); err != nil {
		t.Fatal(err)
	}

	before := machineLoad(base)
	began := time.Now()
	generateBinlog(t, e.master, int64(targetMiB)<<20)
	e.files = binaryLogs(t, e.master)
	e.end = masterEnd(t, e.master)
	for _, f := range e.files {
		e.bytes += f.Size
	}
	e.events = countEvents(t, filepath.Dir(e.master.BinlogBase()), e.files)
	t.Logf("generated %d files, %.1f MiB, %d events, end %s, in %s",
		len(e.files), float64(e.bytes)/(1<<20), e.events, e.end, time.Since(began).Round(time.Second))

	tools := []struct {
		name string
		run  func(*testing.T) ingestRun
	}{
		{"hotstandby", func(t *testing.T) ingestRun { return e.runAgent(t, bin) }},
		{"mariadb-binlog --raw", e.runMariadbBinlog},
		{"native replica IO thread", e.runNative},
	}
	results := make([][]ingestRun, len(tools))
	for i := range runs {
		for j, tool := range tools {
			r := tool.run(t)
			t.Logf("run %d %-26s %7.2f s  %7.1f MiB/s", i+1, tool.name, r.secs, float64(e.bytes)/(1<<20)/r.secs)
			results[j] = append(results[j], r)
		}
	}
	e.report(os.Stdout, tools[0].name, results, func(j int) string { return tools[j].name })
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(base))
}

// report prints the table of medians and the ratios.
func (e *ingestEnv) report(w io.Writer, agentName string, results [][]ingestRun, name func(int) string) {
	mib := float64(e.bytes) / (1 << 20)
	var rows [][]string
	secs := make([]float64, len(results))
	var rss int64
	for j, rs := range results {
		var xs []float64
		for _, r := range rs {
			xs = append(xs, r.secs)
			rss = max(rss, r.rss)
		}
		secs[j] = median(xs)
		all := make([]string, len(xs))
		for i, x := range xs {
			all[i] = strconv.FormatFloat(x, 'f', 2, 64)
		}
		rows = append(rows, []string{name(j), fmt.Sprintf("%.2f", secs[j]), fmt.Sprintf("%.1f", mib/secs[j]),
			fmt.Sprintf("%.0f", float64(e.events)/secs[j]), strings.Join(all, " ")})
	}
	fmt.Fprintf(w, "\nIngest: %s to %s, %d file(s), %.1f MiB, %d events; median of %d runs; %s\n",
		e.files[0].Name+":4", e.end, len(e.files), mib, e.events, len(results[0]), e.tls.label())
	printTable(w, []string{"tool", "seconds", "MiB/s", "events/s", "runs (s)"}, rows)
	fmt.Fprintf(w, "%s throughput / %s: %.2f\n", agentName, name(1), secs[1]/secs[0])
	fmt.Fprintf(w, "%s throughput / %s: %.2f\n", agentName, name(2), secs[2]/secs[0])
	fmt.Fprintf(w, "%s peak RSS (VmHWM, highest of the runs): %.1f MiB\n", agentName, float64(rss)/1024)
}

// generateBinlog fills the master's binlog to at least target bytes: big
// multi-row INSERTs of 1-4 KB rows made by the server from the SEQUENCE
// engine, 150 single-row INSERTs and 50 single-row UPDATEs from four clients
// after each, and a TRUNCATE now and then that keeps the table small.
func generateBinlog(t *testing.T, m *sandbox.Server, target int64) {
	t.Helper()
	mustExec(t, m, "CREATE DATABASE bench")
	mustExec(t, m, `CREATE TABLE bench.wide (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL,
		payload VARCHAR(4096) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=latin1`)
	mustExec(t, m, `CREATE TABLE bench.small (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT NOT NULL,
		note VARCHAR(100) NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=latin1`)
	db, err := sql.Open("mysql", m.RootDSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	ctx := context.Background()
	for iter := 1; ; iter++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO wide (k, payload)
			SELECT seq, REPEAT(MD5(CONCAT(seq, ':', ?)), 32 + (seq * 7 + ?) % 96) FROM seq_1_to_1000`, iter, iter); err != nil {
			t.Fatal(err)
		}
		if err := smallCommits(ctx, db, iter); err != nil {
			t.Fatal(err)
		}
		if iter%32 == 0 {
			if _, err := db.ExecContext(ctx, "TRUNCATE TABLE wide"); err != nil {
				t.Fatal(err)
			}
		}
		if iter%4 == 0 {
			var size int64
			for _, f := range binaryLogs(t, m) {
				size += f.Size
			}
			if size >= target {
				return
			}
		}
	}
}

// smallCommits runs 200 single-row autocommit statements from 4 clients.
func smallCommits(ctx context.Context, db *sql.DB, iter int) error {
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for c := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n := iter*1000 + c*100 + i
				var err error
				if i%4 == 3 {
					_, err = db.ExecContext(ctx, "UPDATE small SET c = c + 1 WHERE id = ?", n%(iter*150)+1)
				} else {
					_, err = db.ExecContext(ctx, "INSERT INTO small (c, note) VALUES (?, ?)", n, strings.Repeat("n", n%100))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// countEvents reads the master's binlog files and counts their events,
// format descriptions included. Each file must end on a whole event.
func countEvents(t *testing.T, dir string, files []binlogFile) int64 {
	t.Helper()
	var n int64
	for _, f := range files {
		r, err := relay.OpenSegment(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		n++ // the format description OpenSegment read
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("master binlog %s: %v", f.Name, err)
			}
			n++
		}
		if r.Offset() != f.Size {
			t.Fatalf("master binlog %s: events end at %d, file size %d", f.Name, r.Offset(), f.Size)
		}
		r.Close()
	}
	return n
}

// runAgent times hotstandby from process start until its status says it
// received everything up to the master's end.
func (e *ingestEnv) runAgent(t *testing.T, bin string) ingestRun {
	t.Helper()
	dir, err := os.MkdirTemp(e.base, "agent-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	syncDisks()
	p := startAgent(t, bin, agentSpec{
		Dir: dir, Master: e.master, Password: e.password, ServerID: 9001,
		Start: "file:" + e.files[0].Name + ":4", SemiSync: false, MasterTLS: e.tls.agentMaster(),
	})
	st := p.waitStatus(t, "the agent to receive up to "+e.end.String(), 10*time.Minute, 10*time.Millisecond,
		func(st agentStatus) bool { return st.at(e.end) })
	secs := time.Since(p.started).Seconds()
	rss := p.peakRSS(t)
	p.stop(t)
	p.reviewLog(t, fmt.Sprintf("ingest-%s", filepath.Base(dir)))
	segs, err := relay.ListSegments(filepath.Join(dir, "data", "relay"))
	if err != nil {
		t.Fatal(err)
	}
	var relayBytes int64
	for _, s := range segs {
		relayBytes += s.Size
	}
	t.Logf("agent: received %s, %d events and %d bytes received, relay log %d segments %d bytes, %d reconnects",
		st.received(), u64(st.Stream.Events), u64(st.Stream.Bytes), len(segs), relayBytes, u64(st.Stream.Reconnects))
	return ingestRun{secs: secs, rss: rss}
}

// runMariadbBinlog times mariadb-binlog copying every file in raw mode.
func (e *ingestEnv) runMariadbBinlog(t *testing.T) ingestRun {
	t.Helper()
	dir, err := os.MkdirTemp(e.base, "mariadb-binlog-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	extra := filepath.Join(dir, "client.cnf")
	if err := os.WriteFile(extra, []byte("[client]\npassword="+e.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--defaults-extra-file=" + extra,
		"--read-from-remote-server", "--raw", "--to-last-log",
		"--host=127.0.0.1", "--port=" + strconv.Itoa(e.master.Port()), "--user=" + replUser,
		"--result-file=" + out + "/"}, e.tls.clientArgs()...)
	cmd := exec.Command("mariadb-binlog", append(args, e.files[0].Name)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	syncDisks()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("mariadb-binlog: %v\n%s", err, stderr.String())
	}
	secs := time.Since(start).Seconds()
	if stderr.Len() > 0 {
		t.Logf("mariadb-binlog stderr: %s", stderr.String())
	}
	for _, f := range e.files {
		fi, err := os.Stat(filepath.Join(out, f.Name))
		if err != nil || fi.Size() != f.Size {
			t.Fatalf("mariadb-binlog copy of %s: %v (size %v, want %d)", f.Name, err, fi, f.Size)
		}
	}
	return ingestRun{secs: secs}
}

// runNative times a native replica's IO thread from START SLAVE IO_THREAD
// until it has read up to the master's end.
func (e *ingestEnv) runNative(t *testing.T) ingestRun {
	t.Helper()
	r := e.replica
	_ = r.Exec(context.Background(), "STOP SLAVE")
	mustExec(t, r, "RESET SLAVE ALL")
	mustExec(t, r, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_LOG_FILE=?, MASTER_LOG_POS=4, MASTER_USE_GTID=no`+e.tls.changeMaster(), e.master.Port(), replUser, e.password, e.files[0].Name)
	syncDisks()
	start := time.Now()
	mustExec(t, r, "START SLAVE IO_THREAD")
	harness.Poll(t, "the native replica to read up to "+e.end.String(), 10*time.Minute, 10*time.Millisecond, func() (bool, error) {
		m, err := row(r, "SHOW SLAVE STATUS")
		if err != nil || m == nil {
			return false, err
		}
		if m["Last_IO_Errno"] != "0" {
			return false, fmt.Errorf("IO thread error %s: %s", m["Last_IO_Errno"], m["Last_IO_Error"])
		}
		return m["Master_Log_File"] == e.end.File && m["Read_Master_Log_Pos"] == strconv.FormatUint(e.end.Pos, 10), nil
	})
	secs := time.Since(start).Seconds()
	mustExec(t, r, "STOP SLAVE IO_THREAD")
	mustExec(t, r, "RESET SLAVE ALL") // deletes the relay logs
	return ingestRun{secs: secs}
}
