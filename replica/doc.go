// Package replica runs the standby in apply mode "replica": the standby's
// own replication threads replicate from a source (the agent's binlog
// server, which serves only durable events of the relay log) and apply in
// parallel (slave_parallel_mode=optimistic), and this package controls them
// from the agent.
//
// # Model
//
// The standby is a stock MariaDB replica of the source, configured with
// CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos. Exactly once comes from the
// server itself: gtid_slave_pos (mysql.gtid_slave_pos, InnoDB) is committed
// atomically with each replicated transaction, and the IO thread asks the
// source for everything after it. A restart of the standby purges its own
// relay log (GTID mode does); the IO thread then fetches again from
// gtid_slave_pos, which is harmless because the source re-serves from its
// durable relay.
//
// A Replica does, in Run: a preflight of the standby's settings for this
// mode (one line per finding, naming the variable, its value and what to
// set); the configuration (read_only=ON, slave_parallel_mode, threads,
// CHANGE MASTER, START SLAVE); then it watches SHOW SLAVE STATUS and
// @@gtid_slave_pos every Config.Poll and publishes a Status. A stopped SQL
// thread is never restarted by the watcher: the error stays, with the GTID
// it failed on, until an operator skips it (Skip) or fixes the standby and
// the agent restarts. A slave that is simply not running (the standby
// restarted with skip-slave-start, someone ran STOP SLAVE) is started again.
//
// Drain waits with MASTER_GTID_WAIT for a frontier and then ends replication
// for good (STOP SLAVE; RESET SLAVE ALL): it is the promotion's drain.
//
// # Secrets
//
// The source's password goes into the CHANGE MASTER statement only. It is
// never logged, never in Status, and scrubbed from every error text.
//
// # Goroutines
//
// Run runs in one goroutine; Status, Drain and Skip may be called from any
// goroutine while it runs. Drain and Skip hold the replica's control lock,
// so the watcher does not START SLAVE behind their back.
package replica
