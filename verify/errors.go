package verify

import "errors"

// ErrNotAtSamePosition is returned by Compare with Options.Consistent when the
// master's and the standby's snapshots did not reach the same GTID position
// within Options.Timeout. The error names both positions.
var ErrNotAtSamePosition = errors.New("master and standby are not at the same GTID position")

// ErrRowTooLarge means that a row could not be digested: a string function
// returned NULL because its result would have exceeded the server's
// max_allowed_packet. Raise max_allowed_packet on that server.
var ErrRowTooLarge = errors.New("row too large to digest within max_allowed_packet")

// ErrInvalidOptions is wrapped by every error that Options.Validate returns.
var ErrInvalidOptions = errors.New("invalid options")
