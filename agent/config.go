package agent

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
	"github.com/hotstandby/hotstandby/tlsconf"
)

// PasswordEnv is the environment variable that may hold the master's
// password, the third way after `password` and `password_file`.
const PasswordEnv = "HOTSTANDBY_MASTER_PASSWORD"

// StandbyPasswordEnv is the same for the standby's password.
const StandbyPasswordEnv = "HOTSTANDBY_STANDBY_PASSWORD"

// StandbyConfig is the [standby] section: the server the applier writes to.
// Without a host, the agent only streams (no applier).
type StandbyConfig struct {
	Host         string `toml:"host"`
	Port         int    `toml:"port"`
	User         string `toml:"user"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// Settings are the TLS keys (tls, ca_file, cert_file, key_file, server_name).
	tlsconf.Settings
	// Mode is the apply mode: "replica" (the standby replicates from the
	// agent's binlog server with its own parallel SQL threads) or "direct"
	// (the agent applies with BINLOG statements). Unset: replica for a
	// standby on this host, direct otherwise (see Config.ApplyMode).
	Mode string `toml:"mode"`
	// ParallelThreads is the standby's slave_parallel_threads in replica mode.
	ParallelThreads int `toml:"parallel_threads"`
}

// Enabled reports whether a standby is configured.
func (s StandbyConfig) Enabled() bool { return s.Host != "" }

// Addr returns host:port.
func (s StandbyConfig) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Duration is a time.Duration written as "5s" in the config file.
type Duration struct{ time.Duration }

// UnmarshalText parses "250ms", "5s", "1m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like 500ms or 5s", b)
	}
	d.Duration = v
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// MasterConfig is the [master] section.
type MasterConfig struct {
	Host string `toml:"host"`
	Port int    `toml:"port"`
	User string `toml:"user"`
	// Password is the replication user's password. Prefer PasswordFile or
	// the HOTSTANDBY_MASTER_PASSWORD environment variable.
	Password string `toml:"password"`
	// PasswordFile is a file whose first line is the password.
	PasswordFile   string   `toml:"password_file"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	// Heartbeat is how often an idle master sends a heartbeat.
	Heartbeat Duration `toml:"heartbeat"`
	// ReadTimeout declares the master silent (and reconnects) when nothing,
	// not even a heartbeat, arrived for this long. Must exceed Heartbeat.
	ReadTimeout Duration `toml:"read_timeout"`
	// Settings are the TLS keys (tls, ca_file, cert_file, key_file, server_name).
	tlsconf.Settings
}

// Addr returns host:port.
func (m MasterConfig) Addr() string { return net.JoinHostPort(m.Host, strconv.Itoa(m.Port)) }

// SemiSyncConfig is the [semisync] section.
type SemiSyncConfig struct {
	// Enabled registers the agent as a semi-sync replica that ACKs only
	// after fsync.
	Enabled bool `toml:"enabled"`
}

// RelayConfig is the [relay] section.
type RelayConfig struct {
	// SegmentSizeMB is the size after which a relay segment is closed.
	SegmentSizeMB int64 `toml:"segment_size_mb"`
	// CheckpointInterval is how often the received/acked frontiers are
	// written to the checkpoint store.
	CheckpointInterval Duration `toml:"checkpoint_interval"`
	// Retention keeps a closed, fully applied segment at least this long
	// after its last write before it is deleted. Segments are deleted only
	// with a [standby] (the applier says what is applied); a stream-only
	// agent keeps them all.
	Retention Duration `toml:"retention"`
}

// StatusConfig is the [status] section.
type StatusConfig struct {
	// Listen is the status endpoint's address; loopback by default. Empty
	// string disables it.
	Listen string `toml:"listen"`
}

// ReconnectConfig is the [reconnect] section.
type ReconnectConfig struct {
	Initial Duration `toml:"initial"` // first wait after a failure
	Max     Duration `toml:"max"`     // cap of the exponential backoff
}

