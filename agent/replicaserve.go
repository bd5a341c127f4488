package agent

import (
	"errors"
	"fmt"
	"net"
)

// validateApplyMode checks [standby] mode and parallel_threads.
func (c Config) validateApplyMode() error {
	switch c.Standby.Mode {
	case ModeDirect:
	case ModeReplica:
		if c.Standby.ParallelThreads < 1 || c.Standby.ParallelThreads > 16383 {
			return fmt.Errorf("standby.parallel_threads = %d: want 1-16383", c.Standby.ParallelThreads)
		}
		if ip := net.ParseIP(c.Standby.Host); c.Standby.Host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return fmt.Errorf("standby.mode = %q with standby.host = %q: the standby must reach the agent's binlog server; "+
				"replica mode serves it on 127.0.0.1 and needs the standby on this host (127.0.0.1 or localhost), or use mode = %q",
				c.Standby.Mode, c.Standby.Host, ModeDirect)
		}
	default:
		return fmt.Errorf("standby.mode = %q: want %q or %q", c.Standby.Mode, ModeReplica, ModeDirect)
	}
	return nil
}

// listenRelayServer starts listening with the binlog server for replica
// mode, and returns it with the account the standby logs in with.
func (a *Agent) listenRelayServer() (relayServer, string, string, error) {
	return nil, "", "", errors.New("standby.mode = \"replica\": this build has no binlog server (package binlogserver) yet; use mode = \"direct\"")
}
