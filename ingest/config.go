package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotstandby/hotstandby/binlog"
)

// Config configures a Receiver. The agent's config file maps onto it.
type Config struct {
	// Source is how to reach the master as a replica (address, user,
	// password, server_id, heartbeat, read timeout, semi-sync).
	Source binlog.SourceConfig
	// DataDir is the agent's data directory (the receiver keeps the id of
	// its last dump connection there).
	DataDir string
	// RelayDir is the relay log's directory.
	RelayDir string
	// SegmentSize is the relay segment size in bytes.
	SegmentSize int64
	// CheckpointInterval is how often the durable frontiers are offered to
	// the checkpoint store (off the ACK path).
	CheckpointInterval time.Duration
	// Start is where the very first run starts: "current", "gtid:SET" or
	// "file:NAME:POS" (binlog.ParseStart).
	Start string
	// Standby, when set (a [standby] is configured), reads where the
	// standby is before the very first run: a standby that holds the
	// master's transactions is adopted (see firstStart). nil: no standby.
	Standby StandbyProbe
	// ReconnectInitial and ReconnectMax bound the exponential backoff
	// between two sessions.
	ReconnectInitial, ReconnectMax time.Duration
	// Metrics receives the fsync and ACK latencies; nil fields are skipped.
	Metrics Metrics
}

// Metrics are the receiver's latency observers (Prometheus histograms in the
// daemon).
type Metrics struct {
	// Fsync observes the seconds one relay fsync took.
	Fsync prometheus.Observer
	// AckLatency observes the seconds from taking a batch to its ACK.
	AckLatency prometheus.Observer
}

// Validate checks the fields the receiver relies on.
func (c Config) Validate() error {
	if c.Source.Addr == "" || c.Source.User == "" {
		return errors.New("ingest: master address and user are required")
	}
	if c.RelayDir == "" || c.DataDir == "" {
		return errors.New("ingest: data_dir is required")
	}
	if c.SegmentSize <= 0 {
		return fmt.Errorf("ingest: segment size %d: want more than 0", c.SegmentSize)
	}
	if c.CheckpointInterval <= 0 {
		return fmt.Errorf("ingest: checkpoint interval %s: want more than 0", c.CheckpointInterval)
	}
	if c.ReconnectInitial <= 0 || c.ReconnectMax < c.ReconnectInitial {
		return fmt.Errorf("ingest: reconnect %s..%s: want 0 < initial <= max", c.ReconnectInitial, c.ReconnectMax)
	}
	if _, err := binlog.ParseStart(c.Start); err != nil {
		return fmt.Errorf("ingest: start %q: %w", c.Start, err)
	}
	return nil
}
