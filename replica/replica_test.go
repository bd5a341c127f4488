package replica

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

const replPassword = "s3cr'et\\pw-Rpl"

// env is a master and a standby on 127.0.0.1, the standby controlled by a
// Replica that replicates from the master directly (the binlog server is
// the agent's business; this tests everything but the source).
type env struct {
	t       *testing.T
	master  *sandbox.Server
	standby *sandbox.Server
	log     *harness.SyncBuffer
}

func startServer(t *testing.T, id uint32, extra ...string) *sandbox.Server {
	t.Helper()
	s, err := sandbox.Start(context.Background(), sandbox.Config{Dir: t.TempDir(), ServerID: id, Log: t.Logf, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

func newEnv(t *testing.T, standbyExtra ...string) *env {
	if testing.Short() {
		t.Skip("needs MariaDB")
	}
	e := &env{t: t, log: &harness.SyncBuffer{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.master = startServer(t, 1) }()
	e.standby = startServer(t, 2, standbyExtra...)
	wg.Wait()
	if e.master == nil {
		t.FailNow()
	}
	e.exec(e.master, "CREATE USER 'repl'@'127.0.0.1' IDENTIFIED BY "+quote(replPassword)+"; GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.0.0.1'")
	e.exec(e.master, "CREATE DATABASE test; CREATE TABLE test.t (id INT PRIMARY KEY, c INT NOT NULL, s VARCHAR(64)) ENGINE=InnoDB; "+
		"CREATE TABLE test.counter (id INT PRIMARY KEY, n BIGINT NOT NULL) ENGINE=InnoDB; INSERT INTO test.counter VALUES (1, 0)")
	return e
}

func (e *env) exec(s *sandbox.Server, q string) {
	e.t.Helper()
	if err := s.Exec(context.Background(), q); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) query(s *sandbox.Server, q string) string {
	e.t.Helper()
	v, err := s.QueryString(context.Background(), q)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) config() Config {
	cfg := DefaultConfig()
	cfg.DSN = e.standby.RootDSN("")
	cfg.Source = Source{Host: "127.0.0.1", Port: e.master.Port(), User: "repl", Password: replPassword, HeartbeatPeriod: time.Second}
	cfg.Poll = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.MasterServerID = func() uint32 { return 1 }
	return cfg
}

// run starts a Replica; its Run error arrives on the returned channel.
func (e *env) run(cfg Config) (*Replica, chan error) {
	e.t.Helper()
	r, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		<-done
		if strings.Contains(e.log.String(), replPassword) {
			e.t.Error("the source's password is in the replica's log")
		}
		e.t.Log(e.log.String())
	})
	return r, done
}

// waitCaughtUp waits until the standby's gtid_slave_pos covers the master's
// gtid_binlog_pos.
func (e *env) waitCaughtUp(r *Replica) {
	e.t.Helper()
	want := e.query(e.master, "SELECT @@GLOBAL.gtid_binlog_pos")
	harness.WaitFor(e.t, "the standby to apply "+want, 120*time.Second, func() bool {
		st := r.Status()
		if st.State == StateError {
			e.t.Fatalf("replication stopped: %s", st.Error())
		}
		return st.Applied == want
	})
}

// digest is a digest of the test tables' rows.
func (e *env) digest(s *sandbox.Server) string {
	return e.query(s, "SELECT CONCAT((SELECT COUNT(*) FROM test.t), ':', "+
		"(SELECT COALESCE(MD5(GROUP_CONCAT(CONCAT_WS(',', id, c, s) ORDER BY id)), '') FROM test.t), ':', "+
		"(SELECT n FROM test.counter WHERE id = 1))")
}

// load runs clients on the master, each committing n transactions: an
// insert of its own rows, an update, and an increment of the shared counter.
func (e *env) load(ctx context.Context, clients, n, base int) error {
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			db := e.master.DB()
			for i := 0; i < n && ctx.Err() == nil; i++ {
				id := base + c*n + i
				q := fmt.Sprintf("START TRANSACTION; INSERT INTO test.t VALUES (%d, %d, 'client %d row %d'); "+
					"UPDATE test.t SET c = c + 1 WHERE id = %d; UPDATE test.counter SET n = n + 1 WHERE id = 1; COMMIT", id, i, c, i, id)
				if _, err := db.ExecContext(ctx, q); err != nil {
					errs <- err
					return
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (e *env) assertEqual(r *Replica, wantRows int) {
	e.t.Helper()
	e.waitCaughtUp(r)
	m, s := e.digest(e.master), e.digest(e.standby)
	if m != s {
		e.t.Fatalf("tables differ: master %s, standby %s", m, s)
	}
	if !strings.HasPrefix(m, fmt.Sprintf("%d:", wantRows)) || !strings.HasSuffix(m, fmt.Sprintf(":%d", wantRows)) {
		e.t.Fatalf("master digest %s: want %d rows and counter %d", m, wantRows, wantRows)
	}
	if mp, sp := e.query(e.master, "SELECT @@GLOBAL.gtid_binlog_pos"), e.query(e.standby, "SELECT @@GLOBAL.gtid_binlog_pos"); mp != sp {
		e.t.Fatalf("standby gtid_binlog_pos %s, master %s: the standby's binlog must carry the master's GTIDs", sp, mp)
	}
}

// TestReplicaLoadRowsEqual: a multi-client load on the master reaches the
// standby through its own parallel SQL threads: rows equal, the standby's
// binlog carries the master's GTIDs, the standby is read-only with the
// configured threads, and the status names the frontiers.
func TestReplicaLoadRowsEqual(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.ParallelThreads = 3
	r, _ := e.run(cfg)
	if err := e.load(context.Background(), 8, 150, 0); err != nil {
		t.Fatal(err)
	}
	e.assertEqual(r, 8*150)
	for q, want := range map[string]string{
		"SELECT @@GLOBAL.read_only":              "1",
		"SELECT @@GLOBAL.slave_parallel_threads": "3",
		"SELECT @@GLOBAL.slave_parallel_mode":    "optimistic",
	} {
		if v := e.query(e.standby, q); v != want {
			t.Errorf("%s = %s, want %s", q, v, want)
		}
	}
	st := r.Status()
	if st.State != StateRunning || st.IORunning != "Yes" || st.SQLRunning != "Yes" || st.ParallelThreads != 3 ||
		st.BehindTransactions != 0 || st.Received != st.Applied || st.Source != fmt.Sprintf("127.0.0.1:%d", e.master.Port()) {
		t.Fatalf("status %+v", st)
	}
	ss, err := readSlaveStatus(context.Background(), e.standby.DB())
	if err != nil {
		t.Fatal(err)
	}
	if ss["Using_Gtid"] != "Slave_Pos" || ss["Master_User"] != "repl" {
		t.Errorf("SHOW SLAVE STATUS Using_Gtid %q Master_User %q, want Slave_Pos, repl", ss["Using_Gtid"], ss["Master_User"])
	}
	if strings.Contains(fmt.Sprintf("%+v", st), replPassword) {
		t.Fatal("password in status")
	}
}
