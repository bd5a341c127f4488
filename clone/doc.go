// Package clone copies a live master into the standby from one consistent
// snapshot, with parallel workers and without blocking the master's
// writers, and hands the snapshot's exact position to the agent.
//
// The snapshot (MariaDB). One coordinator connection runs
//
//	BACKUP STAGE START; BACKUP STAGE BLOCK_DDL   -- DDL waits, DML goes on
//	(read the catalog: schemas, tables, views, triggers, routines)
//	BACKUP STAGE BLOCK_COMMIT                    -- commits wait
//	  each worker: START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY
//	               SHOW SESSION STATUS LIKE 'binlog_snapshot_%'
//	  coordinator: @@gtid_binlog_state, BINLOG_GTID_POS(file, pos)
//	BACKUP STAGE END
//
// While commits wait, every worker's snapshot is the same point of the
// binlog; the clone verifies that every worker reports the same
// binlog_snapshot_file:binlog_snapshot_position and refuses otherwise. The
// time commits waited is measured and logged (CloneState.BlockedCommits). The
// catalog is read under BLOCK_DDL, so it is the snapshot's. BACKUP STAGE
// needs the RELOAD privilege. From the FLUSH stage (implied by BLOCK_DDL)
// to END, writes to non-transactional tables (MyISAM, Aria) wait too; their
// contents are copied from the snapshot's connection without a lock and are
// not consistent: the clone warns and says how long a lock would have
// been needed (their copy time).
//
// MySQL differs (flavor mysql, not implemented): no BACKUP STAGE; the
// equivalent is LOCK INSTANCE FOR BACKUP (DDL) plus FLUSH TABLES WITH READ
// LOCK for the moment the snapshots open, and the position comes from
// performance_schema.log_status (binlog file, position and
// gtid_executed) instead of binlog_snapshot_%.
//
// The copy. Schemas first (SHOW CREATE DATABASE/TABLE), then data: a table
// whose primary key starts with an integer column is split into ranges of
// that column, which the workers share; any other table (no primary key, or
// a non-integer one) is one chunk, read by one worker with a full scan.
// Rows go to the standby as multi-row INSERTs with every value written so
// that the server reads back exactly the master's bytes: strings, binary
// strings, BIT, ENUM, SET, JSON and spatial values as hex literals (trailing
// zero bytes included), integers and DECIMAL as their exact text, FLOAT as
// CAST(.. AS DOUBLE) (its exact value), temporal values as text in
// time_zone '+00:00' on both sessions (TIMESTAMP regardless of the servers'
// time zones). Generated columns are left out of the INSERT: the standby
// computes them. Views and routines follow the tables; triggers come after
// the data; users and grants only with Config.WithGrants.
//
// The standby. Every write of the clone runs with sql_log_bin=0, so the copy
// creates no GTID of the standby's own. At the end the standby's binary log
// is reset and its @@gtid_binlog_state set to the master's at the snapshot
// (and gtid_slave_pos to the snapshot's position), so the agent's applier,
// which takes the standby's GTID state as its applied checkpoint, continues
// with the master's next transaction, and the standby's gtid_binlog_pos
// equals the master's once it has caught up.
//
// Safety. A standby that holds user data (a schema with a table) is refused
// unless Config.Replace. The clone's record (checkpoint.CloneState) says
// "running" from before the first write to the standby until the end; only
// then is it marked complete, with its snapshot position as the agent's
// received frontier, in one checkpoint transaction. A clone interrupted at
// any point (kill -9, a lost connection) leaves "running" or "failed": the
// agent refuses to stream onto it, and the next clone drops the schemas the
// interrupted one created (its own, recorded) and starts over from a new
// snapshot. Resuming chunk by chunk is not possible: the old snapshot is
// gone with its connections, and chunks of two snapshots are not one
// consistent copy.
//
// A Cloner is used by one goroutine (Run).
package clone
