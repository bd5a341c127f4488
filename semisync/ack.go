package semisync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// ErrAckBeyondDurable means the caller asked to acknowledge a position the
// relay log has not made durable. It is a bug in the caller, never sent.
var ErrAckBeyondDurable = errors.New("semisync: ACK beyond the durable position refused")

// indicator opens every semi-sync packet.
const indicator = 0xef

// Packet builds the ACK for p: a whole protocol packet, 4-byte header with
// sequence 0, then 0xef, the offset (8 bytes) and the file name. The master
// does not check the name, and a wrong one silently stops its waiting: the
// name must be exactly the one the stream reported.
func Packet(p binlog.FilePos) []byte {
	n := 1 + 8 + len(p.File)
	b := make([]byte, 4, 4+n)
	b[0], b[1], b[2], b[3] = byte(n), byte(n>>8), byte(n>>16), 0
	b = append(b, indicator)
	b = binary.LittleEndian.AppendUint64(b, p.Pos)
	return append(b, p.File...)
}

// Stats are the Acker's counters.
type Stats struct {
	Sent    uint64         // ACKs written
	Last    binlog.FilePos // the last position acknowledged
	LastAt  time.Time      // when
	Durable binlog.FilePos // the durable frontier last reported
}

// Acker sends ACKs, never past the durable frontier.
type Acker struct {
	now func() time.Time

	mu    sync.Mutex // mu guards the fields below
	stats Stats
}

// NewAcker returns an Acker; now is the clock (nil: time.Now).
func NewAcker(now func() time.Time) *Acker {
	if now == nil {
		now = time.Now
	}
	return &Acker{now: now}
}

// SetDurable records the relay log's durable frontier: everything up to p is
// fsynced. The frontier never moves backwards within a file.
func (a *Acker) SetDurable(p binlog.FilePos) {
	a.mu.Lock()
	a.stats.Durable = p
	a.mu.Unlock()
}

// Ack acknowledges p on w. p must be at or before the durable frontier.
func (a *Acker) Ack(w io.Writer, p binlog.FilePos) error {
	a.mu.Lock()
	durable := a.stats.Durable
	a.mu.Unlock()
	ok, err := durable.AtLeast(p)
	if err != nil || !ok || durable.IsZero() {
		return fmt.Errorf("%w: asked %s, durable %s", ErrAckBeyondDurable, p, durable)
	}
	if _, err := w.Write(Packet(p)); err != nil {
		return fmt.Errorf("semisync: send ACK %s: %w", p, err)
	}
	a.mu.Lock()
	a.stats.Sent++
	a.stats.Last, a.stats.LastAt = p, a.now()
	a.mu.Unlock()
	return nil
}

// Stats returns a copy of the counters.
func (a *Acker) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}
