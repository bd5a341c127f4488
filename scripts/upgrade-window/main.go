// Command upgrade-window measures what the master does while the agent is
// stopped for an upgrade (docs/operations.md, "Upgrading the agent"): it
// runs the agent, keeps writers committing on the master, stops the agent
// with SIGTERM (as systemctl stop does), waits -down, starts it again, and
// prints the commit latencies, the master's semi-sync counters and when the
// agent's proof (hotstandby_promotion_lossless) is back.
//
//	hotstandby sandbox up --dir /tmp/sb
//	go run ./scripts/upgrade-window --bin bin/hotstandby --config /tmp/sb/hotstandby.toml \
//	    --dsn 'root@unix(/tmp/sb/master/SOCKET)/demo' --status 127.0.0.1:PORT --down 3s
//
// It is a measurement, not a test: nothing in `make test` runs it.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
)

type commit struct {
	at  time.Time // when the commit was sent
	lat time.Duration
}

type masterSample struct {
	at                  time.Time
	status              string
	noTx, yesTx, noTime int64
	clients, waiting    int64
}

type agentSample struct {
	at                              time.Time
	streamUp, lossless, semisync_up string
}

func main() {
	bin := flag.String("bin", "bin/hotstandby", "the hotstandby binary")
	cfg := flag.String("config", "", "the agent's configuration (sandbox up writes one)")
	dsn := flag.String("dsn", "", "a go-sql-driver DSN of a master user that may INSERT into demo.orders (no password: use a socket)")
	statusAddr := flag.String("status", "", "the agent's status listener (host:port)")
	down := flag.Duration("down", 3*time.Second, "how long the agent stays stopped")
	writers := flag.Int("writers", 4, "concurrent writers")
	before := flag.Duration("before", 10*time.Second, "steady state before the stop")
	after := flag.Duration("after", 30*time.Second, "how long to keep measuring after the proof is back")
	logPath := flag.String("log", "/tmp/upgrade-window-agent.log", "the agent's stderr")
	flag.Parse()

	db, err := sql.Open("mysql", *dsn)
	check(err)
	db.SetMaxOpenConns(*writers + 2)

	logf, err := os.OpenFile(*logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	check(err)
	startAgent := func() *exec.Cmd {
		c := exec.Command(*bin, "run", "--config", *cfg)
		c.Stdout, c.Stderr = logf, logf
		check(c.Start())
		return c
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Now()
	agent := startAgent()
	var agentExit = make(chan error, 1)
	go func() { agentExit <- agent.Wait() }()

	metric := func(name string) string {
		resp, err := http.Get("http://" + *statusAddr + "/metrics")
		if err != nil {
			return "down"
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
				return f[1]
			}
		}
		return "absent"
	}
	waitFor := func(what string, ok func() bool) time.Time {
		deadline := time.Now().Add(3 * time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				fmt.Fprintf(os.Stderr, "gave up waiting for %s\n", what)
				os.Exit(1)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Now()
	}
	waitFor("the first proof", func() bool { return metric("hotstandby_promotion_lossless") == "1" })
	fmt.Printf("agent up and proven lossless after %v\n", time.Since(t0).Round(time.Millisecond))

	// Samplers.
	var mu sync.Mutex
	var commits []commit
	var ms []masterSample
	var as []agentSample
	var wg sync.WaitGroup
	stat := func(name string) string {
		var n, v string
		if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE '"+name+"'").Scan(&n, &v); err != nil {
			return ""
		}
		return v
	}
	num := func(s string) int64 { n, _ := strconv.ParseInt(s, 10, 64); return n }
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s := masterSample{at: time.Now(), status: stat("Rpl_semi_sync_master_status"),
				noTx: num(stat("Rpl_semi_sync_master_no_tx")), yesTx: num(stat("Rpl_semi_sync_master_yes_tx")),
				noTime: num(stat("Rpl_semi_sync_master_no_times")), clients: num(stat("Rpl_semi_sync_master_clients")),
				waiting: num(stat("Rpl_semi_sync_master_wait_sessions"))}
			if s.status != "" { // a failed read (the run's end cancels it) is no sample
				mu.Lock()
				ms = append(ms, s)
				mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s := agentSample{at: time.Now(), streamUp: metric("hotstandby_stream_up"), lossless: metric("hotstandby_promotion_lossless"),
				semisync_up: metric("hotstandby_master_semisync_up")}
			mu.Lock()
			as = append(as, s)
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	for i := 0; i < *writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				_, err := db.ExecContext(ctx, "INSERT INTO orders (customer, amount, created) VALUES ('upgrade', 1.00, NOW(6))")
				if err != nil {
					if ctx.Err() == nil {
						fmt.Fprintln(os.Stderr, "insert:", err)
					}
					continue
				}
				mu.Lock()
				commits = append(commits, commit{start, time.Since(start)})
				mu.Unlock()
			}
		}()
	}

	time.Sleep(*before)
	tStop := time.Now()
	check(agent.Process.Signal(syscall.SIGTERM))
	<-agentExit
	tExited := time.Now()
	time.Sleep(*down)
	tStart := time.Now()
	agent = startAgent()
	go func() { agentExit <- agent.Wait() }()
	tStream := waitFor("the stream", func() bool { return metric("hotstandby_stream_up") == "1" })
	tProof := waitFor("the proof", func() bool { return metric("hotstandby_promotion_lossless") == "1" })
	time.Sleep(*after)
	cancel()
	wg.Wait()
	agent.Process.Signal(syscall.SIGTERM)
	<-agentExit

	rel := func(t time.Time) string { return fmt.Sprintf("%+.2fs", t.Sub(tStop).Seconds()) }
	fmt.Printf("stop sent at 0; agent exited %s; started again %s (down %v); stream up %s; proven lossless %s (%.2fs after the start)\n",
		rel(tExited), rel(tStart), tStart.Sub(tExited).Round(time.Millisecond), rel(tStream), rel(tProof), tProof.Sub(tStart).Seconds())

	// Master state transitions.
	var prev masterSample
	for i, s := range ms {
		if i == 0 || s.status != prev.status || s.clients != prev.clients || s.noTime != prev.noTime {
			fmt.Printf("master %s: semi-sync %s, clients %d, no_times %d, no_tx %d, yes_tx %d, waiting sessions %d\n",
				rel(s.at), s.status, s.clients, s.noTime, s.noTx, s.yesTx, s.waiting)
		}
		prev = s
	}
	first, last := ms[0], ms[len(ms)-1]
	fmt.Printf("master over the run: no_tx +%d, no_times +%d, yes_tx +%d\n", last.noTx-first.noTx, last.noTime-first.noTime, last.yesTx-first.yesTx)
	var prevA agentSample
	for i, s := range as {
		if i == 0 || s != (agentSample{at: s.at, streamUp: prevA.streamUp, lossless: prevA.lossless, semisync_up: prevA.semisync_up}) {
			fmt.Printf("agent %s: stream_up %s, promotion_lossless %s, master_semisync_up %s\n", rel(s.at), s.streamUp, s.lossless, s.semisync_up)
		}
		prevA = s
	}

	phase := func(name string, from, to time.Time) {
		var lats []time.Duration
		for _, c := range commits {
			if !c.at.Before(from) && c.at.Before(to) {
				lats = append(lats, c.lat)
			}
		}
		if len(lats) == 0 {
			fmt.Printf("%-34s no commit started\n", name)
			return
		}
		sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
		q := func(p float64) time.Duration { return lats[int(p*float64(len(lats)-1))].Round(10 * time.Microsecond) }
		fmt.Printf("%-34s %6d commits %8.0f/s  p50 %-10v p99 %-10v max %v\n", name, len(lats), float64(len(lats))/to.Sub(from).Seconds(), q(.5), q(.99), q(1))
	}
	end := tProof.Add(*after)
	phase("before the stop", tStop.Add(-*before), tStop)
	phase("agent stopping and stopped", tStop, tStart)
	phase("agent started, proof not back", tStart, tProof)
	phase("after the proof is back", tProof, end)
	// The worst commit: when it started and how long it waited.
	var worst commit
	for _, c := range commits {
		if c.lat > worst.lat {
			worst = c
		}
	}
	fmt.Printf("longest commit: started %s, waited %v\n", rel(worst.at), worst.lat.Round(time.Millisecond))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
