package clone

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// Recorder keeps the clone's record; the checkpoint store in production.
type Recorder interface {
	// Load returns the last record, nil if no clone ever ran here.
	Load() (*checkpoint.CloneState, error)
	// Save records a running or failed clone.
	Save(c checkpoint.CloneState) error
	// Complete marks the clone complete with its snapshot position (the
	// agent's start) and audits it, atomically.
	Complete(c checkpoint.CloneState) error
}

// Config configures a clone.
type Config struct {
	// MasterDSN and StandbyDSN are go-sql-driver DSNs (with passwords:
	// never printed). The clone adds the options it needs.
	MasterDSN, StandbyDSN string
	// MasterAddr and StandbyAddr (host:port) name the servers in messages.
	MasterAddr, StandbyAddr string
	// Workers is the number of parallel copy connections (each holds a
	// snapshot on the master and a connection to the standby).
	Workers int
	// Replace drops the standby's user schemas instead of refusing.
	Replace bool
	// WithGrants copies users and their grants too.
	WithGrants bool
	// DeferIndexes creates tables without their secondary indexes and adds
	// them once the table's rows are in. Off by default: measured no faster
	// with one secondary index per table (BENCHMARKS.md, two runs disagree
	// within the noise), and a table is then complete from its creation.
	DeferIndexes bool
	// ChunkRows is about how many rows one chunk of a big table holds.
	ChunkRows int64
	// BatchBytes is the largest INSERT statement sent (capped at half the
	// standby's max_allowed_packet).
	BatchBytes int
	// Recorder keeps the record (required).
	Recorder Recorder
	// Logger receives the log, tagged component=clone.
	Logger *slog.Logger
	// Progress receives the progress: bars when ProgressBars, else one
	// plain line every ProgressEvery. Nil: progress only in the log.
	Progress      io.Writer
	ProgressBars  bool
	ProgressEvery time.Duration
	// SaveEvery is how often progress is written to the record (status).
	SaveEvery time.Duration
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Workers: 4, ChunkRows: 20000, BatchBytes: 4 << 20, ProgressEvery: 5 * time.Second, SaveEvery: 2 * time.Second}
}

// Validate checks the fields; errors name the setting.
func (c Config) Validate() error {
	switch {
	case c.MasterDSN == "" || c.StandbyDSN == "":
		return errors.New("clone: the master and the standby must both be configured ([master] and [standby])")
	case c.Workers < 1 || c.Workers > 64:
		return fmt.Errorf("clone: --workers %d: want 1-64", c.Workers)
	case c.ChunkRows < 1:
		return fmt.Errorf("clone: chunk rows %d: want at least 1", c.ChunkRows)
	case c.BatchBytes < 4096:
		return fmt.Errorf("clone: batch bytes %d: want at least 4096", c.BatchBytes)
	case c.Recorder == nil:
		return errors.New("clone: no recorder")
	case c.ProgressEvery <= 0 || c.SaveEvery <= 0:
		return errors.New("clone: progress and save intervals must be positive")
	}
	return nil
}