// FailoverConfig is the [failover] section.
type FailoverConfig struct {
	// Mode is auto (promote a dead master's standby when it is provably
	// lossless), manual (detect and alert only; `hotstandby promote`
	// promotes) or off (no detector).
	Mode string `toml:"mode"`
	// Detection (failover.DetectConfig).
	ProbeInterval  Duration `toml:"probe_interval"`
	ProbeTimeout   Duration `toml:"probe_timeout"`
	Failures       int      `toml:"failures"`
	StreamSilence  Duration `toml:"stream_silence"` // 0: twice master.heartbeat
	Witness        []string `toml:"witness"`
	WitnessTimeout Duration `toml:"witness_timeout"`
	// RestartGrace: how long a master that refuses connections (a restart)
	// may stay away before it is declared dead; "0s" turns it off.
	RestartGrace Duration `toml:"restart_grace"`
	// WatchOldMaster: after a promotion, fence the old master whenever it
	// answers until it rejoins (failover.OldMasterWatch).
	WatchOldMaster bool `toml:"watch_old_master"`
	// Hooks (failover.HookConfig): argv, no shell.
	PrePromote  []string `toml:"pre_promote"`
	PostPromote []string `toml:"post_promote"`
	Alert       []string `toml:"alert"`
	Stonith     []string `toml:"stonith"`
	HookTimeout Duration `toml:"hook_timeout"`
	// Fence sets the old master read_only and kills its clients'
	// connections at promotion, when it can be reached.
	Fence bool `toml:"fence"`
	// SemiSyncMaster enables the semi-sync master on the promoted standby
	// (for a replica that will acknowledge it; without one, each commit
	// waits out rpl_semi_sync_master_timeout).
	SemiSyncMaster bool `toml:"semisync_master"`
}

// LogConfig is the [log] section.
type LogConfig struct {
	// File, when set, receives the log (rotated at MaxSizeMB, keeping
	// Backups old files) instead of standard error.
	File      string `toml:"file"`
	MaxSizeMB int    `toml:"max_size_mb"`
	Backups   int    `toml:"backups"`
	Level     string `toml:"level"`  // debug, info, warn, error
	Format    string `toml:"format"` // text or json
}

// Config is the agent's configuration file.
type Config struct {
	// DataDir holds the relay log and the checkpoint store (created 0700).
	DataDir string `toml:"data_dir"`
	// ServerID is the agent's replica server_id, unique among the master's
	// replicas and different from the master's.
	ServerID uint32 `toml:"server_id"`
	// Start is where the first run starts: "current", "gtid:SET" or
	// "file:NAME:POS". Later runs resume from the checkpoint.
	Start string `toml:"start"`
	// ReportHost names the agent in the master's SHOW SLAVE HOSTS.
	ReportHost string `toml:"report_host"`

	Master    MasterConfig    `toml:"master"`
	Standby   StandbyConfig   `toml:"standby"`
	SemiSync  SemiSyncConfig  `toml:"semisync"`
	Relay     RelayConfig     `toml:"relay"`
	Status    StatusConfig    `toml:"status"`
	Reconnect ReconnectConfig `toml:"reconnect"`
	Log       LogConfig       `toml:"log"`
	Failover  FailoverConfig  `toml:"failover"`
	Rejoin    RejoinConfig    `toml:"rejoin"`
	Serve     ServeConfig     `toml:"serve"`

	path            string // the file it was read from
	password        string // resolved; never printed
	standbyPassword string // resolved; never printed
	tls             *tlsSetup
	servePassword   string // resolved; never printed
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Start:      "current",
		ReportHost: "hotstandby@" + host,
		Standby:    StandbyConfig{Port: 3306, ParallelThreads: 4},
		Master: MasterConfig{
			Host: "127.0.0.1", Port: 3306,
			ConnectTimeout: Duration{5 * time.Second},
			Heartbeat:      Duration{1 * time.Second},
			ReadTimeout:    Duration{5 * time.Second},
		},
		SemiSync:  SemiSyncConfig{Enabled: true},
		Relay:     RelayConfig{SegmentSizeMB: 256, CheckpointInterval: Duration{250 * time.Millisecond}, Retention: Duration{24 * time.Hour}},
		Status:    StatusConfig{Listen: "127.0.0.1:8910"},
		Reconnect: ReconnectConfig{Initial: Duration{100 * time.Millisecond}, Max: Duration{10 * time.Second}},
		Log:       LogConfig{MaxSizeMB: 100, Backups: 5, Level: "info", Format: "text"},
		Failover:  defaultFailover(),
	}
}

func defaultFailover() FailoverConfig {
	d := failover.DefaultDetectConfig()
	return FailoverConfig{
		Mode: "manual", ProbeInterval: Duration{d.ProbeInterval}, ProbeTimeout: Duration{d.ProbeTimeout},
		Failures: d.Failures, WitnessTimeout: Duration{d.WitnessTimeout},
		HookTimeout: Duration{failover.DefaultHookTimeout}, Fence: true,
		RestartGrace: Duration{d.RestartGrace}, WatchOldMaster: true,
	}
}

