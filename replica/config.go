package replica

import (
	"database/sql/driver"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultParallelThreads is slave_parallel_threads when Config.ParallelThreads is 0.
const DefaultParallelThreads = 4

// DefaultPoll is how often the watcher reads SHOW SLAVE STATUS when Config.Poll is 0.
const DefaultPoll = 500 * time.Millisecond

// Source is the server the standby replicates from: the agent's binlog
// server (or, in tests, a master).
type Source struct {
	// Host and Port are MASTER_HOST and MASTER_PORT.
	Host string
	Port int
	// User and Password are MASTER_USER and MASTER_PASSWORD. The password
	// goes into CHANGE MASTER only.
	User, Password string
	// HeartbeatPeriod is MASTER_HEARTBEAT_PERIOD; 0 keeps the server's default.
	HeartbeatPeriod time.Duration
	// ServerID is the source's server_id (the agent's binlog server answers
	// with the agent's): the standby's must differ, or its IO thread stops
	// (error 1593). 0: unknown, not checked.
	ServerID uint32
}

// Addr returns host:port.
func (s Source) Addr() string { return fmt.Sprintf("%s:%d", s.Host, s.Port) }

// Config configures a Replica.
type Config struct {
	// DSN is the go-sql-driver DSN of the standby, as a user that may
	// STOP/START SLAVE, CHANGE MASTER and SET GLOBAL (root on a sandbox).
	DSN string
	// Connector, when set, opens the standby connections instead of DSN
	// (which must name the same standby): the agent's connector records
	// whether each connection is encrypted.
	Connector driver.Connector
	// Source is what the standby replicates from.
	Source Source
	// ParallelThreads is slave_parallel_threads (0: DefaultParallelThreads).
	ParallelThreads int
	// Poll is how often the watcher reads the standby's replication state
	// (0: DefaultPoll), and how long it waits before retrying a lost
	// standby connection.
	Poll time.Duration
	// MasterServerID, if set, returns the master's server_id (0 while
	// unknown); a standby with the same server_id is refused.
	MasterServerID func() uint32
	// Logger receives the replica's log lines; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the defaults filled in; DSN and
// Source must still be set.
func DefaultConfig() Config {
	return Config{ParallelThreads: DefaultParallelThreads, Poll: DefaultPoll}
}

// Validate reports the first invalid field, naming it and its value.
func (c Config) Validate() error {
	if _, err := mysql.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("replica: standby DSN: %w", err)
	}
	switch {
	case c.Source.Host == "":
		return fmt.Errorf("replica: source host is empty")
	case c.Source.Port <= 0 || c.Source.Port > 65535:
		return fmt.Errorf("replica: source port %d out of range 1-65535", c.Source.Port)
	case c.Source.User == "":
		return fmt.Errorf("replica: source user is empty")
	case c.ParallelThreads < 0 || c.ParallelThreads > 16383:
		return fmt.Errorf("replica: parallel_threads = %d: want 0-16383 (0 means %d)", c.ParallelThreads, DefaultParallelThreads)
	case c.Poll < 0:
		return fmt.Errorf("replica: poll %s is negative", c.Poll)
	case c.Source.HeartbeatPeriod < 0:
		return fmt.Errorf("replica: heartbeat period %s is negative", c.Source.HeartbeatPeriod)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.ParallelThreads == 0 {
		c.ParallelThreads = DefaultParallelThreads
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
