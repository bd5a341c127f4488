// Package failover turns the standby into the master when the master is
// gone, without losing an acknowledged transaction (promise P4). This
// documentation covers two of its parts, the operator's hooks and the fencing
// of the old master; the detection and the promotion state machine document
// themselves beside them.
//
// # Hooks
//
// A HookConfig holds one command per event: pre_promote (may veto: any
// result but exit 0 is a no), post_promote (move a VIP with `ip addr` and a
// gratuitous ARP, update DNS, call a cloud API), alert, and stonith (power
// off or isolate the old master). A command is an argv run without a shell;
// a shell line is ["sh", "-c", "..."]. HookRunner.Run runs one and returns a
// HookResult whose Summary is the line for the log and the audit log.
//
// Invariants of a run:
//   - It ends within the timeout (hook_timeout, default 10 s) plus half a
//     second. The hook has a process group of its own; on timeout the whole
//     group is killed with SIGKILL, and whatever the hook leaves running in
//     its group when it exits is killed too. A process that left the group
//     (setsid) survives but cannot hold Run: the output pipes are closed
//     half a second after the hook ended.
//   - The event reaches the hook as environment variables: HOTSTANDBY_EVENT,
//     HOTSTANDBY_REASON, HOTSTANDBY_EPOCH, HOTSTANDBY_OLD_MASTER,
//     HOTSTANDBY_NEW_MASTER, HOTSTANDBY_GTID (HookEvent.Env). Every other
//     HOTSTANDBY_ variable of the daemon's environment is removed, the
//     passwords HOTSTANDBY_MASTER_PASSWORD and HOTSTANDBY_STANDBY_PASSWORD
//     among them. The runner never sees a password; the commands themselves
//     are logged, so none may hold one.
//   - Standard input is /dev/null; standard output and error share one pipe,
//     logged line by line (component=hooks, hook=NAME) up to 64 KiB, and the
//     result keeps the last 64 KiB.
//
// # Fencing
//
// FenceOldMaster makes an old master that still answers stop taking writes:
// SET GLOBAL read_only=ON (MariaDB has no super_read_only; read_only binds
// every user without READ_ONLY ADMIN), then KILL of every client connection,
// idle ones included so that no open transaction commits later, and a read
// of @@global.read_only to verify. Replication threads (dump threads, the
// server's own replica threads), the event scheduler and other server threads
// are left alone. An old master that does not answer is the usual case and
// not an error (Reachable=false); one that answers and cannot be fenced is
// (ErrFenceFailed), and then the stonith hook is the way left. The fence user
// needs READ_ONLY ADMIN, CONNECTION ADMIN and PROCESS, granted directly.
//
// Caveats of fencing over SQL: users with READ_ONLY ADMIN (root, ALL
// PRIVILEGES) still write; read_only set at run time is lost when the server
// restarts, so every server's configuration file should say read_only=ON and
// only promotion should turn it off; a transaction already waiting in its
// commit for a semi-sync ACK commits when killed; and a frozen host accepts
// TCP connections without answering, so it looks unreachable and may wake up.
//
// # Rejoin
//
// A rejoin (agent/rejoin.go, with the rules here: ErrantRanges, TailVerdict,
// OwnHole, HoleUnreachable, TempServerIDs) turns the old master into a
// replica of the new one. Its invariants:
//   - Fence first. The old master is fenced (FenceOldMaster: read_only
//     read back ON, every client connection killed) before its GTID history
//     is compared with the new master's; its gtid_binlog_state is read again
//     after CHANGE MASTER and before START SLAVE, and a change (a user with
//     READ_ONLY ADMIN wrote) refuses with both states. So no write the
//     comparison did not see is taken into gtid_slave_pos by
//     MASTER_DEMOTE_TO_SLAVE. A dry run does not fence and says so.
//   - Nothing acknowledged is left behind. Crash recovery with
//     --init-rpl-role=SLAVE truncates prepared transactions that the agent
//     had acknowledged (with AFTER_SYNC, InnoDB commits after the ACK, and
//     its commit record is not written to the log at commit); the new master
//     holds them under the old master's server_id, and a MariaDB replica's
//     IO thread drops events carrying its own server_id, while
//     gtid_slave_pos moves past. OwnHole finds them (the new
//     master's (domain, old server_id) history past the old master's); the
//     old master replicates that stretch under a temporary server_id
//     (TempServerIDs: derived from its own, so the next rejoin recognises
//     one a dead rejoin left; none that either history, the agent, the new
//     master or a replica registered with it uses) until its own
//     gtid_binlog_state holds them, with replication stopped before its
//     server_id is given back. The SQL thread binlogs each event under the
//     event's server_id and GTID, so the old master's history becomes the new
//     master's. replicate_same_server_id is no way: it needs a restart and
//     MariaDB refuses it with log_slave_updates. A stretch behind the
//     replication start (HoleUnreachable: an earlier rejoin already moved
//     past it) is refused: rebuild.
//   - Caught up means the data. A rejoin says caught up only when
//     MASTER_GTID_WAIT reached the new master's position, the new master's
//     history of the old master's server_id is all on the old one, the old
//     one holds nothing the new one lacks, and verify finds every table equal in
//     snapshots at one GTID position (the old master's replication is
//     stopped at each snapshot of the new master, START SLAVE UNTIL, so a
//     busy new master is met). Otherwise it says why, stays a read-only
//     replica, and the role store does not record the rejoin.
//
// # Concurrency
//
// HookRunner.Run and FenceOldMaster may be called from any goroutine, at the
// same time; neither keeps state between calls.
package failover
