package cluster

import (
	"time"

	"golang.org/x/sys/unix"
)

// Instant is a reading of the host's CLOCK_BOOTTIME: the time since boot,
// suspend included. It is the Acknowledger's own clock. Unlike the wall
// clock it never jumps (NTP, an operator's date), and unlike
// CLOCK_MONOTONIC (which Go's time.Now carries) it keeps counting while the
// host or VM is suspended: a host that sleeps through its lease wakes up
// knowing the lease is gone. Readings from every process on the host
// compare.
type Instant time.Duration

// Sub is the time from u to i.
func (i Instant) Sub(u Instant) time.Duration { return time.Duration(i - u) }

// Add is i moved by d.
func (i Instant) Add(d time.Duration) Instant { return i + Instant(d) }

// Before reports whether i is earlier than u.
func (i Instant) Before(u Instant) bool { return i < u }

// String is the reading in seconds since boot.
func (i Instant) String() string { return time.Duration(i).String() }

// bootClock reads CLOCK_BOOTTIME.
func bootClock() Instant {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		// Linux has had CLOCK_BOOTTIME since 2.6.39; never reached there.
		panic("cluster: clock_gettime(CLOCK_BOOTTIME): " + err.Error())
	}
	return Instant(ts.Nano())
}
