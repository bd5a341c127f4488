// Package failover turns the standby into the master when the master is
// gone, without losing an acknowledged transaction (promise P4). This
// documentation covers the operator's hooks, the fencing of the old master,
// the restart grace and the watch of a returning old master; the detection
// and the promotion state machine document themselves beside them.
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
// # A restart is not a death
//
// Invariant: the Detector declares a master dead whose host refuses
// connections (the probe is refused: the host's kernel answers and nothing
// listens on the port, as during a mariadbd restart or after a crash that
// systemd restarts) only once the refusals have lasted restart_grace
// (default 5 s), and never later than the gate can still prove a promotion
// lossless (LimitGrace: the master's semi-sync timeout after its last word,
// less a fifth of it, at least 1 s, for the promotion to start). A probe
// that times out or fails otherwise (dead host, cut network, frozen
// server, another server on the address) gets no grace: the verdict comes
// after the usual Failures. While the grace holds, the Detector's view says
// so ("master restarting: connection refused for 3.1s, grace 5s"), and a
// verdict after it names it ("master refused connections for 5.0s, longer
// than the restart grace 5s: a death"). The Detector's documentation has the
// table of signals; detect_test.go has a test per row
// (TestDetectorRestartGrace).
//
// What it costs: a mariadbd crash on a live host fails over up to the grace
// later than before (about 5.6 s instead of 0.6 s with the defaults); a
// restart longer than the grace still fails over, and the old master is
// then fenced when it returns (below). A refusal cannot tell a clean
// shutdown from a crash, so the grace is a bound, not a diagnosis.
// Limits: an iptables REJECT rule answers like a refusal (with
// icmp-port-unreachable), so a network cut made that way gets the grace
// too; with systemd socket activation the port stays open while mariadbd
// is down, so a restart looks like a frozen server and gets none.
//
// # The old master after a promotion
//
// Invariant: from the moment the agent's role is master until the old
// master rejoins (checkpoint.Role.Rejoined, set by `hotstandby rejoin`),
// the promoted agent's OldMasterWatch tries the old master's address every
// 10 ms while it does not answer, and the moment it answers as the old
// master (its @@server_id), sets read_only=ON in the watch's first
// statement, then fences it (FenceOldMaster: read_only verified, clients
// killed); it does the same whenever it finds it writable while up. Each
// fence is audited (kind old-master) and runs the alert hook. It never
// touches a server with another server_id on the address (a VIP that moved
// to the new master), nor the old master while a rejoin holds the role lock,
// nor an old master that is up and read-only when the watch starts (a
// switchover's).
//
// The window it leaves: a server whose option file lacks read_only=ON takes
// writes from its first accepted connection, before the watch's next
// attempt: at most one attempt interval (10 ms) plus a handshake and a SET
// GLOBAL, 4-30 ms measured over TCP on one host (TestReturningOldMasterIsFenced;
// local clients on the old master's unix socket were seen to connect up to
// about 100 ms before its TCP port answered). A client inside the window
// can commit; what it committed is errant on the old master, which rejoin
// then refuses. Only read_only=ON in every server's option file closes the
// window; the watch bounds it and kills what connected.
//
// # Concurrency
//
// HookRunner.Run and FenceOldMaster may be called from any goroutine, at the
// same time; neither keeps state between calls.
package failover
