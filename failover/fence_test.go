package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
)

// The accounts fenceServer creates. The fencer has exactly the privileges
// FenceOldMaster documents; app is an ordinary application user; admin has
// ALL PRIVILEGES, READ_ONLY ADMIN among them, so read_only does not bind it.
const (
	fencerPassword = "fence-pw-6c0e13"
	appPassword    = "app-pw-9d41aa"
	adminPassword  = "admin-pw-2be7f0"
)

// fenceServer starts a MariaDB server with a table fence.t and the test
// accounts; it skips the test under -short.
func fenceServer(t *testing.T) *sandbox.Server {
	t.Helper()
	ctx := context.Background()
	s := testServer(t)
	for _, u := range []struct{ user, pw, privs string }{
		{"fencer", fencerPassword, "READ_ONLY ADMIN, CONNECTION ADMIN, PROCESS"},
		{"app", appPassword, "INSERT, SELECT"},
		{"admin", adminPassword, "ALL PRIVILEGES"},
	} {
		if err := s.CreateUser(ctx, u.user, u.pw, u.privs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Exec(ctx, "CREATE DATABASE fence; CREATE TABLE fence.t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	return s
}

// fenceDSN returns a TCP DSN for user at addr.
func fenceDSN(addr, user, password string) string {
	mc := mysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = user, password, "tcp", addr
	return mc.FormatDSN()
}

// fenceClientConn opens a pool for user on s and returns one connection of
// it with its connection id.
func fenceClientConn(t *testing.T, s *sandbox.Server, user, password string) (*sql.Conn, uint64) {
	t.Helper()
	mc, err := mysql.ParseDSN(fenceDSN(s.Addr(), user, password))
	if err != nil {
		t.Fatal(err)
	}
	mc.Logger = fenceTestLogger{t}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var id uint64
	if err := conn.QueryRowContext(context.Background(), "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return conn, id
}

// fenceTestLogger sends the driver's messages of the test's own clients,
// which the fence disconnects, to the test log.
type fenceTestLogger struct{ t *testing.T }

func (l fenceTestLogger) Print(v ...any) { l.t.Log(append([]any{"client driver:"}, v...)...) }

// fenceThreadCount counts the server's threads that match the processlist
// condition where.
func fenceThreadCount(s *sandbox.Server, where string, args ...any) (int, error) {
	var n int
	err := s.DB().QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE "+where, args...).Scan(&n)
	return n, err
}

// fenceLogger returns a logger for FenceOldMaster and the buffer it writes.
func fenceLogger() (*slog.Logger, *harness.SyncBuffer) {
	l := &harness.SyncBuffer{}
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug})), l
}

func TestFenceOldMasterLive(t *testing.T) {
	s := fenceServer(t)
	ctx := context.Background()
	if err := s.Exec(ctx, "SET GLOBAL event_scheduler = ON"); err != nil {
		t.Fatal(err)
	}
	harness.Poll(t, "the event scheduler thread", 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		n, err := fenceThreadCount(s, "USER = 'event_scheduler'")
		return n == 1, err
	})

	// An idle transaction that inserted a row, by a user read_only does
	// not bind: only the kill keeps it from committing.
	txConn, txID := fenceClientConn(t, s, "admin", adminPassword)
	if _, err := txConn.ExecContext(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := txConn.ExecContext(ctx, "INSERT INTO fence.t VALUES (1, 'open')"); err != nil {
		t.Fatal(err)
	}
	// A long query.
	sleepConn, sleepID := fenceClientConn(t, s, "app", appPassword)
	sleepDone := make(chan string, 1)
	go func() {
		var v int
		err := sleepConn.QueryRowContext(ctx, "SELECT SLEEP(30)").Scan(&v)
		sleepDone <- fmt.Sprintf("SLEEP(30) returned %d, err %v", v, err)
	}()
	harness.Poll(t, "SELECT SLEEP(30) to run", 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		n, err := fenceThreadCount(s, "ID = ? AND INFO LIKE 'SELECT SLEEP%'", sleepID)
		return n == 1, err
	})

	log, logs := fenceLogger()
	const timeout = 5 * time.Second
	res := FenceOldMaster(ctx, fenceDSN(s.Addr(), "fencer", fencerPassword), timeout, log)
	t.Log(res.Summary())
	if !res.Fenced() || !res.Reachable || !res.ReadOnly || res.WasReadOnly || res.Err != nil {
		t.Fatalf("result %+v", res)
	}
	if !slices.Contains(res.KilledIDs, txID) || !slices.Contains(res.KilledIDs, sleepID) || res.Killed != len(res.KilledIDs) {
		t.Errorf("killed %d %v, want %d and %d among them", res.Killed, res.KilledIDs, txID, sleepID)
	}
	if res.Duration > timeout {
		t.Errorf("the fence took %s", res.Duration)
	}
	if want := fmt.Sprintf("fence %s: read_only=ON verified, killed %d connections in ", s.Addr(), res.Killed); !strings.HasPrefix(res.Summary(), want) {
		t.Errorf("summary %q, want the prefix %q", res.Summary(), want)
	}

	harness.Poll(t, "the killed connections to end", 10*time.Second, 20*time.Millisecond, func() (bool, error) {
		n, err := fenceThreadCount(s, "ID IN (?, ?)", txID, sleepID)
		return n == 0, err
	})
	select {
	case got := <-sleepDone:
		if strings.HasPrefix(got, "SLEEP(30) returned 0, err <nil>") {
			t.Errorf("the long query was not interrupted: %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SELECT SLEEP(30) still runs 10 s after the fence")
	}
	if n, err := fenceThreadCount(s, "USER = 'event_scheduler'"); err != nil || n != 1 {
		t.Errorf("the event scheduler thread is gone (%d, %v)", n, err)
	}
	if _, err := txConn.ExecContext(ctx, "COMMIT"); err == nil {
		t.Error("the killed transaction's connection could still COMMIT")
	}
	if n, err := s.QueryString(ctx, "SELECT COUNT(*) FROM fence.t"); err != nil || n != "0" {
		t.Errorf("fence.t holds %s rows (%v), want 0: the open transaction committed", n, err)
	}
	if v, err := s.QueryString(ctx, "SELECT @@global.read_only"); err != nil || v != "1" {
		t.Errorf("read_only = %q (%v)", v, err)
	}
	appConn, _ := fenceClientConn(t, s, "app", appPassword)
	_, err := appConn.ExecContext(ctx, "INSERT INTO fence.t VALUES (2, 'after')")
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1290 { // ER_OPTION_PREVENTS_STATEMENT
		t.Errorf("a write after the fence returned %v, want error 1290 (--read-only)", err)
	}

	// Idempotent: a second call finds read_only ON, kills only the
	// connections made since, and succeeds again.
	res2 := FenceOldMaster(ctx, fenceDSN(s.Addr(), "fencer", fencerPassword), timeout, log)
	t.Log(res2.Summary())
	if !res2.Fenced() || !res2.WasReadOnly || res2.Err != nil {
		t.Fatalf("second call %+v", res2)
	}
	if slices.Contains(res2.KilledIDs, txID) || slices.Contains(res2.KilledIDs, sleepID) {
		t.Errorf("the second call killed the first call's connections again: %v", res2.KilledIDs)
	}
	if !strings.Contains(res2.Summary(), "read_only=ON (already) verified") {
		t.Errorf("summary %q", res2.Summary())
	}
	if strings.Contains(logs.String(), fencerPassword) {
		t.Error("the fence logged the password")
	}
}

// A client that holds LOCK TABLES ... WRITE blocks SET GLOBAL read_only;
// the fence kills it and tries again, within its timeout.
func TestFenceOldMasterTableLock(t *testing.T) {
	s := fenceServer(t)
	ctx := context.Background()
	lockConn, lockID := fenceClientConn(t, s, "admin", adminPassword)
	if _, err := lockConn.ExecContext(ctx, "LOCK TABLES fence.t WRITE"); err != nil {
		t.Fatal(err)
	}
	log, logs := fenceLogger()
	const timeout = 4 * time.Second
	res := FenceOldMaster(ctx, fenceDSN(s.Addr(), "fencer", fencerPassword), timeout, log)
	t.Log(res.Summary())
	if !res.Fenced() || !slices.Contains(res.KilledIDs, lockID) {
		t.Fatalf("result %+v, want fenced with connection %d killed", res, lockID)
	}
	if res.Duration > timeout {
		t.Errorf("the fence took %s", res.Duration)
	}
	if !strings.Contains(logs.String(), "waited too long for running writes") {
		t.Errorf("the table lock did not block SET GLOBAL read_only; the retry path is untested:\n%s", logs)
	}
}

func TestFenceOldMasterRefused(t *testing.T) {
	s := fenceServer(t)
	if err := s.CreateUser(context.Background(), "super", appPassword, "SUPER"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, password string
		wantSummary          string
	}{
		{name: "wrong password", user: "fencer", password: "wrong", wantSummary: "answered but refused the fence, NOT FENCED: connect: Error 1045"},
		{name: "no privileges", user: "app", password: appPassword, wantSummary: "NOT read-only, killed 0 connections, NOT FENCED: the fence user lacks READ_ONLY ADMIN, PROCESS, CONNECTION ADMIN; set read_only: Error 1227"},
		// SUPER kills, but no longer sets read_only (10.11) nor sees others.
		{name: "SUPER only", user: "super", password: appPassword, wantSummary: "NOT FENCED: the fence user lacks READ_ONLY ADMIN, PROCESS; set read_only: Error 1227"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := FenceOldMaster(context.Background(), fenceDSN(s.Addr(), tt.user, tt.password), 5*time.Second, nil)
			t.Log(res.Summary())
			if !res.Reachable || res.Fenced() || !errors.Is(res.Err, ErrFenceFailed) {
				t.Fatalf("result %+v, want reachable and ErrFenceFailed", res)
			}
			if s := res.Summary(); !strings.Contains(s, tt.wantSummary) || strings.Contains(s, "\n") {
				t.Errorf("summary %q lacks %q", res.Summary(), tt.wantSummary)
			}
		})
	}
}

