package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The hook names. Each is the key of its command in the configuration and
// the value of HOTSTANDBY_EVENT when the command runs.
const (
	// HookPrePromote runs before the standby is made writable; a non-zero
	// exit vetoes the promotion.
	HookPrePromote = "pre_promote"
	// HookPostPromote runs after the standby became writable: move a VIP,
	// update DNS, call a cloud API.
	HookPostPromote = "post_promote"
	// HookAlert tells a person that something needs attention.
	HookAlert = "alert"
	// HookStonith powers off or isolates the old master.
	HookStonith = "stonith"
)

// DefaultHookTimeout bounds one run of a hook when HookConfig.Timeout is
// zero.
const DefaultHookTimeout = 10 * time.Second

// HookOutputLimit is how many bytes of a hook's combined output a HookResult
// keeps (the last ones) and how many go to the log (the first ones).
const HookOutputLimit = 64 << 10

// hookWaitDelay is how long Run waits for a hook's output pipes to close
// after the hook exited or was killed, before it closes them itself.
const hookWaitDelay = 500 * time.Millisecond

// hookLogLine is the longest piece of output logged as one record; a longer
// line is logged in pieces.
const hookLogLine = 4 << 10

// ErrHookEmpty means a hook was run with no command.
var ErrHookEmpty = errors.New("failover: hook has no command")

// ErrHookNotFound means a hook's executable does not exist or is not in PATH.
var ErrHookNotFound = errors.New("failover: hook command not found")

// ErrHookTimeout means a hook ran longer than its timeout; its process group
// was killed.
var ErrHookTimeout = errors.New("failover: hook timed out")

// ErrHookFailed means a hook exited with a non-zero status or was killed by
// a signal it was not sent by the runner. For pre_promote it is a veto.
var ErrHookFailed = errors.New("failover: hook failed")

// ErrHookConfig means a HookConfig does not pass Validate or CheckCommands.
var ErrHookConfig = errors.New("failover: invalid hook configuration")

// HookConfig holds the operator's commands, one per event, and the time
// each may take. The agent's configuration file maps onto it.
//
// A command is an argv: the program and its arguments, run directly, with
// no shell. argv[0] is an absolute path or a name looked up in PATH. For a
// shell command line write ["sh", "-c", "ip addr add 10.0.0.5/24 dev eth0 &&
// arping -c 3 -U -I eth0 10.0.0.5"]. An empty command means no hook for that
// event. Commands appear in logs and in the audit log: never put a password
// in one (a hook that needs a secret reads it from a file of its own).
type HookConfig struct {
	// PrePromote runs before promotion; a non-zero exit vetoes it.
	PrePromote []string `toml:"pre_promote"`
	// PostPromote runs after promotion: move a VIP with `ip addr` and a
	// gratuitous ARP (arping), update DNS, call a cloud API.
	PostPromote []string `toml:"post_promote"`
	// Alert runs when a person must look: failover refused, hook failed.
	Alert []string `toml:"alert"`
	// Stonith powers off or isolates the old master ("shoot the other node
	// in the head"), for when it cannot be fenced over SQL.
	Stonith []string `toml:"stonith"`
	// Timeout bounds each run of a hook; on expiry the hook's whole process
	// group is killed. Zero means DefaultHookTimeout.
	Timeout time.Duration `toml:"hook_timeout"`
}

// DefaultHookConfig returns a configuration with no hooks and the default
// timeout.
func DefaultHookConfig() HookConfig {
	return HookConfig{Timeout: DefaultHookTimeout}
}

// Command returns the command configured for the hook name (one of the
// Hook* constants), or nil.
func (c HookConfig) Command(name string) []string {
	switch name {
	case HookPrePromote:
		return c.PrePromote
	case HookPostPromote:
		return c.PostPromote
	case HookAlert:
		return c.Alert
	case HookStonith:
		return c.Stonith
	}
	return nil
}

// hookNames lists the hooks in the order Validate reports them.
var hookNames = []string{HookPrePromote, HookPostPromote, HookAlert, HookStonith}

// Validate checks the configuration without touching the file system. Its
// errors wrap ErrHookConfig and name the key and the bad value.
func (c HookConfig) Validate() error {
	if c.Timeout < 0 {
		return fmt.Errorf("%w: hook_timeout = %s: must not be negative", ErrHookConfig, c.Timeout)
	}
	for _, name := range hookNames {
		argv := c.Command(name)
		if len(argv) == 0 {
			continue
		}
		switch p := argv[0]; {
		case p == "":
			return fmt.Errorf("%w: %s[0] is empty", ErrHookConfig, name)
		case strings.ContainsRune(p, '/') && !filepath.IsAbs(p):
			return fmt.Errorf("%w: %s[0] = %q: use an absolute path or a name found in PATH", ErrHookConfig, name, p)
		}
	}
	return nil
}

