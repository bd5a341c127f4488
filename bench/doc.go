// Package bench holds the benchmarks of hotstandby against the tools it
// replaces, measured side by side in one run on real local MariaDB servers
// (started through package sandbox). They are Go tests that skip unless
// HOTSTANDBY_BENCH=1, so `make test` does not run them:
//
//	HOTSTANDBY_BENCH=1 go test ./bench -run TestBenchIngest -v -timeout 30m
//	HOTSTANDBY_BENCH=1 go test ./bench -run TestBenchSemiSync -v -timeout 30m
//	HOTSTANDBY_BENCH=1 go test ./bench -run TestBenchApply -v -count=1 -timeout 60m
//
// (the Makefile's bench-* targets run them under a lock, one at a time).
// The newer ones (TestBenchServe, TestBenchServeFanout, TestBenchClone,
// TestBenchKeepUp: the standby's apply lag under 16 clients at the master's
// full semi-sync rate, and its drain, for replica mode, direct mode and a
// native parallel replica) say what they measure in their own comments and
// in BENCHMARKS.md.
//
// Each test builds the agent from ./cmd/hotstandby into a temporary directory
// and runs it as a separate process with a config file (the master password
// in a 0600 password_file, never on a command line). It is measured from the
// outside only: its status endpoint (GET http://LISTEN/status) for progress,
// /proc/PID/status VmHWM for its peak resident memory, and its standard error
// for warnings and errors, which the tests print.
//
// # TestBenchIngest
//
// One master writes a binlog of HOTSTANDBY_BENCH_MB MiB (default 512): big
// multi-row INSERTs of 1-4 KB rows generated server-side from the SEQUENCE
// engine, single-row commits from four clients between them, and a TRUNCATE
// now and then to keep the table small. Then three readers copy the whole
// binlog, from the first file at offset 4 to the end SHOW MASTER STATUS
// reports, one after the other, HOTSTANDBY_BENCH_RUNS times each (default 3,
// interleaved), and the median time is reported:
//
//   - hotstandby, semi-sync off: from process start until its status says
//     received = the master's end. It verifies every event's CRC32 and fsyncs
//     each batch before it reports it.
//   - mariadb-binlog --read-from-remote-server --raw --to-last-log: until it
//     exits. It neither verifies nor fsyncs.
//   - a native replica's IO thread (a second server, START SLAVE IO_THREAD
//     from the first file): until SHOW SLAVE STATUS shows Read_Master_Log_Pos
//     at the end. It fsyncs its relay log every sync_relay_log (10000) events.
//
// Rates are in MiB (2^20 bytes) of master binlog per second and events per
// second, the events counted by reading the master's binlog files. Every run
// starts with an empty destination and after a sync(2); the master's binlog
// is in the page cache for all of them.
//
// # TestBenchSemiSync
//
// The master's commit rate and latency (single-row autocommit INSERTs into an
// InnoDB table, over the unix socket) with 1 and 16 client threads
// (HOTSTANDBY_BENCH_COMMITS commits per 16-thread run, default 20000, and a
// quarter of that per 1-thread run), for four setups, each replica being the
// master's only semi-sync replica (rpl_semi_sync_master_wait_point=AFTER_SYNC,
// timeout 10 s):
//
//   - the master alone with rpl_semi_sync_master_enabled=OFF;
//   - the agent, which ACKs after fsync;
//   - a native replica's IO thread with rpl_semi_sync_slave_enabled=ON and
//     the default sync_relay_log (it ACKs before any fsync);
//   - the same with sync_relay_log=1 (it fsyncs before it ACKs).
//
// The setups take turns, HOTSTANDBY_BENCH_RUNS rounds (default 3), so that
// a change in the machine's load hits them all; each round starts a fresh
// agent (start = "current", empty data directory) and a fresh native replica
// connection (RESET SLAVE ALL, then the master's current position), and
// commits 200 transactions as a warm-up before each timed run. A run during
// which Rpl_semi_sync_master_no_tx moved fell back to asynchronous
// replication and is marked invalid. Commits/s is the median of the runs;
// p50 and p99 are over the latencies of all of them. The native replica runs
// its IO thread only: like the agent, it does not apply what it receives.
//
// # TestBenchApply
//
// One master (semi-sync off) records a workload once: the schema (three
// InnoDB tables), a 10,000-row preload, HOTSTANDBY_BENCH_TXNS OLTP
// transactions (default 40000) from 16 clients (single-row autocommit
// INSERTs, UPDATEs and DELETEs, and three-statement transfers in one
// transaction), then a 200,000-row INSERT ... SELECT from seq_1_to_200000
// and a 100,000-row UPDATE, one transaction each. The generator counts the
// rows it changed; the transactions are the master's GTIDs. Then three
// appliers replay that binlog from its first file's offset 4, each into a
// fresh standby (a new sandbox: sync_binlog=1,
// innodb_flush_log_at_trx_commit=1, log_slave_updates=ON, binlog on, all
// checked), with the relay log complete before the clock starts:
//
//   - hotstandby: an agent without [standby] receives everything (received
//     = the master's end) and is stopped; the same data directory is started
//     again with a [standby] section (a user with ALL PRIVILEGES), timed from
//     process start until the standby's @@gtid_binlog_pos equals the
//     master's. The table also shows the same run timed from the first
//     /status that says applier.state=applying. An applier.state=error fails
//     the test with the applier's last_error.
//   - a native replica (CHANGE MASTER TO ... MASTER_USE_GTID=no at the first
//     file, offset 4), slave_parallel_threads=0: START SLAVE IO_THREAD until
//     Read_Master_Log_Pos reaches the end, then timed from START SLAVE
//     SQL_THREAD until @@gtid_binlog_pos and @@gtid_slave_pos both equal the
//     master's;
//   - the same with slave_parallel_threads=4, slave_parallel_mode=optimistic.
//
// The appliers take turns, HOTSTANDBY_BENCH_RUNS rounds (default 3); the
// table shows medians, split at the last OLTP transaction into the OLTP part
// and the bulk part, with the CPU time (utime+stime from /proc/PID/stat) of
// the agent and of the standby's mariadbd, and the standby's
// Binlog_group_commits and Innodb_data_fsyncs over the timed window. After
// each run every table's COUNT(*) and SUM(CRC32(CONCAT_WS('#', columns)))
// is compared with the master's; a mismatch fails the test and shows the
// differing id ranges and rows.
//
// Environment: HOTSTANDBY_BENCH=1 enables the tests; HOTSTANDBY_BENCH_MB,
// HOTSTANDBY_BENCH_COMMITS, HOTSTANDBY_BENCH_TXNS and HOTSTANDBY_BENCH_RUNS
// size them;
// HOTSTANDBY_BENCH_LOGDIR, when set, receives a copy of each agent's log.
package bench
