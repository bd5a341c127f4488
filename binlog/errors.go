package binlog

import (
	"errors"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// ErrChecksum means an event's stored CRC32 does not match its bytes: the
// event was damaged on the wire or on disk. It is never written to the relay
// log.
var ErrChecksum = errors.New("binlog: event checksum mismatch")

// ErrShortEvent means an event is shorter than its header says or than its
// type requires.
var ErrShortEvent = errors.New("binlog: event too short")

// ErrUnknownStatusVar means a Query event holds a status variable whose code
// the package does not know. A status variable's size follows from its code,
// so nothing after it (the rest of the session context, the default
// database, the statement) can be read safely: the event is refused rather
// than replayed with part of its session context. The error is a
// *StatusVarError that names the code and its offset.
var ErrUnknownStatusVar = errors.New("binlog: unknown query event status variable")

// ErrBadEvent means an event's bytes contradict themselves: a length field
// that disagrees with the event's size, a status variable written twice or
// holding an impossible value, a missing terminator.
var ErrBadEvent = errors.New("binlog: malformed event")

// ErrFailedOnMaster means a Query event carries a non-zero error code: the
// statement failed on the master, possibly after changing some of its
// (non-transactional) tables. Replaying it cannot be assumed to leave the
// standby like the master. Returned by Query.MasterError.
var ErrFailedOnMaster = errors.New("binlog: the statement failed on the master")

// SourceError is a failure talking to the master. Permanent ones (wrong
// password, purged binlog, conflicting server_id, different master) stop the
// agent; the others are retried.
type SourceError struct {
	Op        string
	Err       error
	Permanent bool
}

func (e *SourceError) Error() string { return "master: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *SourceError) Unwrap() error { return e.Err }

// IsPermanent reports whether retrying cannot help: the error is marked so,
// or the server's error code says so.
func IsPermanent(err error) bool {
	var se *SourceError
	if errors.As(err, &se) && se.Permanent {
		return true
	}
	switch ServerErrorCode(err) {
	case 1045, // ER_ACCESS_DENIED_ERROR
		1044, 1142, 1227, // privileges
		1236: // ER_MASTER_FATAL_ERROR_READING_BINLOG: purged or missing binlog, bad position
		return true
	}
	return false
}

// ServerErrorCode returns the MySQL/MariaDB error code in err, or 0.
func ServerErrorCode(err error) uint16 {
	var me *gomysql.MyError
	if errors.As(err, &me) {
		return me.Code
	}
	if err != nil {
		if code := gomysql.ErrorCode(err.Error()); code > 0 {
			return uint16(code)
		}
	}
	return 0
}

// scrub removes a password from an error's text (a server or library may
// echo it back); the original error stays reachable for errors.As.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &scrubbed{err: err, text: strings.ReplaceAll(err.Error(), secret, "********")}
}

type scrubbed struct {
	err  error
	text string
}

func (s *scrubbed) Error() string { return s.text }
func (s *scrubbed) Unwrap() error { return s.err }