// CheckCommands reports the first configured command whose executable
// cannot be found, so that a typo fails at start-up rather than during a
// failover. Its errors wrap ErrHookConfig and ErrHookNotFound.
func (c HookConfig) CheckCommands() error {
	for _, name := range hookNames {
		argv := c.Command(name)
		if len(argv) == 0 {
			continue
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return fmt.Errorf("%w: %s[0]: %w: %w%s", ErrHookConfig, name, ErrHookNotFound, err, argvHint(argv))
		}
	}
	return nil
}

// argvHint explains the likely mistake of a whole command line written as
// one string.
func argvHint(argv []string) string {
	if len(argv) == 1 && strings.ContainsAny(argv[0], " \t") {
		return ` (a command is an argv, not a shell line: write ["sh", "-c", "..."] or split the arguments)`
	}
	return ""
}

// HookEvent describes the failover event a hook runs for. Its fields reach
// the hook as environment variables (see Env); it holds no secret and must
// not be given one.
type HookEvent struct {
	// Event is the hook's name (HOTSTANDBY_EVENT); Run fills it in from its
	// name argument when empty.
	Event string
	// Reason says why, in words (HOTSTANDBY_REASON): "master unreachable for
	// 12s, witness agrees", "switchover requested by operator".
	Reason string
	// Epoch is the failover epoch of the promotion (HOTSTANDBY_EPOCH).
	Epoch uint64
	// OldMaster is the old master's host:port (HOTSTANDBY_OLD_MASTER).
	OldMaster string
	// NewMaster is the new master's host:port (HOTSTANDBY_NEW_MASTER).
	NewMaster string
	// GTID is the promoted position, the new master's gtid_binlog_pos
	// (HOTSTANDBY_GTID).
	GTID string
}

// Env returns the event as NAME=value strings, every variable present even
// when its value is empty. NUL bytes, which an environment cannot hold, are
// dropped.
func (e HookEvent) Env() []string {
	kv := func(name, v string) string { return name + "=" + strings.ReplaceAll(v, "\x00", "") }
	return []string{
		kv("HOTSTANDBY_EVENT", e.Event),
		kv("HOTSTANDBY_REASON", e.Reason),
		kv("HOTSTANDBY_EPOCH", strconv.FormatUint(e.Epoch, 10)),
		kv("HOTSTANDBY_OLD_MASTER", e.OldMaster),
		kv("HOTSTANDBY_NEW_MASTER", e.NewMaster),
		kv("HOTSTANDBY_GTID", e.GTID),
	}
}

// hookEnviron returns the environment of a hook: the daemon's own, parent,
// without any HOTSTANDBY_ variable (HOTSTANDBY_MASTER_PASSWORD and
// HOTSTANDBY_STANDBY_PASSWORD among them), then the event's variables.
func hookEnviron(parent []string, ev HookEvent) []string {
	return append(withoutSecrets(parent), ev.Env()...)
}

// withoutSecrets returns parent without its HOTSTANDBY_ variables (the
// passwords among them): the environment of every command the daemon runs
// (hooks, the witness).
func withoutSecrets(parent []string) []string {
	env := make([]string, 0, len(parent)+6)
	for _, v := range parent {
		if !strings.HasPrefix(v, "HOTSTANDBY_") {
			env = append(env, v)
		}
	}
	return env
}

// HookResult is what one run of a hook did.
type HookResult struct {
	// Name is the hook's name, for example "post_promote".
	Name string
	// Argv is the command that ran.
	Argv []string
	// ExitCode is the exit status, or -1 when the hook did not start or
	// ended by a signal (a timeout kill among them).
	ExitCode int
	// Output is the end of the combined standard output and error, at most
	// HookOutputLimit bytes.
	Output string
	// OutputDropped counts the bytes of output before Output that were not
	// kept.
	OutputDropped int64
	// Duration is the time from the start of Run to its return.
	Duration time.Duration
	// Err is nil when the hook exited 0. Otherwise it wraps ErrHookEmpty,
	// ErrHookNotFound, ErrHookTimeout, ErrHookFailed, the parent context's
	// error, or the reason the command could not start.
	Err error
}

// OK reports whether the hook ran and exited 0. A pre_promote hook that is
// not OK, for whatever reason, should be taken as a veto: a gate that
// cannot answer does not say yes.
func (r HookResult) OK() bool { return r.Err == nil }

