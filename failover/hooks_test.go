package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hotstandby/hotstandby/harness"
)

// hookScript writes a /bin/sh script with body into a new temporary
// directory and returns its path.
func hookScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// hookRunner returns a runner with timeout whose log is returned too.
func hookRunner(timeout time.Duration) (*HookRunner, *harness.SyncBuffer) {
	l := &harness.SyncBuffer{}
	return NewHookRunner(timeout, slog.New(slog.NewTextHandler(l, nil))), l
}

// hookProcessGone reports whether pid has exited: it no longer exists, or
// it is a zombie waiting for a parent that may never reap it (PID 1 of a
// container need not).
func hookProcessGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state follows the parenthesized command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}

// hookWaitGone waits until pid has exited, for at most d.
func hookWaitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !hookProcessGone(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs %s after the hook ended", pid, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hookReadPid reads the pid a hook script wrote to path.
func hookReadPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the hook did not write its child's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file holds %q", b)
	}
	return pid
}

func TestHookRunSuccess(t *testing.T) {
	script := hookScript(t, `echo "moving vip"; echo "arping sent" >&2; printf 'vip 10.0.0.5 on eth0\n'`)
	r, logs := hookRunner(5 * time.Second)
	res := r.Run(context.Background(), HookPostPromote, []string{script, "eth0"}, HookEvent{})
	if res.Err != nil || !res.OK() || res.ExitCode != 0 {
		t.Fatalf("result %+v", res)
	}
	if want := "moving vip\narping sent\nvip 10.0.0.5 on eth0\n"; res.Output != want {
		t.Errorf("output %q, want %q (stdout and stderr in the order written)", res.Output, want)
	}
	if res.OutputDropped != 0 {
		t.Errorf("OutputDropped = %d", res.OutputDropped)
	}
	want := regexp.MustCompile(`^post_promote \[` + regexp.QuoteMeta(script) + ` eth0\] exit 0 in [0-9.]+(ms|µs|s): vip 10\.0\.0\.5 on eth0$`)
	if s := res.Summary(); !want.MatchString(s) {
		t.Errorf("summary %q does not match %s", s, want)
	}
	log := logs.String()
	for _, want := range []string{
		`component=hooks hook=post_promote line="moving vip"`,
		`component=hooks hook=post_promote line="arping sent"`,
		`level=INFO msg="hook finished: post_promote [`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestHookRunVeto(t *testing.T) {
	script := hookScript(t, `echo "checking lag"; echo "vetoed: replica lag 40s" >&2; exit 3`)
	r, logs := hookRunner(5 * time.Second)
	res := r.Run(context.Background(), HookPrePromote, []string{script}, HookEvent{})
	if res.OK() || res.ExitCode != 3 || !errors.Is(res.Err, ErrHookFailed) {
		t.Fatalf("result %+v, want exit 3 wrapping ErrHookFailed", res)
	}
	if s := res.Summary(); !strings.Contains(s, "] exit 3 in ") || !strings.HasSuffix(s, ": vetoed: replica lag 40s") {
		t.Errorf("summary %q", s)
	}
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("a failed hook is not logged as a warning:\n%s", logs)
	}
}

func TestHookRunTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := hookScript(t, fmt.Sprintf(`sleep 300 &
echo $! > %s
echo "waiting for the cloud API"
sleep 30`, pidFile))
	const timeout = time.Second
	r, _ := hookRunner(timeout)
	start := time.Now()
	res := r.Run(context.Background(), HookStonith, []string{script}, HookEvent{})
	elapsed := time.Since(start)
	if elapsed > timeout+time.Second {
		t.Errorf("Run returned after %s, want within %s", elapsed, timeout+time.Second)
	}
	if elapsed < timeout {
		t.Errorf("Run returned after %s, before the timeout", elapsed)
	}
	if !errors.Is(res.Err, ErrHookTimeout) || res.ExitCode != -1 {
		t.Fatalf("result %+v, want ErrHookTimeout and exit code -1", res)
	}
	if !strings.Contains(res.Output, "waiting for the cloud API") {
		t.Errorf("output before the kill was lost: %q", res.Output)
	}
	if s := res.Summary(); !strings.Contains(s, "timed out, process group killed, in 1") {
		t.Errorf("summary %q", s)
	}
	hookWaitGone(t, hookReadPid(t, pidFile), 5*time.Second)
}