// Nobody listens: the usual case of a dead master.
func TestFenceOldMasterUnreachable(t *testing.T) {
	port, err := sandbox.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(port))
	const timeout = 2 * time.Second
	start := time.Now()
	res := FenceOldMaster(context.Background(), fenceDSN(addr, "fencer", fencerPassword), timeout, nil)
	if elapsed := time.Since(start); elapsed > timeout {
		t.Errorf("returned after %s, want within %s", elapsed, timeout)
	}
	if res.Reachable || res.Err != nil || res.DialErr == nil || res.Fenced() || res.Killed != 0 {
		t.Fatalf("result %+v, want unreachable without error", res)
	}
	if want := "fence " + addr + ": unreachable ("; !strings.HasPrefix(res.Summary(), want) {
		t.Errorf("summary %q, want the prefix %q", res.Summary(), want)
	}
}

// A server that accepts the TCP connection but never sends a handshake (a
// frozen host) counts as unreachable, after the timeout.
func TestFenceOldMasterNoHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	const timeout = time.Second
	start := time.Now()
	res := FenceOldMaster(context.Background(), fenceDSN(ln.Addr().String(), "fencer", fencerPassword), timeout, nil)
	if elapsed := time.Since(start); elapsed > timeout+500*time.Millisecond {
		t.Errorf("returned after %s, want within %s", elapsed, timeout)
	}
	if res.Reachable || res.Err != nil || res.DialErr == nil {
		t.Fatalf("result %+v, want unreachable without error", res)
	}
}

func TestFenceOldMasterCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := FenceOldMaster(ctx, fenceDSN("127.0.0.1:1", "fencer", fencerPassword), time.Second, nil)
	if res.Reachable || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("result %+v, want context.Canceled", res)
	}
	if !strings.Contains(res.Summary(), "not attempted") {
		t.Errorf("summary %q", res.Summary())
	}
}

func TestFenceOldMasterBadDSN(t *testing.T) {
	res := FenceOldMaster(context.Background(), "fencer:"+fencerPassword+"@tcp(127.0.0.1:1", time.Second, nil)
	if res.Err == nil || res.Reachable {
		t.Fatalf("result %+v, want a DSN error", res)
	}
	if strings.Contains(res.Summary(), fencerPassword) {
		t.Errorf("the summary shows the password: %q", res.Summary())
	}
}

// TestFenceOldMasterUnderLoad: 8 clients insert without pause and
// reconnect at once when killed; the fence with the promoter's 2 s timeout
// still gets read_only set and verified (SET GLOBAL read_only waits for
// the running writes, it does not give up at the first one).
func TestFenceOldMasterUnderLoad(t *testing.T) {
	s := fenceServer(t)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	mc, err := mysql.ParseDSN(fenceDSN(s.Addr(), "app", appPassword))
	if err != nil {
		t.Fatal(err)
	}
	mc.Logger = fenceTestLogger{t}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	var wg sync.WaitGroup
	var ok atomic.Int64
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := db.ExecContext(ctx, "INSERT INTO fence.t (id, v) VALUES (?, 'x')", next.Add(1)); err == nil {
					ok.Add(1)
				}
			}
		}()
	}
	harness.WaitFor(t, "the clients to write", 30*time.Second, func() bool { return ok.Load() > 200 })
	log, _ := fenceLogger()
	res := FenceOldMaster(context.Background(), fenceDSN(s.Addr(), "fencer", fencerPassword), 2*time.Second, log)
	t.Log(res.Summary())
	if !res.Fenced() {
		t.Fatalf("the fence under load: %s", res.Summary())
	}
	stop()
	wg.Wait()
	if _, err := db.ExecContext(context.Background(), "INSERT INTO fence.t (id, v) VALUES (0, 'after')"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("an insert after the fence: %v, want refused by read_only", err)
	}
}
