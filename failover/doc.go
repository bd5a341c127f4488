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
// # Concurrency
//
// HookRunner.Run and FenceOldMaster may be called from any goroutine, at the
// same time; neither keeps state between calls.
package failover
