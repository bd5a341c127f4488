package agent

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
)

// rejoinPrivs are what the agent's [master] user needs on the old master
// for a rejoin (besides streaming): read_only, CHANGE MASTER, SHOW SLAVE
// STATUS, SHOW BINLOG EVENTS.
const rejoinPrivs = "SELECT, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN, READ_ONLY ADMIN, REPLICATION SLAVE ADMIN, SLAVE MONITOR, CONNECTION ADMIN, PROCESS"

var operator = control.Peer{UID: 0, PID: 1}

// grantRejoin gives the agent's user on the old master what a rejoin needs
// (not binlogged: no GTID of its own) and creates the replication user on
// the new master.
func (f *failoverEnv) grantRejoin(old *sandbox.Server) {
	f.t.Helper()
	ctx := context.Background()
	must(f.t, old.CreateUser(ctx, "repl", f.password, rejoinPrivs))
	must(f.t, f.standby.CreateUser(ctx, "repl", f.password, "REPLICATION SLAVE"))
}

// failOver kills the master and waits for the automatic promotion.
func (f *failoverEnv) failOver() {
	f.t.Helper()
	f.waitLossless()
	must(f.t, f.master.Kill())
	harness.WaitFor(f.t, "the automatic promotion", 60*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
	// The role is recorded before the promotion's post_promote hook has run
	// and its lock is released; a rejoin asked meanwhile is refused (rightly).
	harness.WaitFor(f.t, "the promotion to end", 60*time.Second, func() bool {
		l := &f.p.a.roleOps
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.name == ""
	})
}

// checkRejoined checks that old replicates from the new master, is
// read-only, holds every row of the new master (also rows written after the
// rejoin), and that no agent streams from it.
func (f *failoverEnv) checkRejoined(old *sandbox.Server) {
	f.t.Helper()
	ctx := context.Background()
	if ro, _ := old.QueryString(ctx, "SELECT @@read_only"); ro != "1" {
		f.t.Fatalf("read_only=%s on the rejoined old master", ro)
	}
	must(f.t, f.standby.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (42, 'after the rejoin')"))
	harness.WaitFor(f.t, "the old master to replicate a write made on the new master after the rejoin", 60*time.Second, func() bool {
		n, _ := old.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'after the rejoin'")
		return n == "1"
	})
	if a, b := tableRows(f.t, f.standby, "test.t", "id"), tableRows(f.t, old, "test.t", "id"); strings.Join(a, "\n") != strings.Join(b, "\n") {
		f.t.Fatalf("test.t differs: %d rows on the new master, %d on the rejoined old master", len(a), len(b))
	}
	// The dump thread of a stream the agent closed stays until the old
	// master next writes to it (a heartbeat); none may stay longer.
	harness.WaitFor(f.t, "no dump thread on the old master (nothing streams from it)", 30*time.Second, func() bool {
		n, _ := old.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%'")
		return n == "0"
	})
	// A client without READ_ONLY ADMIN cannot write there.
	must(f.t, old.CreateUser(ctx, "app", "app-secret", "SELECT, INSERT"))
	db, err := sql.Open("mysql", "app:app-secret@tcp("+old.Addr()+")/test")
	must(f.t, err)
	defer db.Close()
	if _, err := db.ExecContext(ctx, "INSERT INTO t (c) VALUES (-1)"); err == nil || !strings.Contains(err.Error(), "read-only") {
		f.t.Fatalf("a client's write on the rejoined old master: %v, want refused by read_only", err)
	}
	r := f.report()
	if r.Role != checkpoint.RoleMaster || !strings.Contains(strings.Join(r.Audit, "\n"), "rejoined: old master") {
		f.t.Fatalf("role %s, audit:\n%s\nwant the rejoin recorded", r.Role, strings.Join(r.Audit, "\n"))
	}
	if r.Failover == nil || r.Failover.Promotion == nil || !strings.Contains(r.Failover.Promotion.Rejoined, f.master.Addr()) {
		f.t.Fatalf("status: %+v: want the rejoin of %s shown", r.Failover, f.master.Addr())
	}
	role, err := f.p.a.store.LoadRole()
	if err != nil || !strings.Contains(role.Rejoined, f.master.Addr()) {
		f.t.Fatalf("role store: %+v %v: want the rejoin recorded", role, err)
	}
}

// TestRejoinOldMasterReturns: after an automatic failover the old master
// comes back. With a write made on it meanwhile, rejoin lists that GTID and
// refuses (nothing changes on it); restarted clean, rejoin makes it a
// read-only replica of the new master that holds every row written there.
func TestRejoinOldMasterReturns(t *testing.T) {
	t.Run("errant write", func(t *testing.T) {
		f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
		f.failOver()
		ctx := context.Background()
		n := f.oldMasterEvents()
		must(t, f.master.Restart(ctx))
		f.waitOldMasterEvents(n + 1) // the watch's fence of the returning old master, before anything else touches it
		f.grantRejoin(f.master)
		must(t, f.master.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (7, 'errant')"))
		errant, err := f.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
		must(t, err)
		_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), errant) || !strings.Contains(err.Error(), "errant") {
			t.Fatalf("rejoin with the errant %s on the old master: %v; want refused listing it", errant, err)
		}
		t.Logf("refused: %v", err)
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'system user'"); n != "0" {
			t.Fatalf("the refused rejoin left %s replication threads on the old master", n)
		}
		if !strings.Contains(strings.Join(f.report().Audit, "\n"), "promoted to epoch 1") || strings.Contains(strings.Join(f.report().Audit, "\n"), "rejoined") {
			t.Fatalf("audit: %v", f.report().Audit)
		}
	})
	t.Run("clean", func(t *testing.T) {
		f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
		for i := range 10 {
			f.exec("INSERT INTO test.t (c, payload) VALUES (?, 'before the failover')", i)
		}
		f.failOver()
		ctx := context.Background()
		for i := range 10 {
			must(t, f.standby.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (?, 'on the new master')", i))
		}
		n := f.oldMasterEvents()
		must(t, f.master.Restart(ctx))
		f.waitOldMasterEvents(n + 1) // the watch's fence of the returning old master, before anything else touches it
		f.grantRejoin(f.master)
		msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin", DryRun: true})
		if err != nil || !strings.Contains(msg, "dry run") {
			t.Fatalf("rejoin --dry-run: %q %v", msg, err)
		}
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'system user'"); n != "0" {
			t.Fatalf("the dry run started replication on the old master (%s threads)", n)
		}
		msg, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
		if err != nil {
			t.Fatalf("rejoin: %v", err)
		}
		t.Log(msg)
		if strings.Contains(msg, f.password) {
			t.Fatal("the password is in the rejoin's message")
		}
		if n, _ := f.master.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'on the new master'"); n != "10" {
			t.Fatalf("%s of the 10 rows written on the new master are on the rejoined old master", n)
		}
		f.checkRejoined(f.master)
	})
}

