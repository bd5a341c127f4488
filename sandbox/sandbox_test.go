package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{name: "minimal", cfg: Config{Dir: "/tmp/x", ServerID: 1}},
		{name: "master with port", cfg: Config{Dir: "/tmp/x", ServerID: 7, Port: 3307, Master: true}},
		{name: "no dir", cfg: Config{ServerID: 1}, wantErr: true},
		{name: "zero server id", cfg: Config{Dir: "/tmp/x"}, wantErr: true},
		{name: "port too large", cfg: Config{Dir: "/tmp/x", ServerID: 1, Port: 70000}, wantErr: true},
		{name: "negative timeout", cfg: Config{Dir: "/tmp/x", ServerID: 1, StartTimeout: -time.Second}, wantErr: true},
		{name: "newline in extra", cfg: Config{Dir: "/tmp/x", ServerID: 1, Extra: []string{"a=1\n[client]"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestMyCnf(t *testing.T) {
	l, err := newLayout("/srv/m1")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     Config
		want    []string
		notWant []string
	}{
		{
			name: "master",
			cfg:  Config{ServerID: 1, Master: true, Extra: []string{"rpl_semi_sync_master_timeout=3000"}},
			want: []string{
				"[mariadbd]", "datadir=/srv/m1/data", "socket=/srv/m1/mariadbd.sock",
				"pid-file=/srv/m1/mariadbd.pid", "tmpdir=/srv/m1/tmp", "port=3306", "bind-address=127.0.0.1",
				"server_id=1", "log_error=/srv/m1/error.log", "skip-name-resolve",
				"log_bin=/srv/m1/binlog/mysql-bin", "binlog_format=ROW", "binlog_row_metadata=FULL",
				"gtid_strict_mode=ON", "log_slave_updates=ON", "sync_binlog=1",
				"rpl_semi_sync_master_enabled=ON", "rpl_semi_sync_master_wait_point=AFTER_SYNC",
			},
		},
		{
			name:    "replica",
			cfg:     Config{ServerID: 2},
			want:    []string{"server_id=2", "log_bin=/srv/m1/binlog/mysql-bin", "log_slave_updates=ON"},
			notWant: []string{"rpl_semi_sync_master_enabled=ON"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cnf := myCnf(tt.cfg, l, 3306)
			lines := strings.Split(cnf, "\n")
			for _, w := range tt.want {
				if !containsLine(lines, w) {
					t.Errorf("my.cnf lacks %q:\n%s", w, cnf)
				}
			}
			for _, w := range tt.notWant {
				if containsLine(lines, w) {
					t.Errorf("my.cnf has %q:\n%s", w, cnf)
				}
			}
			// Extra lines come last, so that they override the defaults.
			if n := len(tt.cfg.Extra); n > 0 && lines[len(lines)-2] != tt.cfg.Extra[n-1] {
				t.Errorf("my.cnf does not end with Extra:\n%s", cnf)
			}
		})
	}
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

func TestLongDirMovesSocket(t *testing.T) {
	dir := "/tmp/" + strings.Repeat("d", 120)
	l, err := newLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(l.socket, dir) || len(l.socket) > maxSocketPath {
		t.Fatalf("socket %s not moved out of the long dir", l.socket)
	}
}

func TestTailLines(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{name: "empty", in: "", n: 3, want: ""},
		{name: "fewer lines", in: "a\nb\n", n: 3, want: "a\nb"},
		{name: "last two", in: "a\nb\nc\n", n: 2, want: "b\nc"},
		{name: "no trailing newline", in: "a\nb\nc", n: 1, want: "c"},
		{name: "zero", in: "a\n", n: 0, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tailLines([]byte(tt.in), tt.n); got != tt.want {
				t.Fatalf("tailLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

// startServer starts a server in a fresh temporary directory and stops it
// when the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = t.TempDir()
	cfg.Log = t.Logf
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func wantQuery(t *testing.T, s *Server, query, want string) {
	t.Helper()
	got, err := s.QueryString(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s = %q, want %q", query, got, want)
	}
}

func mustExec(t *testing.T, s *Server, query string, args ...any) {
	t.Helper()
	if err := s.Exec(context.Background(), query, args...); err != nil {
		t.Fatal(err)
	}
}

func TestMasterSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real MariaDB server")
	}
	t.Parallel()
	ctx := context.Background()
	// Alone, a semi-sync master stalls each commit for the whole timeout.
	m := startServer(t, Config{ServerID: 1, Master: true, Extra: []string{"rpl_semi_sync_master_timeout=200"}})

	wantQuery(t, m, "SELECT @@log_bin", "1")
	wantQuery(t, m, "SELECT @@binlog_format", "ROW")
	wantQuery(t, m, "SELECT @@binlog_row_metadata", "FULL")
	wantQuery(t, m, "SELECT @@rpl_semi_sync_master_enabled", "1")
	wantQuery(t, m, "SELECT @@rpl_semi_sync_master_wait_point", "AFTER_SYNC")
	wantQuery(t, m, "SELECT @@rpl_semi_sync_master_timeout", "200") // Extra overrides the default
	wantQuery(t, m, "SELECT @@port", strconv.Itoa(m.Port()))
	wantQuery(t, m, "SELECT @@gtid_binlog_pos", "") // install-db wrote no binlog
	if v, err := m.Status(ctx, "Rpl_semi_sync_master_status"); err != nil || v != "ON" {
		t.Fatalf("Rpl_semi_sync_master_status = %q, %v; want ON", v, err)
	}
	if _, err := m.Status(ctx, "No_such_status"); !errors.Is(err, ErrUnknownStatus) {
		t.Fatalf("Status(No_such_status) = %v, want ErrUnknownStatus", err)
	}

	mustExec(t, m, "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20))")
	mustExec(t, m, "INSERT INTO app.t VALUES (?, ?)", 1, "survives")

	pid, port := m.PID(), m.Port()
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
	if m.PID() != 0 || m.Running() {
		t.Fatalf("after Kill: PID() = %d, Running() = %v", m.PID(), m.Running())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Kill: %v", pid, err)
	}
	if _, err := m.QueryString(ctx, "SELECT 1"); err == nil {
		t.Fatal("query succeeded on a killed server")
	}

	if err := m.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if m.Port() != port || m.PID() == 0 || m.PID() == pid {
		t.Fatalf("after Restart: port %d (was %d), pid %d (was %d)", m.Port(), port, m.PID(), pid)
	}
	wantQuery(t, m, "SELECT v FROM app.t WHERE id = 1", "survives")
	wantQuery(t, m, "SELECT @@gtid_binlog_pos", "0-1-3")

	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if !strings.Contains(m.ErrorLogTail(5), "Shutdown complete") {
		t.Fatalf("error log does not end with a clean shutdown:\n%s", m.ErrorLogTail(5))
	}
}

// TestReplicaFollowsMaster connects a non-master server to a master as a
// native semi-sync replica, which checks that both configurations replicate.
func TestReplicaFollowsMaster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real MariaDB servers")
	}
	t.Parallel()
	ctx := context.Background()
	m := startServer(t, Config{ServerID: 1, Master: true})
	r := startServer(t, Config{ServerID: 2, Extra: []string{"rpl_semi_sync_slave_enabled=ON"}})

	wantQuery(t, r, "SELECT @@log_bin", "1")
	wantQuery(t, r, "SELECT @@log_slave_updates", "1")
	wantQuery(t, r, "SELECT @@rpl_semi_sync_master_enabled", "0")

	if err := m.CreateUser(ctx, "repl", "s3cret'pw", "REPLICATION SLAVE"); err != nil {
		t.Fatal(err)
	}
	if err := m.CreateUser(ctx, "repl", "s3cret'pw", "REPLICATION SLAVE"); err != nil {
		t.Fatalf("CreateUser again: %v", err)
	}
	wantQuery(t, m, "SELECT @@gtid_binlog_pos", "") // CreateUser is not binlogged
	wantQuery(t, m, "SELECT @@sql_log_bin", "1")    // and leaves no session with it off

	mustExec(t, r, "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos",
		m.Port(), "repl", "s3cret'pw")
	mustExec(t, r, "START SLAVE")
	waitFor(t, "a semi-sync client on the master", func() bool {
		v, err := m.Status(ctx, "Rpl_semi_sync_master_clients")
		return err == nil && v == "1"
	})

	start := time.Now()
	mustExec(t, m, "CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY)")
	mustExec(t, m, "INSERT INTO app.t VALUES (1)")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("commits took %v: the replica did not ACK", d)
	}
	if v, err := m.Status(ctx, "Rpl_semi_sync_master_no_tx"); err != nil || v != "0" {
		t.Fatalf("Rpl_semi_sync_master_no_tx = %q, %v; want 0", v, err)
	}
	waitFor(t, "the row on the replica", func() bool {
		v, err := r.QueryString(ctx, "SELECT COUNT(*) FROM app.t")
		return err == nil && v == "1"
	})
	want, err := m.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	if err != nil {
		t.Fatal(err)
	}
	wantQuery(t, r, "SELECT @@gtid_binlog_pos", want) // log_slave_updates keeps the GTIDs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartFailureReportsErrorLog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mariadb-install-db and mariadbd")
	}
	t.Parallel()
	ctx := context.Background()
	if err := EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	var logged []string
	_, err := Start(ctx, Config{
		Dir:      t.TempDir(),
		ServerID: 1,
		Extra:    []string{"no_such_option_at_all=1"},
		Log:      func(format string, args ...any) { logged = append(logged, fmt.Sprintf(format, args...)) },
	})
	if err == nil {
		t.Fatal("Start succeeded with an unknown option")
	}
	if !strings.Contains(err.Error(), "no_such_option_at_all") {
		t.Fatalf("error does not quote the error log: %v", err)
	}
	if len(logged) == 0 {
		t.Fatal("nothing sent to Config.Log")
	}
}

func TestStartOnBusyPortFails(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mariadb-install-db and mariadbd")
	}
	t.Parallel()
	ctx := context.Background()
	if err := EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = Start(ctx, Config{Dir: t.TempDir(), ServerID: 1, Port: l.Addr().(*net.TCPAddr).Port, Log: t.Logf})
	if err == nil {
		t.Fatal("Start succeeded on a busy port")
	}
	if !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("error does not quote the error log: %v", err)
	}
	t.Log(err)
}
