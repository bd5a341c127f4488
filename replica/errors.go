package replica

import "errors"

// The sentinel errors of this package, for errors.Is.
var (
	// ErrPreflight means a setting of the standby breaks this mode's
	// promises (a fatal finding of the preflight); see Status.Findings.
	ErrPreflight = errors.New("replica: the standby's settings break exactly-once apply in replica mode")
	// ErrNotFailing means Skip was asked for a GTID the SQL thread is not
	// stopped on.
	ErrNotFailing = errors.New("replica: the standby's SQL thread is not stopped on that GTID")
	// ErrSQLThread means the SQL thread stopped with an error (during a
	// Drain, the frontier cannot be reached until it is skipped or fixed).
	ErrSQLThread = errors.New("replica: the standby's SQL thread stopped with an error")
	// ErrDrained means replication was ended by Drain: Run returns it and
	// Skip refuses.
	ErrDrained = errors.New("replica: replication ended by the promotion's drain")
)
