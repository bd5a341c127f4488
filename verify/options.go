package verify

import (
	"context"
	"fmt"
	"time"
)

// DefaultChunkRows is the number of rows per chunk when Options.ChunkRows is
// zero.
const DefaultChunkRows = 10000

// systemSchemas are never compared.
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// Options for Compare. The zero value compares every table, not in a
// snapshot, in chunks of DefaultChunkRows rows.
type Options struct {
	// ChunkRows is the number of rows per chunk for tables whose primary key
	// starts with an integer column. Zero means DefaultChunkRows.
	ChunkRows int

	// Exclude lists schemas to skip in addition to mysql,
	// information_schema, performance_schema and sys. Names match exactly.
	Exclude []string

	// Consistent makes Compare take a consistent snapshot on each side
	// (START TRANSACTION WITH CONSISTENT SNAPSHOT) and require that both
	// snapshots are at the same GTID position, the master's gtid_binlog_pos
	// at its snapshot equal to the standby's. Compare waits up to Timeout for
	// the standby to reach the master's position, which helps while the
	// standby catches up; if the positions never match it returns an error
	// wrapping ErrNotAtSamePosition that names both.
	Consistent bool

	// Timeout bounds how long a Consistent Compare waits for both servers to
	// be at the same position. Zero means a single attempt. The comparison
	// itself is bounded by the context, not by Timeout.
	Timeout time.Duration

	// StopStandbyAt, if set, is called with the GTID position of each
	// master snapshot a Consistent Compare takes, before it polls the
	// standby: a caller that controls the standby's replication stops it
	// there (STOP SLAVE; START SLAVE UNTIL master_gtid_pos = pos), so that
	// a standby catching up with a master that never pauses still meets
	// it. Its error ends Compare. The caller restarts replication after
	// Compare returns.
	StopStandbyAt func(ctx context.Context, pos string) error
}

// Validate reports whether o can be used. Its errors wrap ErrInvalidOptions
// and name the field and the bad value.
func (o Options) Validate() error {
	switch {
	case o.ChunkRows < 0:
		return fmt.Errorf("verify: %w: ChunkRows = %d: want 0 (default) or more", ErrInvalidOptions, o.ChunkRows)
	case o.Timeout < 0:
		return fmt.Errorf("verify: %w: Timeout = %v: want 0 or more", ErrInvalidOptions, o.Timeout)
	}
	for i, s := range o.Exclude {
		if s == "" {
			return fmt.Errorf("verify: %w: Exclude[%d] is empty", ErrInvalidOptions, i)
		}
	}
	return nil
}

// chunkRows returns ChunkRows or its default.
func (o Options) chunkRows() int {
	if o.ChunkRows == 0 {
		return DefaultChunkRows
	}
	return o.ChunkRows
}

// excluded returns every schema to skip.
func (o Options) excluded() []string {
	return append(append([]string(nil), systemSchemas...), o.Exclude...)
}