// TestRejoinBadInput: rejoin on an agent that never promoted; with the
// replication user missing on the new master; with a wrong password for
// the [rejoin] user; with the old master down. Each is refused with one
// line that says what to do, without the password, and changes nothing.
func TestRejoinBadInput(t *testing.T) {
	f := newFailoverEnvMode(t, `mode = "auto"`, ModeReplica)
	ctx := context.Background()
	check := func(what string, err error, want ...string) {
		t.Helper()
		if !errors.Is(err, failover.ErrRejoinRefused) {
			t.Fatalf("%s: %v, want refused", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %q, want it to say %q", what, err, w)
			}
		}
		if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), f.password) || strings.Contains(err.Error(), "wrong-secret") {
			t.Fatalf("%s: %q: want one line without the password", what, err)
		}
		t.Logf("%s: %v", what, err)
	}
	_, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	check("not promoted", err, "never promoted")

	f.failOver()
	_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	check("no replication user on the new master", err, "repl", "cannot log in", "[rejoin]")

	must(t, f.standby.CreateUser(ctx, "rejoiner", "right-secret", "REPLICATION SLAVE"))
	pw := filepath.Join(f.dir, "rejoin.pw")
	writeFile(t, pw, "wrong-secret\n")
	f.p.a.cfg.Rejoin = RejoinConfig{User: "rejoiner", PasswordFile: pw}
	_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	check("wrong password", err, "rejoiner", "cannot log in", f.standby.Addr())
	// The same through the command line and the daemon's control socket.
	out, err := exec.Command(hsBinary, "rejoin", "--config", f.cfgPath).CombinedOutput()
	if text := strings.TrimSpace(string(out)); err == nil || strings.Count(text, "\n") > 0 || !strings.Contains(text, "cannot log in") || strings.Contains(text, "wrong-secret") {
		t.Fatalf("hotstandby rejoin with a wrong password: %v, output %q; want exit 1 and one line without the password", err, text)
	}

	must(t, f.standby.CreateUser(ctx, "weak", "weak-secret", "REPLICATION CLIENT"))
	writeFile(t, pw, "weak-secret\n")
	f.p.a.cfg.Rejoin = RejoinConfig{User: "weak", PasswordFile: pw}
	_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	check("no REPLICATION SLAVE", err, "weak", "lacks REPLICATION SLAVE")

	writeFile(t, pw, "right-secret\n")
	f.p.a.cfg.Rejoin = RejoinConfig{User: "rejoiner", PasswordFile: pw}
	_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	check("old master down", err, f.master.Addr(), "unreachable", "--init-rpl-role=SLAVE")
	if r := f.report(); strings.Contains(strings.Join(r.Audit, "\n"), "rejoin") {
		t.Fatalf("a refused rejoin is in the audit log as done: %v", r.Audit)
	}
}

