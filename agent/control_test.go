package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
)

// auditLog reads the audit log of the checkpoint store the agent holds.
func (a *Agent) auditLog(t *testing.T) []checkpoint.AuditEntry {
	t.Helper()
	entries, err := a.store.AuditLog()
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// stopApplierOnDuplicate makes the applier stop on a duplicate key: a row
// inserted on the standby behind the agent's back (not binlogged), then the
// same key from the master. It returns the failing GTID.
func (e *testEnv) stopApplierOnDuplicate(standby *sandbox.Server, a *Agent) string {
	e.t.Helper()
	ctx := context.Background()
	e.exec("INSERT INTO test.t (id, c) VALUES (1, 1)")
	e.waitApplied(standby, 30*time.Second)
	if err := standby.Exec(ctx, "SET SESSION sql_log_bin=0; INSERT INTO test.t (id, c) VALUES (2, 99)"); err != nil {
		e.t.Fatal(err)
	}
	e.exec("INSERT INTO test.t (id, c) VALUES (2, 2)")
	failing, _ := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
	e.exec("INSERT INTO test.t (id, c) VALUES (3, 3)")
	harness.WaitFor(e.t, "the applier to stop on "+failing, 30*time.Second, func() bool {
		st := directApplier(e.t, a).Status()
		return st.State == applier.StateError && st.FailedGTID == failing
	})
	return failing
}

// TestControlSkipOnlyForOwnerAndReadOnlyHTTP: with the applier stopped on
// an error, nothing on the status listener changes anything, another local
// user cannot use the control socket (its modes keep them out; where they do
// not, the daemon refuses their uid), a skip of the wrong GTID is refused
// and not recorded; then root's skip goes through, recorded with the
// identity the kernel gave.
func TestControlSkipOnlyForOwnerAndReadOnlyHTTP(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // the direct applier's skip (replica mode: TestReplicaMode*)
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	failing := e.stopApplierOnDuplicate(standby, p.a)
	before := directApplier(t, p.a).Status()
	c := e.config()
	unchanged := func(t *testing.T) {
		t.Helper()
		st := directApplier(t, p.a).Status()
		if st.State != applier.StateError || st.FailedGTID != failing || st.Errors != before.Errors || st.LastError != before.LastError {
			t.Fatalf("applier changed: %+v, was %+v", st, before)
		}
		if log := p.a.auditLog(t); len(log) != 0 {
			t.Fatalf("audit log %+v, want empty", log)
		}
		if v, _ := standby.QueryString(context.Background(), "SELECT c FROM test.t WHERE id = 3"); v != "" {
			t.Fatalf("the transaction after the failing one is applied (c=%s)", v)
		}
	}
	t.Run("ReadOnlyHTTP", func(t *testing.T) { readOnlyHTTP(t, c.Status.Listen, failing); unchanged(t) })
	t.Run("OtherUser", func(t *testing.T) { otherUserRefused(t, e, c, failing); unchanged(t) })
	t.Run("WrongGTID", func(t *testing.T) {
		_, err := control.Call(context.Background(), c.ControlPath(), control.Request{Op: "skip", GTID: "0-1-999"})
		if !errors.Is(err, control.ErrRefused) || !strings.Contains(err.Error(), "not stopped on that GTID") {
			t.Fatalf("skip of another GTID: %v", err)
		}
		want := `level=WARN msg="control request refused" component=control op=skip gtid=0-1-999 by="` + selfBy(t, os.Getpid()) + `"`
		if !strings.Contains(p.log.String(), want) {
			t.Fatalf("the refused skip is not logged at WARN with who asked (%s)", want)
		}
		unchanged(t)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg, err := control.Call(ctx, c.ControlPath(), control.Request{Op: "skip", GTID: failing})
	if err != nil || !strings.HasPrefix(msg, "skipped "+failing+": the standby committed") {
		t.Fatalf("root's skip: %q, %v", msg, err)
	}
	// The reply comes once the skip is committed and recorded.
	log := p.a.auditLog(t)
	by := selfBy(t, os.Getpid())
	if len(log) != 1 || log[0].Kind != "skip" || log[0].By != by || !strings.Contains(log[0].Text, "skip GTID "+failing+" by "+by+"; applier error: ") || !strings.Contains(log[0].Text, "Duplicate entry '2'") {
		t.Fatalf("audit log %+v, want one skip by %s", log, by)
	}
	e.waitApplied(standby, 30*time.Second)
	if v, _ := standby.QueryString(context.Background(), "SELECT c FROM test.t WHERE id = 2"); v != "99" {
		t.Fatalf("standby row 2 has c=%s; the skipped transaction must not have been applied", v)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(hsBinary, "skip", "--config", e.cfgPath, "--gtid", failing).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "skip: the daemon is not running (no control socket at "+c.ControlPath()+")") {
		t.Fatalf("skip with the daemon stopped: %v: %s", err, out)
	}
}

// readOnlyHTTP: every method but GET (and HEAD) on every path of the status
// listener is refused: 405 on its paths, 404 elsewhere (/skip is gone).
func readOnlyHTTP(t *testing.T, listen, gtid string) {
	t.Helper()
	get, err := http.Get("http://" + listen + "/status")
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if get.StatusCode != http.StatusOK {
		t.Fatalf("GET /status: %s", get.Status)
	}
	paths := map[string]int{"/status": 405, "/metrics": 405, "/healthz": 405, "/readyz": 405,
		"/skip": 404, "/skip?gtid=" + gtid + "&by=root": 404, "/": 404, "/control": 404, "/promote": 404}
	for path, want := range paths {
		for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			req, _ := http.NewRequest(method, "http://"+listen+path, strings.NewReader("gtid="+gtid))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("%s %s: %s, want %d", method, path, resp.Status, want)
			}
			if want == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
				t.Fatalf("%s %s: Allow %q, want GET, HEAD", method, path, resp.Header.Get("Allow"))
			}
		}
	}
}

