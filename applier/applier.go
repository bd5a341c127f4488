package applier

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// Applier states shown by status.
const (
	StateConnecting = "connecting"
	StateApplying   = "applying"
	StateWaiting    = "waiting" // caught up with the durable relay log
	StateError      = "error"   // stopped on an apply error (needs an operator) or on a StopError (re-checked)
	StateRetrying   = "retrying"
	StateStopped    = "stopped"
)

// Source tells the applier how far the relay log is durable.
type Source interface {
	// Durable returns the relay log's durable frontier; it always ends a
	// whole transaction. The zero Frontier means nothing is durable yet.
	Durable() relay.Frontier
	// Changed delivers a value after the durable frontier moved (coalesced).
	Changed() <-chan struct{}
}

// Config configures an Applier.
type Config struct {
	// DSN is the standby's go-sql-driver DSN (the applier adds the options
	// it needs).
	DSN string
	// RelayDir is the relay log's directory.
	RelayDir string
	// MasterHistory returns the master's @@gtid_binlog_state as last read
	// (false: not known yet): GTIDs on the standby outside it and outside
	// the relay log are errant.
	MasterHistory func() ([]binlog.GTID, bool)
	// MasterServerID returns the master's server_id once known (0 before);
	// the standby's must differ (preflight).
	MasterServerID func() uint32
	// Start is where to start reading the relay log: the last applied
	// frontier known (bbolt's mirror), or zero for the relay log's start.
	// The standby's gtid_binlog_pos must cover its GTIDs (else the applier
	// stops with ErrStandbyBehind).
	Start relay.Frontier
	// Retry is the wait after a lost standby connection.
	Retry time.Duration
	// Recheck is how often an applier stopped on a StopError (the
	// standby's settings, or its GTID state against the checkpoint or the
	// relay log) checks the standby again; zero means DefaultRecheck.
	Recheck time.Duration
	// Logger receives the applier's log, tagged component=applier.
	Logger *slog.Logger
	// Skipped, if set, is called on Run's goroutine once the empty
	// transaction of a Skip is committed on the standby; the applier goes on
	// when it returns.
	Skipped func(gtid string)
}

// DefaultRecheck is Config.Recheck when zero: slow enough not to flood the
// log or the standby, quick enough that a fixed standby resumes soon.
const DefaultRecheck = 10 * time.Second

// Status is the applier's live state.
type Status struct {
	State     string
	Applied   binlog.Position // end of the last transaction committed on the standby; GTIDs: the standby's gtid_binlog_pos
	AppliedAt time.Time
	// Frontier is the same end in the relay log; its GTIDs are those of the
	// relay log up to it (applied, or found on the standby), without GTIDs
	// that reached the standby from elsewhere. The agent mirrors it to
	// bbolt (the next run's Config.Start); the standby must cover it at
	// every session start.
	Frontier relay.Frontier
	// CaughtUp is the durable frontier the applier last caught up with:
	// every transaction up to it is committed on the standby (a drain waits
	// for it to reach the relay's end).
	CaughtUp     relay.Frontier
	Transactions uint64
	// AppliedEventTS is the master's commit timestamp (event header) of the
	// last transaction applied.
	AppliedEventTS uint32
	// Errors counts the times the applier stopped: apply errors, and
	// StopErrors (counted once, not at every re-check). Retries counts lost
	// standby connections.
	Errors, Retries uint64
	LastError       string
	FailedGTID      string
	Errant          []string // GTIDs on the standby from servers other than the master
	// Warnings are the standby preflight's warnings of the latest session:
	// settings that weaken exactly-once after a power loss, one line each
	// naming the variable, its value and the value to set.
	Warnings []string
}

// Behind is how many transactions of the relay log, up to received (the
// GTID state of its received end), the standby has not applied, summed over
// the GTID domains; false when it cannot be measured. Counted from the
// standby's position (Applied) and from the relay log's GTID state where the
// applier last caught up with it (CaughtUp): a relay log that starts after
// transactions the standby never had (start = "current" on a master with a
// history) holds none of them, and they are not lag: the applier will never
// apply them, and when it has applied everything the relay log holds it is 0
// transactions behind, not the length of the master's history.
func (s Status) Behind(received binlog.GTIDSet) (int64, bool) {
	return binlog.LatestPerDomain(s.Applied.GTID, s.CaughtUp.Pos.GTID).SeqBehind(received)
}

