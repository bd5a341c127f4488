package main

import (
	"errors"
	"flag"
	"io"
	"time"

	"github.com/hotstandby/hotstandby/control"
)

// cmdPromote asks the running daemon, through its control socket, to
// promote the standby: the gate (lossless or refuse), the pre_promote hook,
// stop the stream for good, drain, fence the old master, make the standby
// writable, record the epoch, post_promote. --dry-run checks and changes
// nothing; --force promotes although a loss is not excluded, and the audit
// log records it with who asked. A promotion that stopped halfway is
// resumed by asking again.
func cmdPromote(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("promote", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dry := fs.Bool("dry-run", false, "check whether a promotion now would be lossless; change nothing")
	force := fs.Bool("force", false, "promote even if it may lose committed transactions (recorded in the audit log)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the promotion (the drain applies everything received)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *dry && *force {
		return usageError{errors.New("promote: --dry-run and --force exclude each other")}
	}
	return callDaemon(cfg.ControlPath(), *timeout, control.Request{Op: "promote", Force: *force, DryRun: *dry}, stdout)
}
