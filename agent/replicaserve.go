package agent

import (
	"fmt"
	"net"

	"github.com/hotstandby/hotstandby/binlogserver"
)

// ApplyMode is the apply mode in effect: standby.mode when set; unset, it
// is replica (the faster one, BENCHMARKS.md) for a standby on this host, and
// direct for a standby elsewhere (replica mode serves the standby on
// 127.0.0.1 only).
func (c Config) ApplyMode() string {
	if c.Standby.Mode != "" {
		return c.Standby.Mode
	}
	if standbyIsLocal(c.Standby.Host) {
		return ModeReplica
	}
	return ModeDirect
}

func standbyIsLocal(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// validateApplyMode checks [standby] mode and parallel_threads.
func (c Config) validateApplyMode() error {
	switch c.ApplyMode() {
	case ModeDirect:
	case ModeReplica:
		if c.Standby.ParallelThreads < 1 || c.Standby.ParallelThreads > 16383 {
			return fmt.Errorf("standby.parallel_threads = %d: want 1-16383", c.Standby.ParallelThreads)
		}
		if !standbyIsLocal(c.Standby.Host) {
			return fmt.Errorf("standby.mode = %q with standby.host = %q: the standby must reach the agent's binlog server, "+
				"which replica mode serves on 127.0.0.1: run the agent on the standby's host (standby.host = \"127.0.0.1\"), or set mode = %q",
				c.Standby.Mode, c.Standby.Host, ModeDirect)
		}
	default:
		return fmt.Errorf("standby.mode = %q: want %q or %q", c.Standby.Mode, ModeReplica, ModeDirect)
	}
	return nil
}

// listenRelayServer starts listening with the standby's own binlog server
// for replica mode: on 127.0.0.1 with an ephemeral port, user
// hotstandby_standby and a password generated at every start and kept in
// memory only (the standby gets it through CHANGE MASTER). It is separate
// from [serve] (other replicas' fan-out), and lives as long as replica mode,
// so it keeps serving the durable relay to the standby through a
// promotion's drain, after the stream from the master has stopped.
func (a *Agent) listenRelayServer() (relayServer, string, string, error) {
	password, err := randomPassword()
	if err != nil {
		return nil, "", "", err
	}
	srv, err := binlogserver.New(binlogserver.Config{
		Listen: "127.0.0.1:0", User: replicaUser, Password: password,
		RelayDir: a.cfg.RelayDir(), Source: a.recv, ServerID: a.cfg.ServerID, Logger: a.log.With("for", "standby"),
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("replica mode: the standby's binlog server: %w", err)
	}
	return srv, replicaUser, password, nil
}