// Applier applies the relay log to the standby.
type Applier struct {
	cfg  Config
	log  *slog.Logger
	src  Source
	skip chan string

	// lastStop is the StopError last logged, lastWarnings the preflight
	// warnings; used by Run's goroutine only, so that a re-check that finds
	// the same problem logs nothing.
	lastStop, lastWarnings string

	mu sync.Mutex // mu guards the fields below
	st Status
}

// New returns an Applier.
func New(cfg Config, src Source) *Applier {
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = DefaultRecheck
	}
	return &Applier{cfg: cfg, log: cfg.Logger.With("component", "applier"), src: src,
		skip: make(chan string, 1), st: Status{State: StateConnecting, Frontier: cfg.Start}}
}

// Status returns a copy of the live state.
func (a *Applier) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.st
	st.Errant = append([]string(nil), a.st.Errant...)
	st.Warnings = append([]string(nil), a.st.Warnings...)
	return st
}

func (a *Applier) update(f func(*Status)) {
	a.mu.Lock()
	f(&a.st)
	a.mu.Unlock()
}

// errReconnect asks Run for a new session at once.
var errReconnect = errors.New("applier: reconnect")

// ErrNotFailing means Skip named a GTID the applier is not stopped on.
var ErrNotFailing = errors.New("applier: not stopped on that GTID")

// Skip asks the stopped applier to skip the failing transaction gtid: it
// commits an empty transaction with that GTID on the standby and goes on.
// Only the transaction it is stopped on can be skipped; an applier stopped
// on a StopError (no failing transaction) refuses every skip.
func (a *Applier) Skip(gtid string) error {
	st := a.Status()
	if st.State == StateError && st.FailedGTID == "" {
		return fmt.Errorf("%w: %s: the applier is stopped on the standby's settings or state, not on a transaction, and a skip cannot fix that: %s",
			ErrNotFailing, gtid, st.LastError)
	}
	if st.State != StateError || st.FailedGTID != gtid {
		return fmt.Errorf("%w: %s (state %s, failing GTID %q)", ErrNotFailing, gtid, st.State, st.FailedGTID)
	}
	select {
	case a.skip <- gtid:
		return nil
	default:
		return errors.New("applier: a skip is already pending")
	}
}

// ApplyError is a transaction the standby refused.
type ApplyError struct {
	GTID string
	Pos  binlog.FilePos // the master position of the failing event
	What string         // the table (db.table) or the statement
	Err  error
}

func (e *ApplyError) Error() string {
	return fmt.Sprintf("apply GTID %s at %s (%s): %v", e.GTID, e.Pos, e.What, e.Err)
}

func (e *ApplyError) Unwrap() error { return e.Err }

// Run applies until ctx ends.
func (a *Applier) Run(ctx context.Context) error {
	cfg, err := a.connConfig()
	if err != nil {
		return fmt.Errorf("applier: standby DSN: %w", err)
	}
	// The hot statements run without the session's ctx (no per-statement
	// context watcher in the driver, session.exec): what ends them when ctx
	// ends is the close of every connection the applier dialed.
	conns := &netConns{}
	cfg.DialFunc = conns.dial
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return fmt.Errorf("applier: standby DSN: %w", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	defer context.AfterFunc(ctx, conns.closeAll)()
	db.SetMaxOpenConns(2)
	var pendingSkip string
	for {
		// A skip stays pending until its no-op is committed: a lost
		// connection before that must not forget it.
		err := a.session(ctx, db, &pendingSkip)
		if ctx.Err() != nil {
			a.update(func(s *Status) { s.State = StateStopped })
			return nil
		}
		var ae *ApplyError
		if errors.As(err, &ae) {
			a.log.Error("applier stopped: fix the standby, or skip the transaction explicitly with `hotstandby skip --gtid "+ae.GTID+"`", "err", err)
			a.update(func(s *Status) { s.State, s.LastError, s.FailedGTID = StateError, err.Error(), ae.GTID; s.Errors++ })
			select {
			case g := <-a.skip:
				pendingSkip = g
				a.log.Warn("skipping transaction by operator request", "gtid", g)
			case <-ctx.Done():
				a.update(func(s *Status) { s.State = StateStopped })
				return nil
			}
			continue
		}
		var se *StopError
		if errors.As(err, &se) {
			a.stopped(se)
			select {
			case <-time.After(a.cfg.Recheck):
			case <-ctx.Done():
				a.update(func(s *Status) { s.State = StateStopped })
				return nil
			}
			continue
		}
		if errors.Is(err, errReconnect) {
			continue // on purpose: at once, and nothing to warn about
		}
		a.log.Warn("standby connection lost; retrying", "err", err, "retry_in", a.cfg.Retry)
		a.update(func(s *Status) { s.State, s.LastError = StateRetrying, err.Error(); s.Retries++ })
		select {
		case <-time.After(a.cfg.Retry):
		case <-ctx.Done():
			a.update(func(s *Status) { s.State = StateStopped })
			return nil
		}
	}
}

func (a *Applier) connConfig() (*mysql.Config, error) {
	c, err := mysql.ParseDSN(a.cfg.DSN)
	if err != nil {
		return nil, err
	}
	c.InterpolateParams = false
	c.MultiStatements = true // a small transaction is one round trip
	c.ParseTime = false
	if c.Params == nil {
		c.Params = map[string]string{}
	}
	c.MaxAllowedPacket = 0 // read from the server
	return c, nil
}

// netConns are the network connections the applier dialed to the standby,
// so that they can all be closed at once when the applier stops: a
// statement in flight then fails at once, whatever the driver's read
// timeout (an hour: long DDL).
type netConns struct {
	mu     sync.Mutex
	open   map[*trackedConn]struct{}
	closed bool
}

func (n *netConns) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true) // as the driver does for its own dials
	}
	t := &trackedConn{Conn: c, n: n}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	if n.open == nil {
		n.open = map[*trackedConn]struct{}{}
	}
	n.open[t] = struct{}{}
	return t, nil
}