// A child that left the hook's process group and keeps the output pipe
// open survives the kill, but must not hold Run past the timeout.
func TestHookRunTimeoutEscapedChild(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := hookScript(t, fmt.Sprintf(`setsid sleep 300 &
echo $! > %s
sleep 30`, pidFile))
	const timeout = time.Second
	r, _ := hookRunner(timeout)
	start := time.Now()
	res := r.Run(context.Background(), HookStonith, []string{script}, HookEvent{})
	elapsed := time.Since(start)
	pid := hookReadPid(t, pidFile)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if elapsed > timeout+time.Second {
		t.Errorf("Run returned after %s, want within %s", elapsed, timeout+time.Second)
	}
	if !errors.Is(res.Err, ErrHookTimeout) {
		t.Fatalf("result %+v, want ErrHookTimeout", res)
	}
}

// A hook that exits 0 but leaves a child behind succeeds, and the child
// is killed with the hook's process group.
func TestHookRunLeftoverChildKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	script := hookScript(t, fmt.Sprintf(`sleep 300 &
echo $! > %s
echo done`, pidFile))
	r, logs := hookRunner(5 * time.Second)
	start := time.Now()
	res := r.Run(context.Background(), HookAlert, []string{script}, HookEvent{})
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Run returned after %s", elapsed)
	}
	if !res.OK() || res.ExitCode != 0 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(logs.String(), "left a process holding its output") {
		t.Errorf("no warning about the leftover process:\n%s", logs)
	}
	hookWaitGone(t, hookReadPid(t, pidFile), 5*time.Second)
}

func TestHookRunNotFound(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		wantErr error
		hint    bool
	}{
		{name: "absolute path", argv: []string{"/nonexistent/move-vip"}, wantErr: ErrHookNotFound},
		{name: "not in PATH", argv: []string{"hotstandby-no-such-hook"}, wantErr: ErrHookNotFound},
		{name: "command line as one string", argv: []string{"/usr/local/bin/move-vip eth0"}, wantErr: ErrHookNotFound, hint: true},
		{name: "empty argv", argv: nil, wantErr: ErrHookEmpty},
		{name: "empty program", argv: []string{""}, wantErr: ErrHookEmpty},
	}
	r, _ := hookRunner(5 * time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.Run(context.Background(), HookPostPromote, tt.argv, HookEvent{})
			if !errors.Is(res.Err, tt.wantErr) || res.ExitCode != -1 || res.OK() {
				t.Fatalf("result %+v, want %v", res, tt.wantErr)
			}
			if got := strings.Contains(res.Err.Error(), `["sh", "-c", "..."]`); got != tt.hint {
				t.Errorf("error %q: hint %v, want %v", res.Err, got, tt.hint)
			}
			if tt.wantErr == ErrHookNotFound && !strings.Contains(res.Summary(), "] not found in ") {
				t.Errorf("summary %q", res.Summary())
			}
		})
	}
}

func TestHookRunOutputCapped(t *testing.T) {
	// 1 MiB of 64-byte lines on stdout, then a last line.
	script := hookScript(t, `yes 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde | head -c 1048576
echo END`)
	r, logs := hookRunner(10 * time.Second)
	res := r.Run(context.Background(), HookAlert, []string{script}, HookEvent{})
	if !res.OK() {
		t.Fatalf("result %+v", res.Err)
	}
	const total = 1048576 + len("END\n")
	if len(res.Output) != HookOutputLimit || res.OutputDropped != int64(total-HookOutputLimit) {
		t.Errorf("kept %d bytes and dropped %d, want %d and %d", len(res.Output), res.OutputDropped, HookOutputLimit, total-HookOutputLimit)
	}
	if !strings.HasSuffix(res.Output, "0123456789abcde\nEND\n") {
		t.Errorf("output does not end with the last lines: %q", res.Output[len(res.Output)-40:])
	}
	if s := res.Summary(); !strings.HasSuffix(s, ": END") {
		t.Errorf("summary %q", s)
	}
	log := logs.String()
	if n := strings.Count(log, "msg=\"hook output\""); n != HookOutputLimit/64 {
		t.Errorf("logged %d output lines, want the first %d", n, HookOutputLimit/64)
	}
	if !strings.Contains(log, "bytes_not_logged=") {
		t.Error("the log does not say that output was not logged")
	}
	if len(log) > 3*HookOutputLimit {
		t.Errorf("the log took %d bytes for the hook's output", len(log))
	}
}

