// Package sandbox starts real, throw-away MariaDB servers on the local
// machine, for `make demo` and for integration tests. It is the one harness
// through which every test of the project talks to a real server.
//
// # Basics
//
// A Server is a mariadbd process plus a directory that holds everything it
// writes:
//
//	Dir/my.cnf          option file, passed as the first option (--defaults-file)
//	Dir/data/           datadir, initialized by mariadb-install-db when empty
//	Dir/binlog/         binary logs, mysql-bin.000001 ...
//	Dir/tmp/            tmpdir, private: a starting server deletes every #sql*
//	                    file in its tmpdir, so servers must not share one
//	Dir/error.log       log_error; also receives mariadbd's stdout and stderr
//	Dir/mariadbd.sock   unix socket
//	Dir/mariadbd.pid    pid file
//
// Start writes my.cnf, initializes the datadir if needed, launches mariadbd
// and returns once the server answers a query over its unix socket. The
// server listens on 127.0.0.1 only, on Config.Port or on a free port picked at
// Start. Restart reuses the directory and the port; a datadir that already
// exists is never initialized again, so data survives Stop, Kill and Restart.
// Kill is a crash (SIGKILL); Stop is a clean shutdown (SIGTERM).
//
// Root has no password and is reached over the unix socket (RootDSN, DB,
// Exec, QueryString, Status). CreateUser adds accounts for TCP clients such as
// a replica or the hotstandby agent.
//
// # Replication settings
//
// Every server writes a binary log (ROW format, FULL row image and row
// metadata, CRC32 checksums, sync_binlog=1) with gtid_strict_mode and
// log_slave_updates, so that any server can be promoted. A server with
// Config.Master set also enables semi-synchronous replication as a lossless
// master: rpl_semi_sync_master_wait_point=AFTER_SYNC with a 10 s timeout.
// Config.Extra overrides any of these. mariadb-install-db does not write the
// binary log, so a fresh server has an empty gtid_binlog_pos.
//
// # Caveats
//
//   - A semi-sync master with no semi-sync replica stalls each commit for
//     the whole rpl_semi_sync_master_timeout before it falls back to
//     asynchronous replication. Tests that run a master alone should shorten
//     the timeout through Config.Extra.
//   - mariadbd runs in its own process group with a parent-death signal of
//     SIGKILL: if the process that started it dies, so does the server.
//     Servers do not outlive the test or demo that started them.
//   - A unix socket path is limited to 107 bytes. If Dir/mariadbd.sock would
//     be longer, the socket goes to the system temporary directory under a
//     name derived from Dir; Socket reports the path actually used.
//   - The *sql.DB returned by DB is closed when the server stops; call DB
//     again after Restart.
//   - When run as root the server runs as root (user=root in my.cnf).
//   - EnsureInstalled may run apt-get, which needs root and a network.
//
// # Concurrency
//
// A Server may be used from several goroutines. Stop, Kill and Restart are
// serialized with one another; queries running while the server stops fail.
// The package has no global state: servers in different directories with
// different ports are independent and may run side by side.
package sandbox
