// Package cluster holds what three or more agents per master agree on
// through etcd: the [cluster] configuration, the election of the one agent
// that acknowledges the master (the acknowledger), and the quorum rule that
// says which position it may acknowledge. Without a [cluster] section
// nothing here runs and etcd is never needed (one standby needs no etcd).
//
// # The acknowledger
//
// Every standby member campaigns with a go.etcd.io/etcd/client/v3
// concurrency.Election under Config.ElectionPrefix, on a lease of
// lease_ttl (2 s). The member whose key has the lowest create revision
// holds the seat; that revision is the epoch (Permit.Epoch, Term.Epoch),
// which grows with every new acknowledger and is the fencing token a
// promotion writes: Guard is the etcd condition under which a write made
// in a term lands only while that term holds the seat. A DR member never
// campaigns and never holds a lease.
//
// Check answers "may I acknowledge now?". Invariants:
//   - OK only while the member's campaign has returned, its term has not
//     ended, and its own clock has not reached the lease deadline.
//   - The deadline is S + TTL - margin, where S is when the last successful
//     renewal (Grant or KeepAliveOnce) was *sent* and TTL is what etcd
//     granted. etcd renewed the lease after S on its leader, and an
//     expired lease cannot be renewed, so the lease outlives S + TTL on
//     the leader's clock; another member's campaign returns only after
//     this member's key is deleted, which needs the lease revoked. So the
//     member stops answering OK at least margin before any other member
//     can win, however stalled its connection to etcd is: no answer from
//     etcd, no extension. A late answer never moves the deadline back and
//     an answer for an older lease never moves it at all.
//   - margin = max(TTL/4, 250 ms): it covers the rate difference between
//     this host's clock and the etcd leader's, and the time from a Check to
//     the ACK leaving the socket (an ACK path sets Permit.Remaining as the
//     write deadline, so an ACK delayed past it is not sent).
//   - The clock is CLOCK_BOOTTIME (Instant): it counts a suspended host
//     or VM, where Go's monotonic clock (CLOCK_MONOTONIC) stops, and never
//     jumps with the wall clock.
//   - Check takes only the Acknowledger's mutex, which no goroutine holds
//     across a call to etcd: it answers at once whatever etcd does.
//   - While the member holds the seat, each renewal also reads its key: a
//     key deleted by hand ends the term at the next renewal. (Nothing but
//     the agents may write under Config.Prefix; the argument above assumes
//     keys go only with their lease. Use etcd's RBAC to ensure it.)
//   - A term ends (Term.Ended) when etcd says the lease is gone, the key is
//     gone or the session's keepalive stream gives up, or on Close. The
//     member then campaigns again with a new lease, behind the others.
//   - Close revokes the lease (the next member wins at once); a crash
//     leaves it to expire (the next member wins after the TTL).
//
// etcd raises a TTL below its minimum (1.5 election timeouts: 2 s with
// etcd's defaults); the deadline uses the TTL etcd granted.
//
// # The quorum rule
//
// AckFrontier is the rule the acknowledger applies: given the fsynced
// frontier each standby member reports, it may ACK the master up to the
// ack_quorum-th highest (itself counted with its own relay log's durable
// frontier). ack_quorum is at least a majority of Config.Standbys (the
// static list of standby members), so every acknowledged commit is fsynced
// on a majority and any majority read at failover holds it.
//
// # How it plugs in (not wired yet)
//
// The master's semi-sync ACK is written in one place, ingest's receiver
// calling semisync.Acker.Ack(conn.AckWriter(), pos) after each fsync batch
// for the newest position that asked for an ACK. With a [cluster]:
//   - The agent is the master's semi-sync replica only while it holds the
//     seat: a member that is not the acknowledger streams from the
//     acknowledger's binlog server, not from the master (the master must
//     see one semi-sync client, or the proof "the agent is the only ACKer"
//     breaks). The member that wins connects to the master; the one that
//     loses its permit stops ACKing at once and closes its dump connection.
//   - Before each ACK the receiver asks Check; when OK it ACKs
//     AckFrontier(own durable frontier, peers' reports, standbys, quorum)
//     instead of its own frontier (semisync.Acker still refuses anything
//     past its own durable frontier), with Permit.Remaining as the
//     socket's write deadline. When the frontier does not cover the
//     position asked for yet, the ACK waits for the next peer ACK, not for
//     the next fsync: the receiver needs a second wake-up source.
//   - The peers' reports come from the binlog server's semi-sync towards
//     replicas: each member's agent is a semi-sync replica of the
//     acknowledger's binlog server and ACKs there only after its own fsync
//     (its own Acker: P1). binlogserver.Replica.Acked is that position,
//     keyed by server_id; [cluster] needs a server_id per member name to
//     map it. An ACK's position is the replica's own claim: cap it at what
//     the binlog server sent that connection before counting it, so a
//     buggy peer cannot vouch for events it never got. binlogserver must
//     offer a way to be woken on each ACK (WaitAcked's channel exists).
//   - The epoch goes with the acknowledger's identity into status and,
//     at promotion, into the checkpoint's epoch (the fencing token).
//
// # Goroutines
//
// Start and Close are called by the owner. Check, Guard, Terms and Leader may be
// called from any goroutine. Each Acknowledger runs one campaign goroutine
// and, per lease, one renewal goroutine.
//
// # Versions
//
// The client is go.etcd.io/etcd/client/v3 v3.6; the tests run it against
// Debian 12's etcd-server 3.4.23 (a real three-member cluster on
// loopback): the election uses only the v3 KV, Watch and Lease RPCs, which
// 3.4 serves.
package cluster
