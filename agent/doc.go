// Package agent is the daemon: the configuration file, the wiring of the
// receiver (ingest), the standby's apply mode, the monitor, relay purge and
// the checkpoint store, the read-only HTTP listener (status, metrics,
// health) and the control socket for the operations that change state
// (skip, promote, switchover, rejoin).
//
// The HTTP listener binds to 127.0.0.1 by default and answers GET only. The
// control socket (data_dir/control.sock, 0600 in a 0700 directory) takes the
// caller's identity from the kernel (SO_PEERCRED), serves only root and the
// daemon's own user, and every operation that takes effect is written to the
// audit log with who asked.
//
// Apply mode. How the standby applies the relay log ([standby] mode) is one
// applyMode value, picked once in newAgent and held for the agent's
// lifetime: directMode (the agent's applier session), replicaMode (the
// standby's own SQL threads, fed by the agent's binlog server), or noMode
// (no [standby] section: it applies nowhere, reports no applier, purges
// nothing and refuses skip and drain). Status, metrics, relay purge, the
// mirror of the applied frontier, skip, the switchover's wait and the
// promoter's drain call its methods and never ask which mode it is, so no
// path can forget a mode. Each method is safe before the mode has started
// and after it has ended: it reports "connecting" or refuses; it never
// dereferences what start has not made yet.
//
// Apply lag. In both modes "N transactions behind" counts the received
// transactions the standby has not applied and can still get from the relay
// log: from the later, per GTID domain, of the standby's applied position
// and the relay's GTID state up to which the standby provably applied
// everything the relay holds (direct mode: where the applier caught up;
// replica mode: an empty relay log, or the standby's dump caught up at the
// durable frontier with every GTID it asked from and was sent in
// gtid_slave_pos). The master's history from before the relay log's start
// is never lag; a base only moves forward while the agent runs.
//
// Panics. A panic in a control operation, or in the goroutine a switchover
// runs on, is recovered, logged at ERROR with its stack and answered as an
// error (control.ErrOpPanicked): one broken operation must not end the
// master's semi-sync replica. The test harness fails any test whose agent
// logged a panic.
//
// Secrets. Passwords never appear in argv, logs, status or errors: a config
// parse error on a line holding a password does not show that line's text;
// hooks and the witness run without the daemon's HOTSTANDBY_ variables.
// Scrubbed errors keep their chain (Unwrap).
//
// Setup check. SetupCheck (`hotstandby check`) reports what `run` would
// refuse (ERROR, exit 2) or warn about (WARNING, exit 1), one line each with
// where and the fix (the exact GRANT or SET GLOBAL where there is one). It
// calls the preflights run calls (ingest.MasterPreflight,
// applier.Preflight, replica.Preflight, the fence's privilege reading), so
// the two cannot disagree on a setting; what run cannot see before it
// streams (privileges, disk, TLS, failover timing) is checked beside them.
// Invariant: it only reads. It changes nothing on either server, opens no
// checkpoint store and creates no file, so it may run beside a live daemon;
// its lines never hold a password.
//
// systemd. Under Type=notify (NOTIFY_SOCKET set) the daemon says READY=1
// exactly once, and only once the stream is up, waits for its master, or
// the recorded role runs no stream; a refusal (exit 1) comes before any
// READY=1. WATCHDOG=1 follows only after READY=1, every WatchdogSec/2, and
// only while the receiver's status lock is free (notify.go).
//
// Nothing imports agent but cmd/hotstandby.
package agent