// copyServerFiles copies a stopped server's datadir and binlogs from one
// base directory to another (cp -a keeps them byte for byte).
func copyServerFiles(t *testing.T, from, to string) {
	t.Helper()
	must(t, os.MkdirAll(to, 0o700))
	for _, d := range []string{"data", "binlog"} {
		must(t, os.RemoveAll(filepath.Join(to, d)))
		if out, err := exec.Command("cp", "-a", filepath.Join(from, d), filepath.Join(to, d)).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v: %s", d, err, out)
		}
	}
}

// TestRejoinUnacknowledgedTail: the master dies holding a transaction that
// it wrote to its binlog and was waiting (AFTER_SYNC) to have acknowledged;
// the agent never made it durable, so no client was told it committed. The
// promotion is lossless without it. Started normally, the old master's
// crash recovery commits it: rejoin names it as the unacknowledged tail
// and refuses, saying no restart removes it now. The same crashed files
// started the first time with --init-rpl-role=SLAVE: MariaDB rolls it back
// and truncates its binlog; rejoin finds nothing errant and succeeds.
func TestRejoinUnacknowledgedTail(t *testing.T) {
	var armed atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	hooks := ingest.Hooks{Sync: func(file *os.File) error {
		if armed.Load() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
			return errors.New("test: this fsync never happened")
		}
		return file.Sync()
	}}
	f := newFailoverEnvWith(t, `mode = "auto"`, failoverSetup{mode: ModeReplica, hooks: hooks})
	ctx := context.Background()
	for i := range 5 {
		f.exec("INSERT INTO test.t (c, payload) VALUES (?, 'acknowledged')", i)
	}
	f.waitLossless()
	armed.Store(true)
	tailErr := make(chan error, 1)
	go func() {
		tailErr <- f.master.Exec(context.Background(), "INSERT INTO test.t (c, payload) VALUES (99, 'unacknowledged tail')")
	}()
	<-entered
	harness.WaitFor(t, "the tail's commit to wait for the ACK", 30*time.Second, func() bool {
		return f.status("Rpl_semi_sync_master_wait_sessions") >= 1
	})
	tailGTID, err := f.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	must(t, err)
	must(t, f.master.Kill())
	close(release)
	if err := <-tailErr; err == nil {
		t.Fatal("the tail's COMMIT returned OK to its client")
	}
	harness.WaitFor(t, "the automatic promotion", 60*time.Second, func() bool { return f.report().Role == checkpoint.RoleMaster })
	role, _ := f.p.a.store.LoadRole()
	if role.Forced {
		t.Fatalf("the promotion was forced: %+v", role)
	}
	if n, _ := f.standby.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'unacknowledged tail'"); n != "0" {
		t.Fatal("the tail reached the new master: this test needs it missing there")
	}
	if n, _ := f.standby.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'acknowledged'"); n != "5" {
		t.Fatalf("%s of 5 acknowledged rows on the new master", n)
	}
	for i := range 5 {
		must(t, f.standby.Exec(ctx, "INSERT INTO test.t (c, payload) VALUES (?, 'on the new master')", i))
	}
	crashed := filepath.Join(f.dir, "m-crashed")
	copyServerFiles(t, f.master.Dir(), crashed)
	start := func(extra ...string) *sandbox.Server {
		n := f.oldMasterEvents()
		s, err := sandbox.Start(ctx, sandbox.Config{Dir: f.master.Dir(), Port: f.master.Port(), ServerID: 1, Master: true, Log: t.Logf,
			Extra: append([]string{"rpl_semi_sync_master_timeout=100"}, extra...)})
		must(t, err)
		f.waitOldMasterEvents(n + 1) // the watch's fence of the returning old master, before anything else touches it
		t.Cleanup(func() { s.Stop(context.Background()) })
		f.grantRejoin(s)
		return s
	}

	// The wrong way: a normal start commits the tail.
	old := start()
	if n, _ := old.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'unacknowledged tail'"); n != "1" {
		t.Fatalf("after a normal start the old master holds %s tail rows, want 1 (crash recovery commits it)", n)
	}
	_, err = f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	if !errors.Is(err, failover.ErrRejoinRefused) || !strings.Contains(err.Error(), tailGTID) ||
		!strings.Contains(err.Error(), "unacknowledged AFTER_SYNC tail") || !strings.Contains(err.Error(), "--init-rpl-role=SLAVE") {
		t.Fatalf("rejoin with the committed tail %s: %v; want refused naming it", tailGTID, err)
	}
	t.Logf("refused: %v", err)
	must(t, old.Stop(ctx))

	// The right way: the crashed files, started the first time with
	// --init-rpl-role=SLAVE.
	copyServerFiles(t, crashed, f.master.Dir())
	old = start("init-rpl-role=SLAVE")
	if log := readFile(t, old.ErrorLog()); !strings.Contains(log, "Successfully truncated binlog") {
		t.Fatalf("the old master's error log does not report the truncation:\n%s", log[max(0, len(log)-3000):])
	}
	if n, _ := old.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'unacknowledged tail'"); n != "0" {
		t.Fatalf("the tail is still on the old master after --init-rpl-role=SLAVE (%s rows)", n)
	}
	msg, err := f.p.a.opRejoin(ctx, operator, control.Request{Op: "rejoin"})
	if err != nil {
		t.Fatalf("rejoin after the truncation: %v", err)
	}
	t.Log(msg)
	if n, _ := old.QueryString(ctx, "SELECT COUNT(*) FROM test.t WHERE payload = 'on the new master'"); n != "5" {
		t.Fatalf("%s of the 5 rows written on the new master are on the rejoined old master", n)
	}
	f.master = old
	f.checkRejoined(old)
}