func TestHookRunEnvironment(t *testing.T) {
	const masterSecret, standbySecret = "m-secret-4f1c9a", "s-secret-77b2e0"
	t.Setenv("HOTSTANDBY_MASTER_PASSWORD", masterSecret)
	t.Setenv("HOTSTANDBY_STANDBY_PASSWORD", standbySecret)
	t.Setenv("HOTSTANDBY_GTID", "stale-from-parent")
	t.Setenv("HOOKTEST_INHERITED", "kept")
	envFile := filepath.Join(t.TempDir(), "environ")
	script := hookScript(t, fmt.Sprintf(`cat /proc/$$/environ > %s`, envFile))
	ev := HookEvent{
		Reason:    "master unreachable for 12s; witness agrees",
		Epoch:     7,
		OldMaster: "10.0.0.1:3306",
		NewMaster: "10.0.0.2:3306",
		GTID:      "0-1-42,1-1-7",
	}
	r, _ := hookRunner(5 * time.Second)
	res := r.Run(context.Background(), HookPostPromote, []string{script}, ev)
	if !res.OK() {
		t.Fatalf("result %+v", res)
	}
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(b), "\x00"), "\x00") {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = value
		if value == masterSecret || value == standbySecret || strings.Contains(kv, "secret-") {
			t.Errorf("the hook's environment holds a secret: %s", name)
		}
	}
	want := map[string]string{
		"HOTSTANDBY_EVENT":      "post_promote",
		"HOTSTANDBY_REASON":     ev.Reason,
		"HOTSTANDBY_EPOCH":      "7",
		"HOTSTANDBY_OLD_MASTER": ev.OldMaster,
		"HOTSTANDBY_NEW_MASTER": ev.NewMaster,
		"HOTSTANDBY_GTID":       ev.GTID,
		"HOOKTEST_INHERITED":    "kept",
	}
	for name, v := range want {
		if env[name] != v {
			t.Errorf("%s = %q, want %q", name, env[name], v)
		}
	}
	for _, name := range []string{"HOTSTANDBY_MASTER_PASSWORD", "HOTSTANDBY_STANDBY_PASSWORD"} {
		if _, ok := env[name]; ok {
			t.Errorf("%s reached the hook", name)
		}
	}
}

func TestHookEventEnv(t *testing.T) {
	got := HookEvent{Event: "alert", Reason: "a\x00b", Epoch: 3}.Env()
	want := []string{
		"HOTSTANDBY_EVENT=alert",
		"HOTSTANDBY_REASON=ab",
		"HOTSTANDBY_EPOCH=3",
		"HOTSTANDBY_OLD_MASTER=",
		"HOTSTANDBY_NEW_MASTER=",
		"HOTSTANDBY_GTID=",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Env() = %q, want %q", got, want)
	}
}

