// Package failover turns the standby into the master when the master is
// gone, without losing an acknowledged transaction (promise P4). This
// documentation covers the operator's hooks, the fencing of the old master
// and the promotion's invariants; the detection documents itself beside
// them.
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
// # Promotion
//
// Promoter.Promote runs a recorded state machine; each step is saved in the
// checkpoint store before the next begins, and a restart resumes from the
// last one (checkpoint.Step*):
//
//	started → isolated → stream-stopped → applied → writable → done
//	(decision) (fence, stonith) (stream ended) (drained) (read_only=OFF) (role master, hooks)
//
// Invariants:
//   - The standby is made writable only after the old master was isolated:
//     the SQL fence verified read_only=ON with its clients killed, or the
//     stonith command exited 0, or neither could reach it (Isolation.Isolated).
//     An old master that answered and is not fenced, with no stonith that
//     worked, aborts the promotion: the record is undone
//     (checkpoint.Store.AbortPromotion), the standby was not touched, the
//     alert hook runs, the audit log says why, and the agent goes on as a
//     standby (ErrAborted). Only --force goes past it, and the audit log
//     records that it did ("FORCED past an old master that is not fenced").
//   - The old master is isolated first, while the stream still runs. The
//     gate's argument holds only until B + T (B: the stream last heard the
//     master, T: its semi-sync timeout); after that a live old master falls
//     back to async and returns OK for commits the standby never gets. A
//     drain takes seconds to minutes, so fencing after it (as before) let a
//     live master acknowledge lost commits for its whole length. Fencing
//     before the stream stops also means the commits its clients make until
//     the fence are still acknowledged by the agent (and drained), and that
//     an abort needs no restart of the stream: nothing was stopped.
//   - An old master that neither the fence nor stonith can reach (a host
//     that is down, or alive behind a partition) does not stop the
//     promotion: the gate decided before B + T that nothing acknowledged is
//     missing. If it is in fact alive behind a partition, its clients on
//     its side can still write there (async after T): only a stonith
//     command that isolates it out of band (power, switch port, cloud API)
//     closes that; configure one where partitions are possible.
//   - A resumed promotion runs only the steps still to do; each is
//     idempotent. Before the isolation the stream runs beside it, as it did
//     before the restart; after the drain the applier is never started again
//     (the direct applier's session sets read_only=ON), and a resume at
//     writable makes the standby writable again. Steps recorded by older
//     versions (stream-end, drained: not fenced yet; fenced: fenced and
//     drained) resume with their fence; those cannot be aborted (the stream
//     stopped for good): they wait, alerted, for a fence that works or for
//     --force.
//   - In failover.mode = auto a refusal or an abort is retried while the
//     detector still says the master is dead and the gate still calls a
//     promotion lossless (so at most about T after B); status shows
//     "retrying: <why>" meanwhile.
//
// # Concurrency
//
// HookRunner.Run and FenceOldMaster may be called from any goroutine, at the
// same time; neither keeps state between calls.
package failover