// Ran reports whether the result is of a hook that was asked to run: false
// for the zero HookResult, which stands for "no hook configured".
func (r HookResult) Ran() bool { return r.Name != "" }

// AsError is nil when the hook exited 0; otherwise an error whose text is
// Summary (the command, its outcome, the last line of its output) and that
// unwraps to Err, so that errors.Is(err, ErrHookTimeout) and the like
// still hold for the caller.
func (r HookResult) AsError() error {
	if r.Err == nil {
		return nil
	}
	return &hookError{summary: r.Summary(), err: r.Err}
}

type hookError struct {
	summary string
	err     error
}

func (e *hookError) Error() string { return e.summary }
func (e *hookError) Unwrap() error { return e.err }

// Summary returns one line for the log and the audit log:
//
//	post_promote [/usr/local/bin/move-vip eth0] exit 0 in 120ms: vip 10.0.0.5 on eth0
func (r HookResult) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s in %s", r.Name, formatArgv(r.Argv), r.outcome(), formatDuration(r.Duration))
	if line := lastLine(r.Output); line != "" {
		b.WriteString(": ")
		b.WriteString(line)
	}
	return b.String()
}

// outcome says in a few words how the run ended.
func (r HookResult) outcome() string {
	switch {
	case r.Err == nil:
		return "exit 0"
	case errors.Is(r.Err, ErrHookTimeout):
		return "timed out, process group killed,"
	case errors.Is(r.Err, ErrHookNotFound):
		return "not found"
	case errors.Is(r.Err, ErrHookEmpty):
		return "no command"
	case r.ExitCode > 0:
		return "exit " + strconv.Itoa(r.ExitCode)
	}
	return strings.TrimPrefix(r.Err.Error(), "failover: ")
}

// HookRunner runs hook commands. It holds no secret: a hook's environment
// is the daemon's without its HOTSTANDBY_ variables, plus the event's. Run
// may be called from several goroutines at once.
type HookRunner struct {
	timeout time.Duration
	log     *slog.Logger
}

// NewHookRunner returns a runner whose hooks may each run for timeout (zero
// or less means DefaultHookTimeout). Output and outcomes go to log, tagged
// component=hooks; nil discards them.
func NewHookRunner(timeout time.Duration, log *slog.Logger) *HookRunner {
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HookRunner{timeout: timeout, log: log.With("component", "hooks")}
}

// Run runs argv as the hook name for the event ev and waits for it, for at
// most the runner's timeout plus half a second.
//
// The hook runs in a process group of its own, with standard input from
// /dev/null, and with the daemon's environment minus every HOTSTANDBY_
// variable (the passwords among them) plus ev's (HookEvent.Env). Its output is
// logged line by line, tagged hook=name, and its tail kept in the result.
// When the timeout expires or ctx is done, the whole group is killed with
// SIGKILL; when the hook exits, whatever it left running in its group is
// killed too. A process that left the group (setsid) survives, but it
// cannot delay Run: the output pipes are closed half a second after the
// hook ended. Run never returns an error: the result says what happened.
func (r *HookRunner) Run(ctx context.Context, name string, argv []string, ev HookEvent) (res HookResult) {
	start := time.Now()
	log := r.log.With("hook", name)
	res = HookResult{Name: name, Argv: slices.Clone(argv), ExitCode: -1}
	defer func() {
		res.Duration = time.Since(start)
		r.logResult(log, res)
	}()
	if len(argv) == 0 || argv[0] == "" {
		res.Err = fmt.Errorf("%w: %s", ErrHookEmpty, name)
		return res
	}
	if ev.Event == "" {
		ev.Event = name
	}
	ctx, cancel := context.WithTimeoutCause(ctx, r.timeout, ErrHookTimeout)
	defer cancel()

	out := newHookOutput(log)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = hookEnviron(os.Environ(), ev)
	cmd.Stdout = out
	cmd.Stderr = out // the same writer: one pipe, the hook's own order
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = hookWaitDelay
	err := cmd.Run()
	if cmd.Process != nil {
		// Whatever the hook left behind in its group.
		killGroup(cmd.Process.Pid)
	}
	res.Output, res.OutputDropped = out.finish()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	res.Err = r.classify(ctx, cmd, err)
	if errors.Is(err, exec.ErrWaitDelay) {
		log.Warn("hook exited but left a process holding its output; its output pipes were closed")
	}
	return res
}

