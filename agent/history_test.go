package agent

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// repointMaster rewrites the agent's config to stream from s instead.
func (e *testEnv) repointMaster(s *sandbox.Server) {
	e.t.Helper()
	cfg := strings.Replace(readFile(e.t, e.cfgPath), "port = "+strconv.Itoa(e.master.Port()), "port = "+strconv.Itoa(s.Port()), 1)
	writeFile(e.t, e.cfgPath, cfg)
}

// streamSome streams a few transactions from the master into the relay log
// and stops the agent.
func (e *testEnv) streamSome() {
	e.t.Helper()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := range 5 {
		e.exec("INSERT INTO test.t (c, payload) VALUES (?, 'from the old master')", i)
	}
	e.waitCaughtUp(func() status.Report { return p.a.liveReport() })
	if err := p.stop(); err != nil {
		e.t.Fatal(err)
	}
}

// TestRebuiltMasterRefused: a master rebuilt from scratch with the same
// server_id (the default 1, as operators rebuild one) is not taken for the
// old one: the agent refuses with one line that says the master's binlog
// does not continue the relay log and what to do, and it streams nothing.
func TestRebuiltMasterRefused(t *testing.T) {
	for _, more := range []int{0, 40} {
		t.Run(strconv.Itoa(more)+" transactions on the new master", func(t *testing.T) {
			e := newEnv(t)
			e.streamSome()
			ctx := context.Background()
			fresh, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(e.dir, "m2"), ServerID: 1, Master: true, Log: t.Logf,
				Extra: []string{"rpl_semi_sync_master_timeout=100"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fresh.Stop(context.Background()) })
			if err := fresh.CreateUser(ctx, "repl", e.password, "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN"); err != nil {
				t.Fatal(err)
			}
			must(t, fresh.Exec(ctx, "CREATE DATABASE test"))
			must(t, fresh.Exec(ctx, "CREATE TABLE test.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, c INT, payload VARCHAR(200))"))
			for i := range more {
				must(t, fresh.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (?, 'another history')", i))
			}
			relayBefore := relaySize(t, e.config().RelayDir())
			e.repointMaster(fresh)
			out, code := e.runToExit(60 * time.Second)
			last := lastLine(out)
			if code != 1 || !strings.Contains(last, "does not continue this relay log") || !strings.Contains(last, "rebuild this standby") {
				t.Fatalf("exit %d, last line %q; want exit 1 saying the master does not continue the relay log", code, last)
			}
			if strings.Contains(out, e.password) {
				t.Fatal("the password is in the output")
			}
			if after := relaySize(t, e.config().RelayDir()); after != relayBefore {
				t.Fatalf("relay log changed from %d to %d bytes: something of the other history was stored", relayBefore, after)
			}
		})
	}
}

// TestNewMasterWithOurHistoryNamed: a master with another server_id whose
// binlog holds the relay log's transactions (the standby, after a failover)
// is told apart from another history: the line says it is a new master.
func TestNewMasterWithOurHistoryNamed(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	ctx := context.Background()
	must(t, standby.CreateUser(ctx, "repl", e.password, "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN"))
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := range 5 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.waitApplied(standby, 60*time.Second)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	e.repointMaster(standby)
	out, code := e.runToExit(60 * time.Second)
	if last := lastLine(out); code != 1 || !strings.Contains(last, "a new master after a failover") {
		t.Fatalf("exit %d, last line %q; want exit 1 naming a new master that holds our history", code, last)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// relaySize is the bytes of data in the relay log's segments.
func relaySize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "relay-*"))
	for _, f := range files {
		n += int64(len(readFile(t, f)))
	}
	return n
}
