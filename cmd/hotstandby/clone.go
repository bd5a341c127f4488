package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"syscall"
	"time"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/checkpoint"
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
	rec, err := openCloneRecorder(cfg)
	if err != nil {
		return err
	}
	cc := def
	cc.MasterDSN, cc.StandbyDSN = cfg.MasterDSN(), cfg.StandbyDSN()
	cc.MasterAddr, cc.StandbyAddr = cfg.Master.Addr(), cfg.Standby.Addr()
	cc.Workers, cc.Replace, cc.WithGrants, cc.ChunkRows = *workers, *replace, *withGrants, *chunkRows
	cc.Recorder, cc.Logger = rec, log
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
	fmt.Fprintf(stdout, "clone complete: %d tables, %d rows, %s in %s; commits on the master waited %s for the snapshot\n",
		res.Tables, res.Rows, formatCloneBytes(res.Bytes), res.Elapsed.Round(time.Millisecond), res.BlockedCommits.Round(time.Microsecond))
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

// cloneRecorder keeps the clone's record in the checkpoint store, opening
// it only for each write so that `hotstandby status` can read it meanwhile
// and a daemon started during the clone finds the clone running and
// refuses.
type cloneRecorder struct {
	path, dataDir string
	by            string
}

// openCloneRecorder checks that the data directory is free (no daemon) and
// has not streamed yet.
func openCloneRecorder(cfg agent.Config) (*cloneRecorder, error) {
	r := &cloneRecorder{path: cfg.CheckpointPath(), dataDir: cfg.DataDir, by: selfDescription()}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	return r, r.with(func(s *checkpoint.Store) error {
		st, err := s.Load()
		if err != nil {
			return err
		}
		if !st.Received.Pos.FilePos.IsZero() || !st.Received.Pos.GTID.IsZero() {
			if c, _ := s.LoadClone(); c != nil && c.State == checkpoint.CloneComplete {
				return nil // Run says it is complete
			}
			return fmt.Errorf("clone: data_dir %s already holds a relay log (received up to %s): this standby was streaming; to clone anew, stop the agent and move data_dir away", cfg.DataDir, st.Received.Pos)
		}
		return nil
	})
}

// with opens the store, runs f and closes it, waiting a moment for a
// reader (status) to let go.
func (r *cloneRecorder) with(f func(*checkpoint.Store) error) error {
	var s *checkpoint.Store
	var err error
	for range 20 {
		if s, err = checkpoint.Open(r.path, false); !errors.Is(err, checkpoint.ErrLocked) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if errors.Is(err, checkpoint.ErrLocked) {
		return fmt.Errorf("clone: data_dir %s is in use by a running hotstandby: stop it first", r.dataDir)
	}
	if err != nil {
		return err
	}
	defer s.Close()
	return f(s)
}

func (r *cloneRecorder) Load() (c *checkpoint.CloneState, err error) {
	err = r.with(func(s *checkpoint.Store) error { c, err = s.LoadClone(); return err })
	return c, err
}

func (r *cloneRecorder) Save(c checkpoint.CloneState) error {
	return r.with(func(s *checkpoint.Store) error { return s.SaveClone(c) })
}

func (r *cloneRecorder) Complete(c checkpoint.CloneState) error {
	return r.with(func(s *checkpoint.Store) error { return s.CompleteClone(c, r.by, time.Now()) })
}

// selfDescription names the operator for the audit log the way the control
// socket does.
func selfDescription() string {
	name := "?"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("uid %d (%s) pid %d", os.Getuid(), name, os.Getpid())
}
