package sandbox

import (
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultStartTimeout is how long Start and Restart wait for a new mariadbd to
// answer its first query when Config.StartTimeout is zero.
const DefaultStartTimeout = 60 * time.Second

// maxSocketPath is the longest unix socket path Linux accepts (sun_path holds
// 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Config describes one server.
type Config struct {
	// Dir is the base directory of the server. The datadir (Dir/data), the
	// binary logs (Dir/binlog), tmpdir (Dir/tmp), the socket, the pid file,
	// my.cnf and error.log live under it. It is created with mode 0700 if missing and
	// may hold the datadir of an earlier run, which is then reused.
	Dir string

	// Port is the TCP port the server listens on, on 127.0.0.1 only. Zero
	// picks a free loopback port at Start; the server keeps that port across
	// Restart.
	Port int

	// ServerID is the server's server_id. It must be non-zero and unique
	// among servers that replicate from one another.
	ServerID uint32

	// Master enables the settings of a semi-synchronous master:
	// rpl_semi_sync_master_enabled=ON, rpl_semi_sync_master_wait_point=AFTER_SYNC
	// and rpl_semi_sync_master_timeout=10000. Every server, master or not,
	// writes a ROW binary log with log_slave_updates, gtid_strict_mode and
	// sync_binlog=1 so that it can be promoted.
	//
	// Caveat: with rpl_semi_sync_master_wait_no_slave=ON (the default) a
	// master without a semi-sync replica stalls its first commits for the
	// whole timeout; tests usually shorten it through Extra.
	Master bool

	// Extra holds additional my.cnf lines for the [mariadbd] section, such as
	// "rpl_semi_sync_master_timeout=3000". They are written after the
	// defaults, so they override them.
	Extra []string

	// StartTimeout bounds how long Start and Restart wait for the server to
	// answer its first query; zero means DefaultStartTimeout.
	StartTimeout time.Duration

	// Detached leaves the server running when the process that started it
	// exits (for `hotstandby sandbox up`); StopDir stops it later. Without
	// it a server dies with its parent, so a crashed test leaves none
	// behind.
	Detached bool

	// TLS, if not nil, gives the server a certificate so that TCP clients
	// may (or, with RequireSecureTransport, must) use TLS.
	TLS *TLSConfig

	// BindAddress is mariadbd's bind-address: one address or several
	// separated by commas. Empty means 127.0.0.1. Tests that run a server
	// inside a private network namespace (see Wrapper) bind it to that
	// namespace's addresses.
	BindAddress string

	// Wrapper, if set, is a command prefix mariadbd runs under, for example
	// ip netns exec NAME, which execs mariadbd in its place (so the process
	// Kill signals is mariadbd itself). mariadb-install-db runs without it.
	Wrapper []string

	// Log, if not nil, receives the server's error-log lines when starting
	// or stopping fails, and the MySQL driver's error messages. t.Logf fits.
	Log func(format string, args ...any)
}

// TLSConfig holds a server's TLS files (PEM) and whether it refuses plain
// TCP connections (require_secure_transport=ON; the unix socket stays allowed).
type TLSConfig struct {
	CA, Cert, Key          string
	RequireSecureTransport bool
}

// Validate reports whether c can be used to start a server. Its errors wrap
// ErrInvalidConfig and name the offending field.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("sandbox: %w: Dir is empty", ErrInvalidConfig)
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("sandbox: %w: Port %d out of range", ErrInvalidConfig, c.Port)
	case c.ServerID == 0:
		return fmt.Errorf("sandbox: %w: ServerID must be non-zero", ErrInvalidConfig)
	case c.StartTimeout < 0:
		return fmt.Errorf("sandbox: %w: StartTimeout %v is negative", ErrInvalidConfig, c.StartTimeout)
	}
	if strings.ContainsAny(c.BindAddress, "\r\n") {
		return fmt.Errorf("sandbox: %w: BindAddress %q contains a line break", ErrInvalidConfig, c.BindAddress)
	}
	for i, line := range c.Extra {
		if strings.ContainsAny(line, "\r\n") {
			return fmt.Errorf("sandbox: %w: Extra[%d] %q contains a line break", ErrInvalidConfig, i, line)
		}
	}
	return nil
}

// layout holds the absolute paths of one server's files.
type layout struct {
	dir    string // base directory
	data   string // datadir
	binlog string // log_bin base name
	tmp    string // tmpdir
	socket string // unix socket
	pid    string // pid-file
	cnf    string // my.cnf, passed as --defaults-file
	errLog string // log_error
}

// newLayout derives the paths under dir, which must be absolute. The socket
// lives under dir unless that path is too long for a unix socket; it then
// moves to the system temporary directory under a name derived from dir.
func newLayout(dir string) (layout, error) {
	l := layout{
		dir:    dir,
		data:   filepath.Join(dir, "data"),
		binlog: filepath.Join(dir, "binlog", "mysql-bin"),
		tmp:    filepath.Join(dir, "tmp"),
		socket: filepath.Join(dir, "mariadbd.sock"),
		pid:    filepath.Join(dir, "mariadbd.pid"),
		cnf:    filepath.Join(dir, "my.cnf"),
		errLog: filepath.Join(dir, "error.log"),
	}
	if len(l.socket) > maxSocketPath {
		h := fnv.New64a()
		h.Write([]byte(dir))
		l.socket = filepath.Join(os.TempDir(), fmt.Sprintf("mariadbd-%016x.sock", h.Sum64()))
	}
	if len(l.socket) > maxSocketPath {
		return layout{}, fmt.Errorf("sandbox: socket path %s longer than %d bytes", l.socket, maxSocketPath)
	}
	return l, nil
}

// myCnf renders the option file of a server listening on port.
func myCnf(c Config, l layout, port int) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	line("# Written by the hotstandby sandbox package; rewritten at every start.")
	line("[client]")
	line("socket=%s", l.socket)
	line("port=%d", port)
	line("user=root")
	line("")
	line("[mariadbd]")
	line("datadir=%s", l.data)
	line("socket=%s", l.socket)
	line("pid-file=%s", l.pid)
	line("port=%d", port)
	bind := "127.0.0.1"
	if c.BindAddress != "" {
		bind = c.BindAddress
	}
	line("bind-address=%s", bind)
	line("server_id=%d", c.ServerID)
	line("log_error=%s", l.errLog)
	// A server deletes every #sql* file in its tmpdir when it starts, so
	// servers sharing /tmp break one another's temporary tables.
	line("tmpdir=%s", l.tmp)
	line("skip-name-resolve")
	line("innodb_buffer_pool_size=128M")
	line("innodb_log_file_size=64M")
	if os.Geteuid() == 0 {
		line("user=root")
	}
	line("log_bin=%s", l.binlog)
	line("relay_log=relay-bin")
	line("binlog_format=ROW")
	line("binlog_row_image=FULL")
	line("binlog_row_metadata=FULL")
	line("binlog_checksum=CRC32")
	line("gtid_strict_mode=ON")
	line("log_slave_updates=ON")
	line("sync_binlog=1")
	if c.Master {
		line("rpl_semi_sync_master_enabled=ON")
		line("rpl_semi_sync_master_wait_point=AFTER_SYNC")
		line("rpl_semi_sync_master_timeout=10000")
	}
	if c.TLS != nil {
		line("ssl_ca=%s", c.TLS.CA)
		line("ssl_cert=%s", c.TLS.Cert)
		line("ssl_key=%s", c.TLS.Key)
		if c.TLS.RequireSecureTransport {
			line("require_secure_transport=ON")
		}
	}
	for _, extra := range c.Extra {
		line("%s", extra)
	}
	return b.String()
}
