package relay

import "errors"

// ErrCorrupt means a relay segment holds bytes that are not a valid
// event at a place that is not its torn tail. Recovery never cuts such a
// segment; an operator must look at it.
var ErrCorrupt = errors.New("relay: relay log corrupt")

// ErrPositionGap means the stream delivered an event that does not follow
// the last durable one; writing it would leave a hole in the relay log.
var ErrPositionGap = errors.New("relay: stream position does not follow the relay log")