// closeAll closes every open connection and refuses new ones.
func (n *netConns) closeAll() {
	n.mu.Lock()
	n.closed = true
	open := n.open
	n.open = nil
	n.mu.Unlock()
	for c := range open {
		_ = c.Conn.Close()
	}
}

type trackedConn struct {
	net.Conn
	n *netConns
}

func (c *trackedConn) Close() error {
	c.n.mu.Lock()
	delete(c.n.open, c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// gtidState is the standby's @@gtid_binlog_state: the last sequence number
// per (domain, server_id).
type gtidState map[[2]uint32]uint64

func parseGTIDState(s string) (gtidState, error) {
	st := gtidState{}
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		if part == "" {
			continue
		}
		g, err := binlog.ParseGTID(part)
		if err != nil {
			return nil, err
		}
		st[[2]uint32{g.Domain, g.Server}] = g.Seq
	}
	return st, nil
}

func (st gtidState) has(g binlog.GTID) bool { return st[[2]uint32{g.Domain, g.Server}] >= g.Seq }

// stopped records a StopError in the status. It logs it only when it
// differs from the last one logged, not at every re-check.
func (a *Applier) stopped(se *StopError) {
	text := se.Error()
	if text != a.lastStop {
		for _, l := range se.Lines {
			a.log.Error("applier stopped until the standby is fixed: "+l, "recheck_every", a.cfg.Recheck)
		}
		a.lastStop = text
		a.update(func(s *Status) { s.Errors++ })
	}
	a.update(func(s *Status) { s.State, s.LastError, s.FailedGTID = StateError, text, "" })
}

// session connects, checks the standby (preflight, then its GTID state
// against the applied checkpoint) and applies until an error.
func (a *Applier) session(ctx context.Context, db *sql.DB, pendingSkip *string) error {
	skipGTID := *pendingSkip
	recheck := false
	a.update(func(s *Status) {
		recheck = s.State == StateError && skipGTID == "" // after a StopError
		if !recheck {
			s.State = StateConnecting
		}
	})
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("applier: connect to standby: %w", err)
	}
	defer conn.Close()
	s := &session{a: a, conn: conn}
	if err := s.setup(ctx); err != nil {
		return err
	}
	if err := s.preflight(ctx, recheck); err != nil {
		return err
	}
	if err := s.earlierSessions(ctx); err != nil {
		return err
	}
	if skipGTID != "" {
		if err := s.applyEmpty(ctx, skipGTID); err != nil {
			// still pending: the next session commits it
			return err
		}
		*pendingSkip = ""
		if a.cfg.Skipped != nil {
			a.cfg.Skipped(skipGTID)
		}
	}
	state, err := s.readState(ctx)
	if err != nil {
		return err
	}
	last := state.lastPerDomain()
	if err := checkCheckpoint(a.standbyAddr(), last, a.Status().Frontier.Pos.GTID); err != nil {
		return err
	}
	s.follow, s.recheck = newFollower(last), recheck
	a.checkErrant(state)
	if !recheck { // a re-check says nothing until it passes (progressed)
		a.log.Info("applying", "standby_gtid_state", fmt.Sprint(state), "from_segment", a.Status().Frontier.Segment, "from_offset", a.Status().Frontier.Offset)
		a.update(func(s *Status) { s.State, s.LastError, s.FailedGTID = StateApplying, "", "" })
	}
	return s.apply(ctx, state)
}

