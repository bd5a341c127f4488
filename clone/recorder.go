package clone

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// StoreRecorder keeps the clone's record in the agent's checkpoint store,
// opening it only for each write, so that `hotstandby status` can read it
// meanwhile and a daemon started during the clone finds the clone running
// (and refuses to stream onto it).
type StoreRecorder struct {
	path, dataDir string
	by            string
}

var _ Recorder = (*StoreRecorder)(nil)

// OpenStoreRecorder checks that the data directory is free (no daemon holds
// it) and has not streamed yet (a relay log of its own would mix with the
// copy's position).
func OpenStoreRecorder(checkpointPath, dataDir string) (*StoreRecorder, error) {
	r := &StoreRecorder{path: checkpointPath, dataDir: dataDir, by: selfDescription()}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", dataDir, err)
	}
	return r, r.with(func(s *checkpoint.Store) error {
		st, err := s.Load()
		if err != nil {
			return err
		}
		if st.Received.Pos.FilePos.IsZero() && st.Received.Pos.GTID.IsZero() {
			return nil
		}
		if c, _ := s.LoadClone(); c != nil && c.State == checkpoint.CloneComplete {
			return nil // Run says it is complete
		}
		return fmt.Errorf("clone: data_dir %s already holds a relay log (received up to %s): this standby was streaming; to clone anew, stop the agent and move data_dir away", dataDir, st.Received.Pos)
	})
}

// with opens the store, runs f and closes it, waiting a moment for a
// reader (status) to let go.
func (r *StoreRecorder) with(f func(*checkpoint.Store) error) error {
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

// Load implements Recorder.
func (r *StoreRecorder) Load() (c *checkpoint.CloneState, err error) {
	err = r.with(func(s *checkpoint.Store) error { c, err = s.LoadClone(); return err })
	return c, err
}

// Save implements Recorder.
func (r *StoreRecorder) Save(c checkpoint.CloneState) error {
	return r.with(func(s *checkpoint.Store) error { return s.SaveClone(c) })
}

// Complete implements Recorder; the audit entry names this process's user
// the way the control socket names a caller.
func (r *StoreRecorder) Complete(c checkpoint.CloneState) error {
	return r.with(func(s *checkpoint.Store) error { return s.CompleteClone(c, r.by, time.Now()) })
}

func selfDescription() string {
	name := "?"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("uid %d (%s) pid %d", os.Getuid(), name, os.Getpid())
}
