package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/clone"
)

// cmdClone provisions the configured standby from the master:
//
//	hotstandby clone --config FILE [--workers N] [--replace] [--with-grants]
//
// On success the checkpoint store holds the snapshot position, and
// `hotstandby run` streams from there by itself.
func cmdClone(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("clone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := clone.DefaultConfig()
	workers := fs.Int("workers", def.Workers, "parallel copy connections (each holds a snapshot on the master)")
	replace := fs.Bool("replace", false, "drop the standby's user schemas instead of refusing a standby with data")
	withGrants := fs.Bool("with-grants", false, "copy users and grants too")
	deferIndexes := fs.Bool("defer-indexes", def.DeferIndexes, "add secondary indexes after a table's rows are in")
	chunkRows := fs.Int64("chunk-rows", def.ChunkRows, "about how many rows one chunk of a big table holds")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if !cfg.Standby.Enabled() {
		return usageError{errors.New("clone: the config has no [standby] section: set standby.host")}
	}
	syscall.Umask(0o077)
	log, closer, err := agent.NewLogger(cfg.Log, stderr)
	if err != nil {
		return usageError{err}
	}
	defer closer.Close()
	rec, err := clone.OpenStoreRecorder(cfg.CheckpointPath(), cfg.DataDir)
	if err != nil {
		return err
	}
	cc := def
	cc.MasterDSN, cc.StandbyDSN = cfg.MasterDSN(), cfg.StandbyDSN()
	cc.MasterAddr, cc.StandbyAddr = cfg.Master.Addr(), cfg.Standby.Addr()
	cc.Workers, cc.Replace, cc.WithGrants, cc.ChunkRows = *workers, *replace, *withGrants, *chunkRows
	cc.Recorder, cc.Logger, cc.DeferIndexes = rec, log, *deferIndexes
	cc.Progress, cc.ProgressBars = stdout, isTerminal(stdout)
	c, err := clone.New(cc)
	if err != nil {
		return usageError{err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := c.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "clone complete: %d tables, %d rows, %s in %s; commits on the master waited %s for the snapshot (BLOCK_COMMIT waited %s of it for the commits in flight)\n",
		res.Tables, res.Rows, formatCloneBytes(res.Bytes), res.Elapsed.Round(time.Millisecond), res.BlockedCommits.Round(time.Microsecond), res.BlockCommitWait.Round(time.Microsecond))
	fmt.Fprintf(stdout, "the standby is at the master's %s (GTID %s); `hotstandby run` streams from there\n", res.Snapshot.FilePos, res.Snapshot.GTID)
	for _, w := range res.Warnings {
		fmt.Fprintln(stdout, "warning:", w)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func formatCloneBytes(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