func TestHookRunParentCanceled(t *testing.T) {
	script := hookScript(t, `sleep 30`)
	r, _ := hookRunner(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := r.Run(ctx, HookAlert, []string{script}, HookEvent{})
	if res.OK() || errors.Is(res.Err, ErrHookTimeout) || !errors.Is(res.Err, context.Canceled) {
		t.Fatalf("result %+v, want context.Canceled", res)
	}
}

func TestHookResultSummary(t *testing.T) {
	tests := []struct {
		name string
		res  HookResult
		want string
	}{
		{
			name: "success",
			res:  HookResult{Name: "post_promote", Argv: []string{"/usr/local/bin/move-vip"}, Duration: 120*time.Millisecond + 400*time.Microsecond, Output: "moved\nvip on eth0\n\n"},
			want: "post_promote [/usr/local/bin/move-vip] exit 0 in 120ms: vip on eth0",
		},
		{
			name: "shell argv quoted",
			res:  HookResult{Name: "alert", Argv: []string{"sh", "-c", "mail -s 'x' ops"}, ExitCode: 1, Err: ErrHookFailed, Duration: 1500 * time.Microsecond},
			want: `alert [sh -c "mail -s 'x' ops"] exit 1 in 2ms`,
		},
		{
			name: "timeout",
			res:  HookResult{Name: "stonith", Argv: []string{"/bin/fence"}, ExitCode: -1, Err: fmt.Errorf("%w after 10s", ErrHookTimeout), Duration: 10 * time.Second},
			want: "stonith [/bin/fence] timed out, process group killed, in 10s",
		},
		{
			name: "signal",
			res:  HookResult{Name: "alert", Argv: []string{"/bin/a"}, ExitCode: -1, Err: fmt.Errorf("%w: killed by signal terminated", ErrHookFailed), Duration: 50 * time.Microsecond},
			want: "alert [/bin/a] hook failed: killed by signal terminated in 50µs",
		},
		{
			name: "control characters and long last line",
			res:  HookResult{Name: "alert", Argv: []string{"/bin/a"}, Output: "x\x1b[31m" + strings.Repeat("é", 150)},
			want: "alert [/bin/a] exit 0 in 0s: x [31m" + strings.Repeat("é", 97) + "...",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.res.Summary(); got != tt.want {
				t.Errorf("Summary() =\n%q, want\n%q", got, tt.want)
			}
		})
	}
}

func TestHookConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     HookConfig
		wantErr string
	}{
		{name: "default", cfg: DefaultHookConfig()},
		{name: "zero timeout means default", cfg: HookConfig{PostPromote: []string{"/usr/local/bin/move-vip", "eth0"}}},
		{name: "name in PATH", cfg: HookConfig{Alert: []string{"logger", "-t", "hotstandby"}}},
		{name: "negative timeout", cfg: HookConfig{Timeout: -time.Second}, wantErr: "hook_timeout = -1s"},
		{name: "empty program", cfg: HookConfig{Stonith: []string{"", "x"}}, wantErr: "stonith[0] is empty"},
		{name: "relative path", cfg: HookConfig{PrePromote: []string{"scripts/check"}}, wantErr: `pre_promote[0] = "scripts/check"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrHookConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an ErrHookConfig naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestHookConfigCheckCommands(t *testing.T) {
	ok := HookConfig{PrePromote: []string{"sh", "-c", "exit 0"}, Alert: []string{hookScript(t, "true")}}
	if err := ok.CheckCommands(); err != nil {
		t.Fatal(err)
	}
	bad := HookConfig{PostPromote: []string{"/usr/local/bin/move-vip eth0"}}
	err := bad.CheckCommands()
	if !errors.Is(err, ErrHookConfig) || !errors.Is(err, ErrHookNotFound) || !strings.Contains(err.Error(), "post_promote[0]") {
		t.Fatalf("CheckCommands() = %v", err)
	}
}

func TestHookConfigTOML(t *testing.T) {
	var cfg HookConfig
	_, err := toml.Decode(`
pre_promote  = ["/usr/local/bin/check-lag"]
post_promote = ["sh", "-c", "ip addr add 10.0.0.5/24 dev eth0 && arping -c 3 -U -I eth0 10.0.0.5"]
alert        = ["logger", "-t", "hotstandby"]
stonith      = ["/usr/local/bin/ipmi-off", "db1"]
hook_timeout = "3s"
`, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 3*time.Second || len(cfg.PostPromote) != 3 || cfg.Stonith[1] != "db1" || cfg.Command(HookPrePromote)[0] != "/usr/local/bin/check-lag" {
		t.Fatalf("decoded %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