// DetectConfig is the detector's configuration.
func (c Config) DetectConfig() failover.DetectConfig {
	f := c.Failover
	silence := f.StreamSilence.Duration
	if silence <= 0 {
		silence = 2 * c.Master.Heartbeat.Duration
	}
	return failover.DetectConfig{ProbeInterval: f.ProbeInterval.Duration, ProbeTimeout: f.ProbeTimeout.Duration,
		Failures: f.Failures, StreamSilence: silence, Witness: f.Witness, WitnessTimeout: f.WitnessTimeout.Duration,
		RestartGrace: f.RestartGrace.Duration}
}

// HookConfig is the hooks' configuration.
func (c Config) HookConfig() failover.HookConfig {
	f := c.Failover
	return failover.HookConfig{PrePromote: f.PrePromote, PostPromote: f.PostPromote, Alert: f.Alert, Stonith: f.Stonith,
		Timeout: f.HookTimeout.Duration}
}

// LoadConfig reads and validates the file at path. Errors name the file and
// the key; they never contain the password.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	cfg.path = path
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, unwrapPathError(err))
	}
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return Config{}, parseError(path, data, perr)
		}
		return Config{}, &scrubbedError{text: fmt.Sprintf("config %s: %s", path, scrubSecret(scrubSecret(scrubSecret(err.Error(), cfg.Master.Password), cfg.Standby.Password), cfg.Serve.Password)), err: err}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	if cfg.DataDir != "" && !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(filepath.Dir(path), cfg.DataDir)
	}
	for _, p := range []*string{&cfg.Master.PasswordFile, &cfg.Standby.PasswordFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(path), *p)
		}
	}
	cfg.resolveTLSPaths(filepath.Dir(path))
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parseError is a TOML syntax error of the config file at path: the file,
// the line, the key and the parser's message. On a line that holds a
// password the message is left out: the parser quotes the text it found,
// which there is part of the password (password = Sup3rS3cret, unquoted).
// The toml.ParseError stays in the chain (Unwrap).
func parseError(path string, data []byte, perr toml.ParseError) error {
	where := fmt.Sprintf("config %s: line %d", path, perr.Position.Line)
	if perr.LastKey != "" {
		where += ": " + perr.LastKey
	}
	msg := perr.Message
	lines := strings.Split(string(data), "\n")
	if l := perr.Position.Line; (l >= 1 && l <= len(lines) && mayHoldSecret(lines[l-1])) || mayHoldSecret(perr.LastKey) {
		msg = `not valid TOML (the text is not shown: the line may hold a password; a password is a quoted string, password = "...", or use password_file)`
	}
	return &scrubbedError{text: where + ": " + msg, err: perr}
}

// mayHoldSecret reports whether a config line (or key) looks like it sets
// a password, spelled right or not (pasword, passwd, secret).
func mayHoldSecret(s string) bool {
	s = strings.ToLower(s)
	for _, w := range []string{"pass", "pasw", "secret", "pw"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// scrubbedError is an error whose text had secrets removed; the original
// stays reachable through Unwrap for errors.Is and errors.As (never print
// it), as in binlog/errors.go.
type scrubbedError struct {
	text string
	err  error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

func scrubSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "********")
}

// Validate checks every field and resolves the password. Errors name the
// key and the bad value.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("data_dir is required")
	}
	if c.ServerID == 0 {
		return errors.New("server_id is required and must not be 0")
	}
	if _, err := binlog.ParseStart(c.Start); err != nil {
		return fmt.Errorf("start = %q: want current, gtid:SET or file:NAME:POS", c.Start)
	}
	if c.Master.Host == "" {
		return errors.New("master.host is required")
	}
	if c.Master.Port <= 0 || c.Master.Port > 65535 {
		return fmt.Errorf("master.port = %d: want 1-65535", c.Master.Port)
	}
	if c.Master.User == "" {
		return errors.New("master.user is required")
	}
	if c.Master.Heartbeat.Duration < 100*time.Millisecond {
		return fmt.Errorf("master.heartbeat = %s: want at least 100ms", c.Master.Heartbeat)
	}
	if c.Master.ReadTimeout.Duration <= c.Master.Heartbeat.Duration {
		return fmt.Errorf("master.read_timeout = %s must be longer than master.heartbeat = %s", c.Master.ReadTimeout, c.Master.Heartbeat)
	}
	if c.Relay.SegmentSizeMB < 1 {
		return fmt.Errorf("relay.segment_size_mb = %d: want at least 1", c.Relay.SegmentSizeMB)
	}
	if c.Relay.Retention.Duration < 0 {
		return fmt.Errorf("relay.retention = %s: want 0 or more", c.Relay.Retention)
	}
	if c.Relay.CheckpointInterval.Duration <= 0 {
		return fmt.Errorf("relay.checkpoint_interval = %s: want a positive duration", c.Relay.CheckpointInterval)
	}
	if c.Reconnect.Initial.Duration <= 0 || c.Reconnect.Max.Duration < c.Reconnect.Initial.Duration {
		return fmt.Errorf("reconnect.initial = %s, reconnect.max = %s: want 0 < initial <= max", c.Reconnect.Initial, c.Reconnect.Max)
	}
	if c.Status.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Status.Listen); err != nil {
			return fmt.Errorf("status.listen = %q: want host:port", c.Status.Listen)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level = %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format = %q: want text or json", c.Log.Format)
	}
	if c.Standby.Enabled() {
		if c.Standby.Port <= 0 || c.Standby.Port > 65535 {
			return fmt.Errorf("standby.port = %d: want 1-65535", c.Standby.Port)
		}
		if c.Standby.User == "" {
			return errors.New("standby.user is required with standby.host")
		}
		if err := c.validateApplyMode(); err != nil {
			return err
		}
	}
	switch c.Failover.Mode {
	case "auto", "manual", "off":
	default:
		return fmt.Errorf("failover.mode = %q: want auto, manual or off", c.Failover.Mode)
	}
	if c.Failover.Mode != "off" {
		if err := c.DetectConfig().Validate(); err != nil {
			return err
		}
		if err := c.HookConfig().Validate(); err != nil {
			return err
		}
	}
	if err := c.Rejoin.Validate(); err != nil {
		return err
	}
	var err error
	if c.password, err = resolvePassword("master", c.Master.Password, c.Master.PasswordFile, PasswordEnv); err != nil {
		return err
	}
	if c.standbyPassword, err = resolvePassword("standby", c.Standby.Password, c.Standby.PasswordFile, StandbyPasswordEnv); err != nil {
		return err
	}
	if err := c.validateServe(); err != nil {
		return err
	}
	return c.setupTLS()
}

