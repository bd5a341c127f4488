package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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

	sources := []struct {
		name       string
		port       int
		user, pass string
	}{
		{"native replica IO thread <- agent", servePort, "downstream", servePW},
		{"native replica IO thread <- master", master.Port(), replUser, pw},
	}
	secs := make([][]float64, len(sources))
	for i := range runs {
		for j, src := range sources {
			s := readAll(t, replica, src.port, src.user, src.pass, files[0].Name, end)
			secs[j] = append(secs[j], s)
			t.Logf("run %d %-36s %7.2f s  %7.1f MiB/s", i+1, src.name, s, mib/s)
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
		rows = append(rows, []string{src.name, fmt.Sprintf("%.2f", med[j]), fmt.Sprintf("%.1f", mib/med[j]), all})
	}
	fmt.Printf("\nServe: %s:4 to %s, %d file(s), %.1f MiB; median of %d runs\n", files[0].Name, end, len(files), mib, runs)
	printTable(os.Stdout, []string{"source", "seconds", "MiB/s", "runs (s)"}, rows)
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
// clients, the agent its only semi-sync replica) with no downstream replica
// and with 4 native replicas' IO threads reading from the agent's binlog
// server at the same time, alternating, HOTSTANDBY_BENCH_RUNS rounds of
// HOTSTANDBY_BENCH_COMMITS commits. Run it alone:
// `flock /tmp/hotstandby-bench.lock make bench-serve`.
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
	start := masterEnd(t, master)

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
	p := startAgent(t, bin, agentSpec{Dir: dir, Master: master, Password: pw, ServerID: 9001, Start: "current", SemiSync: true,
		Extra: fmt.Sprintf("\n[serve]\nlisten = \":%d\"\nuser = \"downstream\"\npassword_file = %q\n", servePort, filepath.Join(dir, "serve.pw"))})
	p.waitStatus(t, "the agent to stream", 30*time.Second, 20*time.Millisecond,
		func(st agentStatus) bool { return st.Stream.State == "streaming" })
	e := &semiEnv{master: master}
	e.waitSemiSyncReplica(t)

	var replicas []*sandbox.Server
	for i := range 4 {
		r := startServer(t, base, fmt.Sprintf("replica%d", i), uint32(10+i), false)
		mustExec(t, r, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER='downstream', MASTER_PASSWORD=?,
			MASTER_LOG_FILE=?, MASTER_LOG_POS=?, MASTER_USE_GTID=no`, servePort, servePW, start.File, start.Pos)
		replicas = append(replicas, r)
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
	rates := map[bool][]float64{}
	for round := range runs {
		for _, fanout := range []bool{false, true} {
			for _, r := range replicas {
				q := "STOP SLAVE IO_THREAD"
				if fanout {
					q = "START SLAVE IO_THREAD"
				}
				mustExec(t, r, q)
			}
			if fanout {
				harness.Poll(t, "4 replicas dumping from the agent", 60*time.Second, 20*time.Millisecond, func() (bool, error) {
					n, err := servedReplicas(p)
					return err == nil && n == 4, nil
				})
			}
			elapsed, _, err := commitLoad(db, 16, commits)
			if err != nil {
				t.Fatal(err)
			}
			rate := float64(commits) / elapsed.Seconds()
			rates[fanout] = append(rates[fanout], rate)
			t.Logf("round %d, %d downstream replicas: %.0f commits/s", round+1, map[bool]int{false: 0, true: 4}[fanout], rate)
		}
	}
	if moved := statusInt(t, master, "Rpl_semi_sync_master_no_tx") - noTx; moved != 0 {
		t.Errorf("Rpl_semi_sync_master_no_tx moved by %d: the master fell back to async; the run is invalid", moved)
	}
	var rows [][]string
	for _, fanout := range []bool{false, true} {
		all := ""
		for _, r := range rates[fanout] {
			all += strconv.FormatFloat(r, 'f', 0, 64) + " "
		}
		rows = append(rows, []string{map[bool]string{false: "no downstream replica", true: "4 replicas' IO threads reading from the agent"}[fanout],
			fmt.Sprintf("%.0f", median(rates[fanout])), all})
	}
	fmt.Printf("\nServe fan-out: master commit rate, 16 clients, semi-sync AFTER_SYNC with the agent; %d commits per run, median of %d\n", commits, runs)
	printTable(os.Stdout, []string{"downstream", "commits/s", "runs"}, rows)
	fmt.Printf("commit rate with 4 downstream replicas / without: %.3f\n", median(rates[true])/median(rates[false]))
	fmt.Printf("machine before: %s\nmachine after:  %s\n\n", before, machineLoad(base))
	p.reviewLog(t, "serve-fanout")
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
