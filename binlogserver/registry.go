package binlogserver

import (
	"context"
	"sort"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// Replica is what the registry knows about one connected replica.
type Replica struct {
	ServerID uint32    // the replica's server_id (from its dump request)
	Addr     string    // its TCP address
	Since    time.Time // when its dump began
	// Mode is "gtid" (from @slave_connect_state) or "file".
	Mode string
	// Requested is where the replica asked to start: its GTID state or
	// file:pos.
	Requested string
	// Sent is the master position at the end of the last event sent
	// (what the replica's Read_Master_Log_Pos becomes).
	Sent binlog.FilePos
	// SentGTID is the last GTID of each domain whose transaction was sent
	// whole.
	SentGTID string
	// Segment is the relay segment the replica's cursor reads (0 before it
	// opened one).
	Segment uint64
	// BytesSent counts the event bytes sent on this connection.
	BytesSent uint64
	// CaughtUp says the replica has everything durable.
	CaughtUp bool
	// SemiSync says the replica asked for semi-sync (@rpl_semi_sync_slave):
	// each transaction's last event asks it for an ACK. Acks counts the
	// ACKs it sent on this connection; Acked is the master position of the
	// last one (what it has received and stored), at AckedAt.
	SemiSync bool
	Acks     uint64
	Acked    binlog.FilePos
	AckedAt  time.Time
}

// replica is one registry entry; the dump goroutine updates it under the
// server's mu.
type replica struct {
	Replica
	cancel context.CancelFunc
	// need is the oldest segment the replica may still read.
	need uint64
}

// register adds a dump for serverID; an older connection with the same
// server_id is ended, as MariaDB does.
func (s *Server) register(connID uint32, r *replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.replicas {
		if old.ServerID == r.ServerID && id != connID {
			s.log.Warn("a second replica connected with the same server_id: ending the older connection",
				"server_id", r.ServerID, "old_addr", old.Addr, "new_addr", r.Addr)
			old.cancel()
			delete(s.replicas, id)
		}
	}
	s.replicas[connID] = r
	select {
	case s.dumping <- struct{}{}:
	default:
	}
}

func (s *Server) unregister(connID uint32, r *replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.replicas[connID] == r {
		delete(s.replicas, connID)
	}
}

// kill ends the dump on connection connID (false: no such dump).
func (s *Server) kill(connID uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.replicas[connID]
	if ok {
		r.cancel()
	}
	return ok
}

// update changes a registry entry under mu.
func (s *Server) update(r *replica, fn func(*replica)) {
	s.mu.Lock()
	fn(r)
	s.mu.Unlock()
}

// Replicas lists the connected replicas that are dumping, by server_id.
func (s *Server) Replicas() []Replica {
	s.mu.Lock()
	out := make([]Replica, 0, len(s.replicas))
	for _, r := range s.replicas {
		out = append(out, r.Replica)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].ServerID != out[j].ServerID {
			return out[i].ServerID < out[j].ServerID
		}
		return out[i].Addr < out[j].Addr
	})
	return out
}

// OldestNeeded returns the oldest relay segment a connected replica may
// still read, and false when no replica is connected. Relay purge must keep
// that segment and every later one.
func (s *Server) OldestNeeded() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest uint64
	found := false
	for _, r := range s.replicas {
		if !found || r.need < oldest {
			oldest, found = r.need, true
		}
	}
	return oldest, found
}

// Stats are the server's counters since New.
type Stats struct {
	Replicas         int    // dumping now
	SemiSyncReplicas int    // of which in semi-sync
	BytesSent        uint64 // event bytes sent to all replicas
	EventsSent       uint64
	Acks             uint64 // semi-sync ACKs received from all replicas
	LoginFailures    uint64 // wrong user or password
	// RefusedConnections counts connections refused before the handshake
	// (too many not logged in yet).
	RefusedConnections uint64
	// Panics counts connection handlers that panicked (each ended its own
	// connection only).
	Panics uint64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n, semi := len(s.replicas), 0
	for _, r := range s.replicas {
		if r.SemiSync {
			semi++
		}
	}
	s.mu.Unlock()
	return Stats{Replicas: n, SemiSyncReplicas: semi, BytesSent: s.bytesSent.Load(), EventsSent: s.eventsSent.Load(),
		Acks: s.acks.Load(), LoginFailures: s.loginFailures.Load(), RefusedConnections: s.refusedConns.Load(), Panics: s.panics.Load()}
}

// oldestSegment is the relay's oldest segment now (1 when it has none).
func oldestSegment(dir string) uint64 {
	segs, err := relay.ListSegments(dir)
	if err != nil || len(segs) == 0 {
		return 1
	}
	return segs[0].Seq
}
