package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/hotstandby/hotstandby/control"
)

// cmdSwitchover asks the running daemon, through its control socket, for a
// planned switchover while the master is alive: the master is made
// read-only and its clients' connections are killed, the standby applies
// its last GTID (bounded by --timeout; past it the master is made writable
// again), the standby is promoted through the recorded state machine, and
// with --rejoin the old master becomes a replica of the new one. It prints
// the write downtime.
func cmdSwitchover(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("switchover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rejoin := fs.Bool("rejoin", false, "then make the old master a replica of the new one (hotstandby rejoin)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long the master stays read-only waiting for the standby before the switchover is undone")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("switchover: --timeout %s: want a positive duration", *timeout)}
	}
	return callDaemon(cfg.ControlPath(), *timeout+5*time.Minute, control.Request{Op: "switchover", Rejoin: *rejoin, Timeout: *timeout}, stdout)
}