// TestRejoinConfig: the [rejoin] section's bad values name the key.
func TestRejoinConfig(t *testing.T) {
	e := newEnv(t)
	base := readFile(t, e.cfgPath)
	for _, tt := range []struct {
		name, toml, wantErr string
	}{
		{name: "password file without user", toml: "[rejoin]\npassword_file = \"x.pw\"\n", wantErr: "rejoin.password_file is set without rejoin.user"},
		{name: "bad port", toml: "[rejoin]\nport = 70000\n", wantErr: "rejoin.port = 70000"},
		{name: "unknown key", toml: "[rejoin]\npasword = \"x\"\n", wantErr: "rejoin.pasword"},
		{name: "fine", toml: "[rejoin]\nuser = \"r\"\npassword_file = \"master.pw\"\nhost = \"10.0.0.2\"\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			writeFile(t, e.cfgPath, base+"\n"+tt.toml)
			c, err := LoadConfig(e.cfgPath)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				rt, err := c.rejoinTarget()
				if err != nil || rt.user != "r" || rt.password != e.password || rt.addr() != "10.0.0.2:3306" {
					t.Fatalf("rejoin target %s@%s (password read: %v), %v", rt.user, rt.addr(), rt.password == e.password, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadConfig: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestInitRplRoleOption(t *testing.T) {
	for v, want := range map[string]string{
		"10.11.19-MariaDB-0+deb12u1": "--init-rpl-role=SLAVE",
		"10.11.9-MariaDB":            "--init-rpl-role=SLAVE",
		"11.4.3-MariaDB":             "--init-rpl-role=SLAVE",
		"10.11.6-MariaDB-0+deb12u1":  "--rpl-semi-sync-slave-enabled=ON",
		"10.10.7-MariaDB":            "--rpl-semi-sync-slave-enabled=ON",
	} {
		if got := initRplRoleOption(v); !strings.HasPrefix(got, want) {
			t.Errorf("initRplRoleOption(%q) = %q, want %q", v, got, want)
		}
	}
}