// classify turns the error of cmd.Run into the result's Err.
func (r *HookRunner) classify(ctx context.Context, cmd *exec.Cmd, err error) error {
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState.Success():
		return nil
	case cmd.Process == nil && (errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist)):
		return fmt.Errorf("%w: %w%s", ErrHookNotFound, err, argvHint(cmd.Args))
	case ctx.Err() != nil && context.Cause(ctx) == ErrHookTimeout:
		return fmt.Errorf("%w after %s, process group killed", ErrHookTimeout, r.timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("failover: hook canceled, process group killed: %w", context.Cause(ctx))
	case cmd.Process == nil:
		return fmt.Errorf("failover: hook could not start: %w", err)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("%w: killed by signal %s", ErrHookFailed, ws.Signal())
		}
		return fmt.Errorf("%w: exit status %d", ErrHookFailed, ee.ExitCode())
	}
	return fmt.Errorf("%w: %w", ErrHookFailed, err)
}

// logResult logs the outcome of a run: Info when it exited 0, Warn
// otherwise.
func (r *HookRunner) logResult(log *slog.Logger, res HookResult) {
	level := slog.LevelInfo
	if res.Err != nil {
		level = slog.LevelWarn
	}
	args := []any{"argv", res.Argv, "exit_code", res.ExitCode, "duration", res.Duration}
	if res.Err != nil {
		args = append(args, "err", res.Err)
	}
	log.Log(context.Background(), level, "hook finished: "+res.Summary(), args...)
}

// killGroup sends SIGKILL to the process group pgid. A group that no longer
// exists is not an error.
func killGroup(pgid int) error {
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// formatArgv writes argv as [prog arg ...], quoting the arguments that would
// otherwise be ambiguous.
func formatArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\[]") || !strconv.CanBackquote(a) {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// formatDuration rounds d to milliseconds, or to microseconds below one.
func formatDuration(d time.Duration) string {
	if d >= time.Millisecond {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// lastLine returns the last non-blank line of out, made printable and cut
// to 200 bytes.
func lastLine(out string) string {
	out = strings.TrimRight(out, " \t\r\n")
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	out = strings.ToValidUTF8(out, "?")
	out = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, out)
	if len(out) > 200 {
		cut := 200
		for cut > 0 && !isRuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "..."
	}
	return strings.TrimSpace(out)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// hookOutput collects a hook's combined output: it keeps the last
// HookOutputLimit bytes and logs the first HookOutputLimit bytes line by
// line. It is both the hook's stdout and its stderr, so os/exec gives the
// hook one pipe for the two, and the output keeps the order in which the
// hook wrote it.
type hookOutput struct {
	log *slog.Logger

	mu     sync.Mutex // mu guards the fields below
	tail   []byte     // the newest output, at most 2*HookOutputLimit bytes
	total  int64      // bytes written so far
	logged int        // bytes of output sent to the log so far
	line   []byte     // the partial line not yet logged
}

func newHookOutput(log *slog.Logger) *hookOutput {
	return &hookOutput{log: log}
}

// Write keeps p in the tail and logs its complete lines.
func (o *hookOutput) Write(p []byte) (int, error) {
	written := len(p)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.total += int64(len(p))
	o.tail = append(o.tail, p...)
	if len(o.tail) > 2*HookOutputLimit {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-HookOutputLimit:]...)
	}
	for len(p) > 0 && o.logged < HookOutputLimit {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			i = len(p)
		}
		n := min(i, hookLogLine-len(o.line))
		o.line = append(o.line, p[:n]...)
		p = p[n:]
		if len(p) > 0 && p[0] == '\n' {
			p = p[1:]
			o.emit()
		} else if len(o.line) >= hookLogLine {
			o.emit()
		}
	}
	return written, nil
}

// emit logs the current line. The caller holds o.mu.
func (o *hookOutput) emit() {
	o.logged += len(o.line) + 1
	o.log.Info("hook output", "line", string(bytes.TrimRight(o.line, "\r")))
	o.line = o.line[:0]
}

// finish logs the partial last line and returns the kept output and how
// many bytes before it were dropped. It is called once the hook's output
// pipe is closed.
func (o *hookOutput) finish() (string, int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.line) > 0 && o.logged < HookOutputLimit {
		o.emit()
	}
	if rest := o.total - int64(o.logged); o.logged >= HookOutputLimit && rest > 0 {
		o.log.Info("hook output not logged beyond the first 64 KiB; the result keeps the last 64 KiB", "bytes_not_logged", rest)
	}
	tail := o.tail
	if len(tail) > HookOutputLimit {
		tail = tail[len(tail)-HookOutputLimit:]
	}
	return string(tail), o.total - int64(len(tail))
}
