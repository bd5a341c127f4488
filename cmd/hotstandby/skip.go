package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/control"
)

// cmdSkip asks the running daemon, through its control socket, to skip the
// transaction its applier is stopped on: the explicit, recorded replacement
// of SQL_SLAVE_SKIP_COUNTER. The daemon records who asked from the socket's
// peer credentials; only root and the daemon's own user may ask.
func cmdSkip(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("skip", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gtid := fs.String("gtid", "", "the GTID of the transaction to skip (as status shows it)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *gtid == "" {
		return usageError{errors.New("skip: --gtid is required: the GTID the applier is stopped on (hotstandby status)")}
	}
	// The daemon waits up to 20s for the standby to commit the skip.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msg, err := control.Call(ctx, cfg.ControlPath(), control.Request{Op: "skip", GTID: *gtid})
	if errors.Is(err, control.ErrRefused) {
		return fmt.Errorf("skip %s: %w", *gtid, err)
	}
	if err != nil {
		return fmt.Errorf("skip: %w", err)
	}
	fmt.Fprintln(stdout, strings.TrimSpace(msg))
	return nil
}
