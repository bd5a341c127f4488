// Package agent is the daemon: the configuration file, the wiring of the
// receiver (ingest), the applier, the monitor, relay purge and the
// checkpoint store, the read-only HTTP listener (status, metrics, health)
// and the control socket for the operations that change state (skip now;
// promote, switchover and rejoin next).
//
// The HTTP listener binds to 127.0.0.1 by default and answers GET only. The
// control socket (data_dir/control.sock, 0600 in a 0700 directory) takes the
// caller's identity from the kernel (SO_PEERCRED), serves only root and the
// daemon's own user, and every operation that takes effect is written to the
// audit log with who asked.
//
// Nothing imports agent but cmd/hotstandby.
package agent
