package agent

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/status"
)

// TestSecretsStaySecret: with the password in the environment, it appears
// nowhere the agent writes or shows: argv, the log, status (text and JSON),
// the data directory; and every state file is private (0600/0700).
func TestSecretsStaySecret(t *testing.T) {
	e := newEnv(t)
	// Third way: the environment, no password_file.
	cfg := readFile(t, e.cfgPath)
	cfg = strings.Replace(cfg, "password_file = ", "# password_file = ", 1)
	os.WriteFile(e.cfgPath, []byte(cfg), 0o600)
	t.Setenv(PasswordEnv, e.password)
	p := e.startProcess()
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	c := e.config()
	e.waitCaughtUp(func() status.Report { r, _ := status.Get(context.Background(), c.StatusSource()); return r })

	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid()) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecret(t, "argv", string(cmdline), e.password)
	rep, err := status.Get(context.Background(), c.StatusSource())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(rep)
	assertNoSecret(t, "status JSON", string(js), e.password)
	var text strings.Builder
	rep.WriteText(&text, status.TextOptions{Now: time.Now()})
	assertNoSecret(t, "status text", text.String(), e.password)
	p.kill()
	assertNoSecret(t, "the log", readFile(t, p.LogPath), e.password)

	err = filepath.WalkDir(c.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, info.Mode().Perm(), want)
		}
		if !d.IsDir() {
			b, _ := os.ReadFile(path)
			assertNoSecret(t, path, string(b), e.password)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
