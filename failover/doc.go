// Package failover turns the standby into the master when the master is
// gone, without losing an acknowledged transaction (promise P4). This
// documentation covers the operator's hooks, the fencing of the old master,
// the promotion's invariants, the rejoin, the gate that decides a promotion
// is lossless, the restart grace and the watch of a returning old master;
// the detection documents itself beside them.
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
// # The gate
//
// Invariant: ProofGate.Lossless answers true only if every commit the master
// has returned OK for, and every one it can still return OK for before the
// old master is fenced or found dead, is durable in the relay log, so that a
// drain applies it; short of that it refuses, naming the condition that
// failed. The only exceptions are the master's own administrators acting
// between two monitor samples (below).
//
// Terms. T is rpl_semi_sync_master_timeout. A proof at P (ingest.Monitor,
// every 2 s) compares two samples p and s of the master and says: every
// commit that returned OK before s's counters were read is durable in the
// relay log. It holds because a commit either was written before p's SHOW
// MASTER STATUS was sent, so it lies at or before p's position, which the
// stream held durably by the end of s; or it completed between p's and s's
// counters, and then it waited for an ACK (Rpl_semi_sync_master_no_tx and
// no_times unchanged, status ON, AFTER_SYNC, wait_no_slave=ON) from the one
// semi-sync replica the master counts (Rpl_semi_sync_master_clients = 1),
// which is the agent: its stream was streaming on one dump connection
// through the whole sample, the master's processlist holds that connection
// as a Binlog Dump, and since a baseline sample (the first on the monitor's
// connection, or the first after a breach) the master received no more ACKs
// (Rpl_semi_sync_master_get_ack) than the agent sent, plus two of the
// agent's that may have been in flight at the baseline. The agent ACKs only
// what is durable. A commit still waiting at s
// (Rpl_semi_sync_master_wait_sessions) is not covered by the proof at s; the
// next sample covers it, or the argument below does. A sample that finds the
// master counting one semi-sync replica while the agent's stream is not
// streaming (retrying, silent, connecting, or reconnected during the
// sample), or whose dump connection the master does not hold, or with more
// ACKs than the agent sent, is a breach with that reason: another replica (a
// DBA's, a restored old one) or a stale dump answers for the agent.
// Rpl_semi_sync_master_yes_tx is not compared with the agent's ACKs: one ACK
// releases every commit at or before its position, so yes_tx legitimately
// moves by more than the ACKs sent.
//
// B is the moment up to which the stream has heard the master, the earliest
// of: (a) the latest moment at which the master's binlog ended (a SHOW
// MASTER STATUS the monitor sent) at or before what the stream holds
// durably, and ACKed; (b) the receipt of the last packet on a dump
// connection; (c) the receipt of the oldest ACK request not yet answered
// (relay disk full or stalled: the event arrived but cannot be stored, so
// cannot be ACKed). (a) carries the argument: a dump that delivers old
// events, a stalled or black-holed one, and a full disk all hear packets, or
// held them once, without holding what the master writes now. (b) and (c)
// only make B earlier, and make the refusal name the cause. B is never P,
// and never the time a connection was opened. No margin for the delay
// between a write on the master and its receipt is needed: (a) compares
// positions, and takes the moment the monitor sent its question, before the
// master read its position.
//
// The gate answers true only if (1) a proof exists and no breach is recorded
// at or after it; (2) B - P < T; (3) now - B < T. Suppose it does, and let
// c0 be the first commit after the proof's coverage to return OK without the
// agent's ACK. No other replica ACKs for the agent (the proof; and the
// exceptions below), so c0 timed out, at w0 + T or later, w0 being when it
// was written (every later commit without an ACK returned OK after that
// timeout switched semi-sync off, or was released by it). So w0 + T <= now <
// B + T, and w0 < B. But the agent writes an ACK right after the fsync that
// made its event durable, and counts the event as held only then; c0 was not
// ACKed, so every SHOW MASTER STATUS sent after w0 read a position past what
// the stream holds, and B <= w0. So there is no c0: every commit that
// returned OK was ACKed by the agent, and is durable. (After a restart of
// the agent, the relay's recovered tail counts as held before it is ACKed
// again; there the first clean sample is compared with the stored proof's
// counters, so a fallback while the agent was down is a breach.) Condition
// (2) bounds the time in which the monitor's last word is older than the
// stream's: a proof that stopped long before B (a monitor that cannot reach
// the master while the stream can) says nothing about that time. Condition
// (3) holds only at the decision: a live master behind a partition can fall
// back from B + T on, so the old master must be fenced (or shot) before
// then.
//
// What the gate cannot see: changes made by the master's administrators
// after the last sample, before the master died: SET GLOBAL
// rpl_semi_sync_master_enabled=OFF, a shorter rpl_semi_sync_master_timeout
// than the proof's T, a KILL of a session waiting for its ACK (its commit
// stays), a second semi-sync replica that connects and ACKs first; and an
// ACK the agent wrote that never reached the master (a one-way loss from the
// agent to the master, while the master's events still arrive). Each is a
// breach at the next sample (at most 2 s later) and can lose a commit only
// if the master dies within that interval.
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
//   - When the fence reached the old master, the stream stops only once
//     the relay log durably holds that master's GTID state as the fence
//     left it (FenceResult.End: gtid_binlog_pos read after read_only was
//     verified and its clients killed); a master that answers can have
//     returned OK for commits the agent never received (it fell back to
//     async: the agent was down, as after a crash at the first step, or
//     the fence came more than T after B), and those are in its binlog.
//     If the stream does not hold it within Promoter.CatchUp (30 s), the
//     promotion aborts with both positions (the old master stays fenced,
//     read-only); --force goes past it, recorded in the audit log.
//     TestResumedPromotionKeepsWhatTheMasterCommittedWhileTheAgentWasDown.
//   - Right before the standby is made writable, the SQL fence runs once
//     more (Rechecker, within a second): an old master that did not
//     answer at the isolation because it was frozen (a paused VM,
//     SIGSTOP: its port accepts, nothing answers) may have woken up
//     during the drain, writable. One that still does not answer changes
//     nothing; one that answers must be fenced and hold nothing beyond the
//     relay log's durable frontier (what it committed after its timeout,
//     async, with the stream stopped), or the standby stays read-only,
//     the alert hook runs, and the promotion waits at its step for
//     `hotstandby promote` (or --force, recorded).
//     TestOldMasterThawedDuringTheDrainIsFencedBeforeTheStandbyIsWritable.
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