// progressed ends a re-check: the session applied a transaction or caught up
// without meeting the StopError again, so the error is over.
func (s *session) progressed() {
	if !s.recheck {
		return
	}
	s.recheck = false
	s.a.log.Info("the standby passed the checks again: applying", "was", s.a.lastStop,
		"from_segment", s.cur.Segment().Seq, "standby_gtid_last", fmt.Sprint(s.follow.standby))
	s.a.lastStop = ""
	s.a.update(func(st *Status) { st.State, st.LastError, st.FailedGTID = StateApplying, "", "" })
}

// checkErrant records the GTIDs on the standby that are in no history the
// agent knows: neither in the master's gtid_binlog_state (as the monitor
// last read it; MasterHistory) nor among the relay log's durable GTIDs. A
// set difference, not a server_id test: after a failover the old master's
// GTIDs are history, not errant. With the master's state unknown nothing is
// reported (unknown is not errant).
func (a *Applier) checkErrant(state gtidState) {
	if a.cfg.MasterHistory == nil {
		return
	}
	history, ok := a.cfg.MasterHistory()
	if !ok {
		return
	}
	known := map[[2]uint32]uint64{}
	for _, g := range history {
		known[[2]uint32{g.Domain, g.Server}] = max(known[[2]uint32{g.Domain, g.Server}], g.Seq)
	}
	for _, g := range a.src.Durable().Pos.GTID.MariaDBGTIDs() {
		known[[2]uint32{g.Domain, g.Server}] = max(known[[2]uint32{g.Domain, g.Server}], g.Seq)
	}
	var errant []string
	for k, seq := range state {
		if have, ok := known[k]; !ok || have < seq {
			errant = append(errant, binlog.GTID{Domain: k[0], Server: k[1], Seq: seq}.String())
		}
	}
	sort.Strings(errant)
	if len(errant) > 0 {
		a.log.Error("errant transactions on the standby: in neither the master's history nor the relay log", "gtids", strings.Join(errant, ","))
	}
	a.update(func(s *Status) { s.Errant = errant })
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// maxStatement is the largest BINLOG statement the standby must accept.
const maxStatement = 1 << 30

// b64Stream base64-encodes bytes written one piece at a time: base64 of a
// concatenation is the concatenation of the base64 of its 3-byte-aligned
// parts, so only up to 2 bytes wait for the next piece.
type b64Stream struct {
	sb    strings.Builder
	carry []byte // at most 2 bytes not yet encoded
	n     int    // bytes written since the last reset
}

func (b *b64Stream) write(p []byte) {
	b.n += len(p)
	if len(b.carry) > 0 {
		need := 3 - len(b.carry)
		if len(p) < need {
			b.carry = append(b.carry, p...)
			return
		}
		b.carry = append(b.carry, p[:need]...)
		b.encode(b.carry)
		b.carry, p = b.carry[:0], p[need:]
	}
	whole := len(p) / 3 * 3
	b.encode(p[:whole])
	b.carry = append(b.carry, p[whole:]...)
}

func (b *b64Stream) encode(p []byte) {
	var buf [4 * 1024]byte
	for len(p) > 0 {
		n := min(len(p), 3*1024)
		base64.StdEncoding.Encode(buf[:], p[:n])
		b.sb.Write(buf[:base64.StdEncoding.EncodedLen(n)])
		p = p[n:]
	}
}

// pending is the length of the encoded text not yet taken.
func (b *b64Stream) pending() int { return b.sb.Len() }

// take returns the encoded text so far (the carry stays) and forgets it.
func (b *b64Stream) take() string {
	s := b.sb.String()
	b.sb = strings.Builder{}
	return s
}

// final returns the rest of the text, padded, and resets the stream.
func (b *b64Stream) final() string {
	if len(b.carry) > 0 {
		b.sb.WriteString(base64.StdEncoding.EncodeToString(b.carry))
	}
	s := b.sb.String()
	*b = b64Stream{}
	return s
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
