package cluster

import (
	"fmt"
	"time"
)

// Permit is the answer to "may I acknowledge now?".
type Permit struct {
	// OK: this member is the acknowledger and its lease is certainly alive
	// in etcd for Remaining more.
	OK bool
	// Epoch is the election's revision (the etcd create revision of this
	// member's key under the election prefix) while OK: it grows with each
	// new acknowledger, so it serves as the fencing token. 0 when not OK.
	Epoch int64
	// Remaining is how long OK holds without another keepalive: an ACK
	// written later than that must not go out (set it as the socket's
	// write deadline). 0 when not OK.
	Remaining time.Duration
	// Reason says why not, when not OK.
	Reason string
}

// Term is one tenure as acknowledger, as this member recorded it on its own
// clock.
type Term struct {
	Epoch int64
	// Won is when the campaign returned.
	Won Instant
	// Until is the last instant at which Check could answer OK in this term:
	// the lease deadline of the last keepalive sent while the term lasted.
	// It is final once Ended, or once the process is gone (a crashed member
	// extends nothing).
	Until Instant
	// Ended is set when the member saw the term end (lease gone, key gone,
	// resigned, closed).
	Ended bool
}

// standing is what an Acknowledger knows of its lease and its seat.
type standing struct {
	lease    int64   // the current lease's id; 0: none
	deadline Instant // renewal sent + granted TTL - margin; past it the lease may be gone
	leader   bool    // the campaign returned and the term has not ended
	epoch    int64
	key      string
	closed   bool
	dr       bool
}

// permit is the answer at now. Leadership alone is not enough: the lease
// must be certainly alive, which only the deadline (measured from when the
// last renewal was sent) proves, whatever the connection to etcd does.
func (s standing) permit(now Instant) Permit {
	switch {
	case s.dr:
		return Permit{Reason: "role dr: a disaster-recovery member never acknowledges"}
	case s.closed:
		return Permit{Reason: "closed"}
	case s.lease == 0:
		return Permit{Reason: "no lease in etcd yet"}
	case !s.leader:
		return Permit{Reason: "not the acknowledger (campaigning)"}
	case !now.Before(s.deadline):
		return Permit{Reason: fmt.Sprintf("lease renewal overdue by %s: etcd may have expired it", now.Sub(s.deadline).Round(time.Millisecond))}
	}
	return Permit{OK: true, Epoch: s.epoch, Remaining: s.deadline.Sub(now)}
}

// renewed moves the deadline after a renewal of lease sent at sent and
// granted ttl; a late answer to an older renewal never moves it back.
func (s *standing) renewed(lease int64, sent Instant, ttl, margin time.Duration) bool {
	if s.lease != lease {
		return false
	}
	if d := sent.Add(ttl - margin); s.deadline.Before(d) {
		s.deadline = d
	}
	return true
}
