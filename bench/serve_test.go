package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// TestBenchServe times a native MariaDB replica's IO thread reading the
// same binlog (HOTSTANDBY_BENCH_MB, 512 MiB by default) from the master and
// from the agent's binlog server (its relay log, after the agent received
// all of it), alternating, HOTSTANDBY_BENCH_RUNS times each. Run it alone:
// `flock /tmp/hotstandby-bench.lock make bench-serve`.
func TestBenchServe(t *testing.T) {
	requireBench(t)
	targetMiB := envInt(t, "HOTSTANDBY_BENCH_MB", 512)
	runs := envInt(t, "HOTSTANDBY_BENCH_RUNS", 3)
	bin := buildAgent(t)
	base := t.TempDir()
	pw := "pw-" + harness.RandHex(12)
	master := startServer(t, base, "master", 1, true, "rpl_semi_sync_master_enabled=OFF", "max_binlog_size=256M")
	replica := startServer(t, base, "replica", 2, false)
	if err := master.CreateUser(context.Background(), replUser, pw, replPrivs); err != nil {
		t.Fatal(err)
	}
	before := machineLoad(base)
	generateBinlog(t, master, int64(targetMiB)<<20)
	files := binaryLogs(t, master)
	end := masterEnd(t, master)
	var bytes int64
	for _, f := range files {
		bytes += f.Size
	}
	mib := float64(bytes) / (1 << 20)
	t.Logf("generated %d files, %.1f MiB, end %s", len(files), mib, end)

	// The agent receives everything first: the serving run reads only its
	// relay log, as a read replica catching up would.
	servePort, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	servePW := "down-" + harness.RandHex(12)
	if err := os.WriteFile(filepath.Join(dir, "serve.pw"), []byte(servePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgent(t, bin, agentSpec{Dir: dir, Master: master, Password: pw, ServerID: 9001,
		Start: "file:" + files[0].Name + ":4",
		Extra: fmt.Sprintf("\n[serve]\nlisten = \":%d\"\nuser = \"downstream\"\npassword_file = %q\n", servePort, filepath.Join(dir, "serve.pw"))})
	p.waitStatus(t, "the agent to receive up to "+end.String(), 10*time.Minute, 10*time.Millisecond,
		func(st agentStatus) bool { return st.at(end) })
	if prof := os.Getenv("HOTSTANDBY_BENCH_PROFILE"); prof != "" {
		// A profile of serving only: the same agent again, from its
		// checkpoint, with the profile on from its start.
		p.stop(t)
		t.Setenv("HOTSTANDBY_CPUPROFILE", prof) // the agent inherits the environment
		p = startAgent(t, bin, agentSpec{Dir: dir, Master: master, Password: pw, ServerID: 9001,
			Start: "file:" + files[0].Name + ":4",
			Extra: fmt.Sprintf("\n[serve]\nlisten = \":%d\"\nuser = \"downstream\"\npassword_file = %q\n", servePort, filepath.Join(dir, "serve.pw"))})
		p.waitStatus(t, "the restarted agent to stream", time.Minute, 10*time.Millisecond,
			func(st agentStatus) bool { return st.Stream.State == "streaming" && st.at(end) })
	}

	sources := []struct {
		name       string
		port       int
		user, pass string
	}{
		{"native replica IO thread <- agent", servePort, "downstream", servePW},
		{"native replica IO thread <- master", master.Port(), replUser, pw},
	}
	secs := make([][]float64, len(sources))
	// CPU seconds per run of the serving process (the agent or the
	// master) and of the replica.
	srvCPU, repCPU := make([][]float64, len(sources)), make([][]float64, len(sources))
	pids := []int{p.Pid(), master.PID()}
	for i := range runs {
		for j, src := range sources {
			c0, r0 := procCPU(t, pids[j]), procCPU(t, replica.PID())
			s := readAll(t, replica, src.port, src.user, src.pass, files[0].Name, end)
			c, r := procCPU(t, pids[j])-c0, procCPU(t, replica.PID())-r0
			secs[j] = append(secs[j], s)
			srvCPU[j], repCPU[j] = append(srvCPU[j], c), append(repCPU[j], r)
			t.Logf("run %d %-36s %7.2f s  %7.1f MiB/s  CPU s: server %.2f, replica %.2f", i+1, src.name, s, mib/s, c, r)
		}
	}
	var rows [][]string
	med := make([]float64, len(sources))
	for j, src := range sources {
		med[j] = median(secs[j])
		all := ""
		for _, s := range secs[j] {
			all += strconv.FormatFloat(s, 'f', 2, 64) + " "
		}
		rows = append(rows, []string{src.name, fmt.Sprintf("%.2f", med[j]), fmt.Sprintf("%.1f", mib/med[j]), all,
			fmt.Sprintf("%.2f", median(srvCPU[j])), fmt.Sprintf("%.2f", median(repCPU[j]))})
	}
	fmt.Printf("\nServe: %s:4 to %s, %d file(s), %.1f MiB; median of %d runs\n", files[0].Name, end, len(files), mib, runs)
	printTable(os.Stdout, []string{"source", "seconds", "MiB/s", "runs (s)", "serving process CPU s", "replica CPU s"}, rows)
	fmt.Printf("agent serving throughput / master serving throughput: %.2f\n", med[1]/med[0])
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(base))
	p.reviewLog(t, "serve")
}

// readAll times the replica's IO thread from START SLAVE IO_THREAD until it
// has read up to end from the server at port, starting at file:4.
func readAll(t *testing.T, r *sandbox.Server, port int, user, pass, file string, end binlogEnd) float64 {
	t.Helper()
	_ = r.Exec(context.Background(), "STOP SLAVE")
	mustExec(t, r, "RESET SLAVE ALL")
	mustExec(t, r, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_LOG_FILE=?, MASTER_LOG_POS=4, MASTER_USE_GTID=no`, port, user, pass, file)
	syncDisks()
	start := time.Now()
	mustExec(t, r, "START SLAVE IO_THREAD")
	harness.Poll(t, fmt.Sprintf("the replica to read up to %s from port %d", end, port), 10*time.Minute, 10*time.Millisecond, func() (bool, error) {
		m, err := row(r, "SHOW SLAVE STATUS")
		if err != nil || m == nil {
			return false, err
		}
		if m["Last_IO_Errno"] != "0" {
			return false, fmt.Errorf("IO thread error %s: %s", m["Last_IO_Errno"], m["Last_IO_Error"])
		}
		return m["Master_Log_File"] == end.File && m["Read_Master_Log_Pos"] == strconv.FormatUint(end.Pos, 10), nil
	})
	secs := time.Since(start).Seconds()
	mustExec(t, r, "STOP SLAVE IO_THREAD")
	mustExec(t, r, "RESET SLAVE ALL") // deletes the relay logs
	return secs
}

// TestBenchServeFanout measures the master's semi-sync commit rate (16
// clients, the agent its only semi-sync replica) with no downstream
// replica, with 4 native replicas' IO threads reading from the agent's
// binlog server at the same time, and with the same 4 reading from the
// master directly (what an operator would do without the agent), each
// downstream case once more with the 4 mariadbd processes at nice 19 (they
// stand for other hosts), in turn, HOTSTANDBY_BENCH_RUNS rounds of
// HOTSTANDBY_BENCH_COMMITS commits. Each round also reports the CPU time
// of the agent, the master and the 4 replicas. With
// HOTSTANDBY_BENCH_PROFILE=FILE the agent writes a CPU profile of the
// whole run there. Run it alone: `make bench-serve`.
func TestBenchServeFanout(t *testing.T) {
	requireBench(t)
	runs := envInt(t, "HOTSTANDBY_BENCH_RUNS", 3)
	commits := envInt(t, "HOTSTANDBY_BENCH_COMMITS", 20000)
	bin := buildAgent(t)
	base := t.TempDir()
	pw := "pw-" + harness.RandHex(12)
	master := startServer(t, base, "master", 1, true, "rpl_semi_sync_master_wait_point=AFTER_SYNC", "rpl_semi_sync_master_timeout=10000")
	if err := master.CreateUser(context.Background(), replUser, pw, replPrivs); err != nil {
		t.Fatal(err)
	}
	mustExec(t, master, "SET GLOBAL rpl_semi_sync_master_enabled=OFF")
	mustExec(t, master, "CREATE DATABASE bench")
	mustExec(t, master, "CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT NOT NULL, payload VARCHAR(100) NOT NULL) ENGINE=InnoDB")
	mustExec(t, master, "SET GLOBAL rpl_semi_sync_master_enabled=ON")

	servePort, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	servePW := "down-" + harness.RandHex(12)
	if err := os.WriteFile(filepath.Join(dir, "serve.pw"), []byte(servePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if prof := os.Getenv("HOTSTANDBY_BENCH_PROFILE"); prof != "" {
		t.Setenv("HOTSTANDBY_CPUPROFILE", prof) // the agent inherits the environment
	}
	p := startAgent(t, bin, agentSpec{Dir: dir, Master: master, Password: pw, ServerID: 9001, Start: "current", SemiSync: true,
		Extra: fmt.Sprintf("\n[serve]\nlisten = \":%d\"\nuser = \"downstream\"\npassword_file = %q\n", servePort, filepath.Join(dir, "serve.pw"))})
	p.waitStatus(t, "the agent to stream", 30*time.Second, 20*time.Millisecond,
		func(st agentStatus) bool { return st.Stream.State == "streaming" })
	e := &semiEnv{master: master}
	e.waitSemiSyncReplica(t)

	var replicas, shmReplicas []*sandbox.Server
	for i := range 4 {
		replicas = append(replicas, startServer(t, base, fmt.Sprintf("replica%d", i), uint32(10+i), false))
	}
	// Four more whose datadirs (relay logs included) are in tmpfs: like
	// replicas on other hosts, they do not write to the disk that the
	// master and the agent fsync on.
	shm, err := os.MkdirTemp("/dev/shm", "hsbench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	for i := range 4 {
		shmReplicas = append(shmReplicas, startServer(t, shm, fmt.Sprintf("replica%d", i), uint32(20+i), false,
			"innodb_flush_method=fsync", "innodb_use_native_aio=0")) // tmpfs has no O_DIRECT
	}
	db, err := sql.Open("mysql", master.RootDSN("bench"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	noTx := statusInt(t, master, "Rpl_semi_sync_master_no_tx")
	before := machineLoad(base)
	type source struct {
		name       string
		port       int // 0: no downstream replica
		user, pass string
		nice       int
		replicas   []*sandbox.Server
	}
	sources := []source{
		{name: "no downstream replica"},
		{"4 replicas' IO threads reading from the agent", servePort, "downstream", servePW, 0, replicas},
		{"4 replicas' IO threads reading from the master", master.Port(), replUser, pw, 0, replicas},
		{"4 replicas reading from the agent, replicas at nice 19", servePort, "downstream", servePW, 19, replicas},
		{"4 replicas reading from the master, replicas at nice 19", master.Port(), replUser, pw, 19, replicas},
		{"4 replicas reading from the agent, at nice 19, files in tmpfs", servePort, "downstream", servePW, 19, shmReplicas},
		{"4 replicas reading from the master, at nice 19, files in tmpfs", master.Port(), replUser, pw, 19, shmReplicas},
	}
	// agent is the agent's CPU seconds; ack and fsync its mean semi-sync
	// ACK latency and relay fdatasync time in the round, in ms.
	type roundCPU struct{ agent, master, replicas, ack, fsync float64 }
	rates := make([][]float64, len(sources))
	cpus := make([][]roundCPU, len(sources))
	for round := range runs {
		for j, src := range sources {
			if src.port != 0 {
				from := masterEnd(t, master)
				for _, r := range src.replicas {
					pointReplica(t, r, src.port, src.user, src.pass, from)
				}
				harness.Poll(t, "4 replicas' IO threads running against port "+strconv.Itoa(src.port), 60*time.Second, 20*time.Millisecond, func() (bool, error) {
					for _, r := range src.replicas {
						m, err := row(r, "SHOW SLAVE STATUS")
						if err != nil || m == nil || m["Slave_IO_Running"] != "Yes" {
							return false, err
						}
					}
					if src.port != servePort {
						return true, nil
					}
					n, err := servedReplicas(p)
					return err == nil && n == 4, nil
				})
				for _, r := range src.replicas {
					reniceAll(t, r.PID(), src.nice)
				}
			}
			m0 := agentMetrics(t, p)
			cpu0 := roundCPU{agent: procCPU(t, p.Pid()), master: procCPU(t, master.PID())}
			for _, r := range src.replicas {
				cpu0.replicas += procCPU(t, r.PID())
			}
			elapsed, _, err := commitLoad(db, 16, commits)
			if err != nil {
				t.Fatal(err)
			}
			c := roundCPU{agent: procCPU(t, p.Pid()) - cpu0.agent, master: procCPU(t, master.PID()) - cpu0.master}
			for _, r := range src.replicas {
				c.replicas += procCPU(t, r.PID())
			}
			c.replicas -= cpu0.replicas
			m1 := agentMetrics(t, p)
			mean := func(name string) float64 {
				n := m1[name+"_count"] - m0[name+"_count"]
				if n == 0 {
					return 0
				}
				return (m1[name+"_sum"] - m0[name+"_sum"]) / n * 1000
			}
			c.ack, c.fsync = mean("hotstandby_semisync_ack_latency_seconds"), mean("hotstandby_relay_fsync_duration_seconds")
			rate := float64(commits) / elapsed.Seconds()
			rates[j] = append(rates[j], rate)
			cpus[j] = append(cpus[j], c)
			t.Logf("round %d, %s: %.0f commits/s in %.2f s; CPU s: agent %.2f, master %.2f, replicas %.2f; agent mean ACK latency %.3f ms, fsync %.3f ms",
				round+1, src.name, rate, elapsed.Seconds(), c.agent, c.master, c.replicas, c.ack, c.fsync)
			if src.port != 0 {
				for _, r := range src.replicas {
					mustExec(t, r, "STOP SLAVE IO_THREAD")
					reniceAll(t, r.PID(), 0)
				}
			}
		}
	}
	if moved := statusInt(t, master, "Rpl_semi_sync_master_no_tx") - noTx; moved != 0 {
		t.Errorf("Rpl_semi_sync_master_no_tx moved by %d: the master fell back to async; the run is invalid", moved)
	}
	var rows [][]string
	med := make([]float64, len(sources))
	for j, src := range sources {
		med[j] = median(rates[j])
		all := ""
		for _, r := range rates[j] {
			all += strconv.FormatFloat(r, 'f', 0, 64) + " "
		}
		var ag, ms, rs, ack, fs []float64
		for _, c := range cpus[j] {
			ag, ms, rs = append(ag, c.agent), append(ms, c.master), append(rs, c.replicas)
			ack, fs = append(ack, c.ack), append(fs, c.fsync)
		}
		rows = append(rows, []string{src.name, fmt.Sprintf("%.0f", med[j]), all,
			fmt.Sprintf("%.2f", median(ag)), fmt.Sprintf("%.2f", median(ms)), fmt.Sprintf("%.2f", median(rs)),
			fmt.Sprintf("%.3f", median(ack)), fmt.Sprintf("%.3f", median(fs))})
	}
	fmt.Printf("\nServe fan-out: master commit rate, 16 clients, semi-sync AFTER_SYNC with the agent; %d commits per run, median of %d\n", commits, runs)
	printTable(os.Stdout, []string{"downstream", "commits/s", "runs", "agent CPU s", "master CPU s", "4 replicas CPU s", "agent ACK latency ms", "agent fsync ms"}, rows)
	for j := 1; j < len(sources); j++ {
		fmt.Printf("commit rate with %s / without: %.3f\n", sources[j].name, med[j]/med[0])
	}
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(base))
	p.reviewLog(t, "serve-fanout")
}

// pointReplica makes r's IO thread read from the server at port, from
// file:pos, and starts it (its old relay logs deleted).
func pointReplica(t *testing.T, r *sandbox.Server, port int, user, pass string, from binlogEnd) {
	t.Helper()
	_ = r.Exec(context.Background(), "STOP SLAVE")
	mustExec(t, r, "RESET SLAVE ALL")
	mustExec(t, r, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?,
		MASTER_LOG_FILE=?, MASTER_LOG_POS=?, MASTER_USE_GTID=no`, port, user, pass, from.File, from.Pos)
	mustExec(t, r, "START SLAVE IO_THREAD")
}

// reniceAll sets the nice value of every thread of process pid (Linux
// keeps one per thread; a thread started later inherits its creator's).
func reniceAll(t *testing.T, pid, nice int) {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Fatalf("setpriority(%d, %d): %v", tid, nice, err)
		}
	}
}

// agentMetrics reads the agent's Prometheus metrics (name{labels} -> value;
// the histograms' _sum and _count lines are what the benchmark uses).
func agentMetrics(t *testing.T, p *agentProc) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	return m
}

// servedReplicas is the number of replicas the agent's status lists as
// dumping from its binlog server.
func servedReplicas(p *agentProc) (int, error) {
	resp, err := http.Get("http://" + p.listen + "/status")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var rep struct {
		Serve *struct {
			Replicas []json.RawMessage `json:"replicas"`
		} `json:"serve"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return 0, err
	}
	if rep.Serve == nil {
		return 0, nil
	}
	return len(rep.Serve.Replicas), nil
}