// otherUserRefused runs `hotstandby skip` as uid 65534 (nobody), with a
// config it can read, against the running daemon's socket: refused by the
// data directory's mode, by the socket's mode, and, with both opened up, by
// the daemon's uid check.
func otherUserRefused(t *testing.T, e *testEnv, c Config, gtid string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the CLI as another user")
	}
	pub, err := os.MkdirTemp("", "hsnobody")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	bin := filepath.Join(pub, "hotstandby")
	copyExecutable(t, hsBinary, bin)
	// The passwords stay private: the skip command does not need them.
	cfg := regexp.MustCompile(`(?m)^password_file = .*$`).ReplaceAllString(readFile(t, e.cfgPath), `password = "unused"`)
	cfgPath := filepath.Join(pub, "hotstandby.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	// Let nobody reach the data directory, as on a real host
	// (/var/lib is 0755): the data directory itself is the barrier.
	dataDir, sock := c.DataDir, c.ControlPath()
	for _, d := range []string{filepath.Dir(e.dir), e.dir, pub} {
		chmod(t, d, 0o711)
	}
	t.Cleanup(func() {
		chmod(t, dataDir, 0o700)
		chmod(t, sock, 0o600)
	})
	tests := []struct {
		name          string
		dirMode, mode os.FileMode
		want          string
	}{
		{"data dir 0700", 0o700, 0o600, "hotstandby: skip: permission denied on " + sock + ": " + dataDir + " is owned by uid 0 (root): run as that user or root"},
		{"socket 0600", 0o711, 0o600, "hotstandby: skip: permission denied on " + sock + ": " + sock + " is owned by uid 0 (root): run as that user or root"},
		{"socket 0666: the uid check", 0o711, 0o666, "hotstandby: skip " + gtid + ": refused: uid 65534 (nobody) may not use the control socket: only root (uid 0) may"},
	}
	for _, tt := range tests {
		chmod(t, dataDir, tt.dirMode)
		chmod(t, sock, tt.mode)
		cmd := exec.Command(bin, "skip", "--config", cfgPath, "--gtid", gtid)
		cmd.Dir = pub
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || strings.TrimSpace(string(out)) != tt.want {
			t.Fatalf("%s: skip as nobody: %v:\n%s\nwant exit 1 and %q", tt.name, err, out, tt.want)
		}
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// copyExecutable copies the binary to a place another user can run it from
// (the test binary's temporary directory is private).
func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
	chmod(t, to, 0o755)
}

// selfBy is how the daemon names a process of the test's user with that pid.
func selfBy(t *testing.T, pid int) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("uid %s (%s) pid %d", u.Uid, u.Username, pid)
}
