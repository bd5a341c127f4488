package main

import (
	"flag"
	"io"
	"time"

	"github.com/hotstandby/hotstandby/control"
)

// cmdRejoin asks the running daemon, through its control socket, to turn
// the recovered old master into a replica of the promoted standby: it
// compares the servers' GTID histories and refuses, listing them, when the
// old master holds transactions the new one lacks (saying when a restart
// with --init-rpl-role=SLAVE removes them); otherwise it makes the old
// master read-only, points it at the new master (MASTER_USE_GTID=slave_pos,
// MASTER_DEMOTE_TO_SLAVE=1), waits until it has caught up, and records the
// rejoin. --dry-run checks and changes nothing.
func cmdRejoin(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rejoin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dry := fs.Bool("dry-run", false, "check every precondition; change nothing")
	timeout := fs.Duration("timeout", 6*time.Minute, "how long to wait for the rejoin (the old master catches up with the new one)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	return callDaemon(cfg.ControlPath(), *timeout, control.Request{Op: "rejoin", DryRun: *dry}, stdout)
}