// resolvePassword picks a password from the config value, a file whose
// first line it is, or the environment variable, in that order.
func resolvePassword(section, value, file, env string) (string, error) {
	if value != "" && file != "" {
		return "", fmt.Errorf("%s.password and %s.password_file are both set: keep one", section, section)
	}
	switch {
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s.password_file %s: %w", section, file, unwrapPathError(err))
		}
		line, _, _ := strings.Cut(string(data), "\n")
		return strings.TrimRight(line, "\r"), nil
	case value != "":
		return value, nil
	}
	return os.Getenv(env), nil
}

// MasterPassword returns the resolved password of the master user.
func (c Config) MasterPassword() string { return c.password }

// StandbyDSN returns the go-sql-driver DSN of the standby.
func (c Config) StandbyDSN() string { return c.DSN("standby", "applier") }

// MasterDSN returns the go-sql-driver DSN of the master (for verify).
func (c Config) MasterDSN() string { return c.DSN("master", "sql") }

// CheckpointPath is the checkpoint store's file.
func (c Config) CheckpointPath() string { return filepath.Join(c.DataDir, "checkpoint.db") }

// RelayDir is the relay log's directory.
func (c Config) RelayDir() string { return filepath.Join(c.DataDir, "relay") }

// IngestConfig is the receiver's configuration: the [master], [semisync],
// [relay] and [reconnect] sections.
func (c Config) IngestConfig() ingest.Config {
	tc, fallback, obs := c.masterTLS("dump")
	return ingest.Config{
		Source: binlog.SourceConfig{
			Addr: c.Master.Addr(), User: c.Master.User, Password: c.password,
			ServerID: c.ServerID, ReportHost: c.ReportHost,
			Heartbeat: c.Master.Heartbeat.Duration, ReadTimeout: c.Master.ReadTimeout.Duration,
			ConnectTimeout: c.Master.ConnectTimeout.Duration, SemiSync: c.SemiSync.Enabled,
			TLS: tc, TLSFallback: fallback, OnPlaintext: obs.RecordPlain,
		},
		DataDir: c.DataDir, RelayDir: c.RelayDir(), SegmentSize: c.Relay.SegmentSizeMB << 20,
		CheckpointInterval: c.Relay.CheckpointInterval.Duration, Start: c.Start, Standby: c.standbyProbe(),
		ReconnectInitial: c.Reconnect.Initial.Duration, ReconnectMax: c.Reconnect.Max.Duration,
	}
}

// StatusSource says where `hotstandby status` finds this daemon's report.
func (c Config) StatusSource() status.Source {
	src := status.Source{Listen: c.Status.Listen, CheckpointPath: c.CheckpointPath(), RelayDir: c.RelayDir(),
		Master: c.Master.Addr(), SemiSync: c.SemiSync.Enabled, FailoverMode: c.Failover.Mode}
	if c.Standby.Enabled() {
		src.Standby = c.Standby.Addr()
	}
	return src
}
