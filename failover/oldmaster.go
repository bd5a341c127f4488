package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Defaults of an OldMasterWatch.
const (
	// DefaultWatchDownInterval is how often the watch tries to connect to
	// an old master that does not answer. A refused connection costs one
	// SYN and one RST, so it can be short: it bounds the window in which
	// a returning writable old master takes writes before it is fenced.
	DefaultWatchDownInterval = 10 * time.Millisecond
	// DefaultWatchUpInterval is how often the watch reads read_only on an
	// old master it is connected to.
	DefaultWatchUpInterval = 100 * time.Millisecond
	// DefaultWatchRetry is how long the watch waits before fencing again
	// an old master whose fence failed.
	DefaultWatchRetry = 5 * time.Second
)

// OldMasterEvent is what the watch did about an old master that answered.
type OldMasterEvent struct {
	// At is when the watch saw it answer.
	At time.Time
	// Returned says it answered after the watch had seen it unreachable
	// (a restart, a host back from the dead); otherwise it was found
	// writable while up.
	Returned bool
	// DownFor is how long it was unreachable (Returned only).
	DownFor time.Duration
	// WasWritable says read_only was OFF when the watch connected.
	WasWritable bool
	// Fence is the fence's result. Fence.Fenced() is the outcome.
	Fence FenceResult
	// Attempt counts the failed fences in a row, this one included (0 when
	// it is fenced): the watch tries again after Retry, doubling.
	Attempt int
	// Window is from the watch's connection to its SET GLOBAL read_only
	// and the read back: how long clients of the server could still start
	// writes after the watch reached it. The time from the server's first
	// accepted connection to the watch's (one DownInterval at most) comes
	// before it; the fence that kills the clients comes after.
	Window time.Duration
}

// Summary is one line for the log, the audit log and the alert.
func (e OldMasterEvent) Summary() string {
	how := "found writable"
	if e.Returned {
		how = fmt.Sprintf("answered again after %s unreachable", e.DownFor.Round(time.Millisecond))
		if e.WasWritable {
			how += ", writable (read_only=OFF)"
		} else {
			how += ", read-only"
		}
	}
	outcome := "fenced"
	if !e.Fence.Fenced() {
		outcome = "NOT FENCED"
	}
	return fmt.Sprintf("old master %s %s: %s, read_only=ON set %s after the watch connected; %s", e.Fence.Addr, how, outcome,
		e.Window.Round(time.Millisecond), e.Fence.Summary())
}

// OldMasterWatch keeps an old master from being a second writer after a
// promotion. It connects to the old master's address every DownInterval
// while it does not answer; the moment it answers, the watch sets
// read_only=ON in its first statement, then fences it (FenceOldMaster:
// read_only verified, clients killed). While it answers, the watch reads
// read_only every UpInterval and fences it again if it reads OFF. It does
// nothing to a server on the address whose @@server_id is not ServerID
// (a VIP moved to the new master, another server), and nothing while Paused
// says so (a rejoin is fencing it itself). It returns when ctx ends or
// Done says the watch is over (the old master rejoined).
//
// The window. A returning server with read_only=OFF in its option file
// takes writes from its first accepted connection; the watch cannot be
// faster than its next connection attempt plus one round trip: at most
// DownInterval plus a handshake and a SET GLOBAL, a few milliseconds on a
// LAN (measured: TestReturningOldMasterIsFenced). A client that connects
// inside it can commit. Only read_only=ON in every server's option file
// closes it; the watch bounds it, and kills what connected.
type OldMasterWatch struct {
	// DSN is the fence user's go-sql-driver DSN (the [master] user): it
	// needs READ_ONLY ADMIN, CONNECTION ADMIN and PROCESS.
	DSN string
	// ServerID is the old master's @@server_id; a server answering with
	// another is left alone. Zero: the watch cannot tell, and does not
	// fence (it logs why once).
	ServerID uint32
	// DownInterval, UpInterval and Retry: zero means the defaults above.
	DownInterval, UpInterval, Retry time.Duration
	// Timeout bounds one connection attempt and one query; zero: 1 s.
	Timeout time.Duration
	// FenceTimeout bounds one FenceOldMaster; zero: DefaultFenceTimeout.
	FenceTimeout time.Duration
	// Done reports that the watch is over, and why; checked every
	// UpInterval. Nil: never.
	Done func() (bool, string)
	// Paused reports that the watch must leave the old master alone for
	// now. Nil: never.
	Paused func() bool
	// Lock, if set, is taken around each fence; ok false means another
	// operation holds it (a rejoin), and the watch tries again at its next
	// look. The agent passes its role lock, so that a fence never kills a
	// rejoin's connections and a rejoin never starts during a fence.
	Lock func() (unlock func(), ok bool)
	// OnEvent receives each fence the watch did (audit, alert). It runs on
	// the watch's goroutine.
	OnEvent func(OldMasterEvent)
	Log     *slog.Logger
	Now     func() time.Time

	mu sync.Mutex // guards view
	v  OldMasterView
}

// OldMasterView is the watch's state, for status.
type OldMasterView struct {
	// State: "unreachable since 12:00:01.000", "up, read-only",
	// "up, not the old master (server_id 2)", "stopped: rejoined ...".
	State string
	// Last is the last event's summary, "" before any.
	Last   string
	LastAt time.Time
}

// View returns a snapshot of the watch's state.
func (w *OldMasterWatch) View() OldMasterView {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.v
}

func (w *OldMasterWatch) setState(s string) {
	w.mu.Lock()
	w.v.State = s
	w.mu.Unlock()
}

func (w *OldMasterWatch) defaults() {
	if w.DownInterval <= 0 {
		w.DownInterval = DefaultWatchDownInterval
	}
	if w.UpInterval <= 0 {
		w.UpInterval = DefaultWatchUpInterval
	}
	if w.Retry <= 0 {
		w.Retry = DefaultWatchRetry
	}
	if w.Timeout <= 0 {
		w.Timeout = time.Second
	}
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	if w.Now == nil {
		w.Now = time.Now
	}
}

// Run watches until ctx ends or Done says so. Call it once.
func (w *OldMasterWatch) Run(ctx context.Context) {
	w.defaults()
	log := w.Log.With("component", "old-master-watch")
	mc, err := mysql.ParseDSN(w.DSN)
	if err != nil {
		log.Error("old master watch not started: bad DSN", "err", err) // the driver's message holds no password
		return
	}
	addr := mc.Addr
	log = log.With("addr", addr)
	if w.ServerID == 0 {
		log.Error("old master watch not started: the old master's server_id is unknown, so a server answering on its address cannot be told from another")
		w.setState("not watching: the old master's server_id is unknown")
		return
	}
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = w.Timeout, w.Timeout, w.Timeout
	mc.Logger = fenceDriverLogger{log}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		log.Error("old master watch not started: bad DSN", "err", err)
		return
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	defer db.Close()
	log.Info("watching the old master: it is fenced whenever it answers, until it rejoins", "server_id", w.ServerID)

	var (
		conn      *sql.Conn
		seenDown  bool      // unreachable since the last look
		downSince time.Time // when it was first seen unreachable
		lastDone  time.Time
		retryAt   time.Time       // after a failed fence: not before
		other     uint32          // a server with this id answered last
		attempts  int             // failed fences in a row
		pending   *OldMasterEvent // a fence to do (or retry)
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	w.setState("starting")
	for {
		interval := w.UpInterval
		if now := w.Now(); w.Done != nil && now.Sub(lastDone) >= w.UpInterval {
			lastDone = now
			if done, why := w.Done(); done {
				log.Info("old master watch ended", "why", why)
				w.setState("stopped: " + why)
				return
			}
		}
		paused := w.Paused != nil && w.Paused()
		if conn == nil && !paused {
			conn = w.connect(ctx, db)
			if conn == nil && ctx.Err() == nil {
				if !seenDown {
					seenDown, downSince = true, w.Now()
					log.Info("old master unreachable; watching for its return", "interval", w.DownInterval)
					w.setState("unreachable since " + clock(downSince))
				}
				interval = w.DownInterval
			}
		}
		if conn != nil && !paused {
			st, err := w.look(ctx, conn)
			if err != nil && ctx.Err() == nil {
				// Gone, or the connection was killed (our own fence kills
				// it): connect again at once, so that only a failed
				// connection counts as "unreachable".
				log.Debug("old master watch: the connection failed; connecting again", "err", err)
				conn.Close()
				conn = nil
				continue
			}
			switch {
			case err != nil:
			case st.serverID != w.ServerID:
				if other != st.serverID {
					other = st.serverID
					log.Warn("a server answers on the old master's address with another server_id: left alone", "server_id", st.serverID, "old_master_server_id", w.ServerID)
					w.setState(fmt.Sprintf("up, not the old master (server_id %d)", st.serverID))
				}
				seenDown = false
			case seenDown || st.wasWritable || pending != nil:
				// The look made it read-only already; the fence (kills,
				// verification) stays pending until it succeeds.
				if seenDown || pending == nil {
					pending = &OldMasterEvent{At: st.at, Returned: seenDown, WasWritable: st.wasWritable, Window: st.took}
					if seenDown {
						pending.DownFor = st.at.Sub(downSince)
						retryAt, attempts = time.Time{}, 0
					}
					seenDown, other = false, 0
				}
				if w.Now().Before(retryAt) {
					break
				}
				unlock := func() {}
				if w.Lock != nil {
					var ok bool
					if unlock, ok = w.Lock(); !ok {
						break // a rejoin (or another role change) runs: next look
					}
				}
				ev := *pending
				ev.Fence = w.fence(ctx, conn, addr, st)
				unlock()
				if ctx.Err() != nil {
					return
				}
				if ev.Fence.Fenced() {
					pending, retryAt, attempts = nil, time.Time{}, 0
					log.Warn(ev.Summary())
					w.setState("up, fenced (read-only)")
				} else {
					// Again after Retry, doubling up to 5 minutes; a fence
					// user without the privileges not before the next
					// return (a grant does not come by itself, and the
					// watch must not start killing then, in the middle of
					// whatever the operator does).
					attempts++
					ev.Attempt = attempts
					retryAt = w.Now().Add(min(w.Retry<<min(attempts-1, 6), 5*time.Minute))
					if errors.Is(ev.Fence.Err, errFenceUser) {
						pending, retryAt = nil, time.Unix(1<<40, 0)
					}
					log.Error(ev.Summary())
					w.setState("up, NOT FENCED: " + ev.Fence.Summary())
				}
				w.mu.Lock()
				w.v.Last, w.v.LastAt = ev.Summary(), ev.At
				w.mu.Unlock()
				if w.OnEvent != nil {
					w.OnEvent(ev)
				}
				// The fence killed this connection: a fresh one next.
				conn.Close()
				conn = nil
			default:
				w.setState("up, read-only")
				other = 0
			}
		}
		select {
		case <-ctx.Done():
			w.setState("stopped")
			return
		case <-time.After(interval):
		}
	}
}

// fence fences the old master, unless its fence user lacks the privileges:
// without PROCESS the processlist shows only the user's own connections,
// so FenceOldMaster would kill only those (the agent's own, a rejoin's)
// and still fail; then nothing is killed and the result says what is
// missing.
func (w *OldMasterWatch) fence(ctx context.Context, conn *sql.Conn, addr string, st watchLook) FenceResult {
	pctx, cancel := context.WithTimeout(ctx, w.Timeout)
	err := fence{conn: conn, log: w.Log, timeout: w.Timeout}.checkPrivileges(pctx)
	cancel()
	if err != nil {
		return FenceResult{Addr: addr, Reachable: true, session: true, ReadOnly: st.readOnly,
			Err: fmt.Errorf("%w: %w: %w: nothing killed", ErrFenceFailed, errFenceUser, err)}
	}
	return FenceOldMaster(ctx, w.DSN, w.FenceTimeout, w.Log)
}

// errFenceUser marks a fence the watch did not try: its user lacks the
// privileges.
var errFenceUser = errors.New("not tried")

// connect opens the watch's connection, or returns nil.
func (w *OldMasterWatch) connect(ctx context.Context, db *sql.DB) *sql.Conn {
	cctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	conn, err := db.Conn(cctx)
	if err != nil {
		return nil
	}
	return conn
}

// watchLook is one look at the server on the connection.
type watchLook struct {
	at          time.Time
	took        time.Duration
	serverID    uint32
	wasWritable bool
	readOnly    bool // after the look's SET
}

// look makes the server read-only if it is the old master, in its first
// statement (a server with another server_id keeps its read_only: the
// statement sets it to its own value), and reads what it found.
func (w *OldMasterWatch) look(ctx context.Context, conn *sql.Conn) (watchLook, error) {
	qctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	st := watchLook{at: w.Now()}
	start := time.Now()
	// SET GLOBAL read_only to its own value does not wait for the global
	// read lock; to ON it does (running commits end first, a LOCK TABLES
	// ... WRITE holds it): at most a second here, then the fence kills the
	// clients in the way and sets it.
	q := fmt.Sprintf("SET @hotstandby_was_ro = @@global.read_only, SESSION lock_wait_timeout = 1, "+
		"GLOBAL read_only = IF(@@server_id = %d, 1, @@global.read_only)", w.ServerID)
	if _, err := conn.ExecContext(qctx, q); err != nil {
		var me *mysql.MySQLError
		if !errors.As(err, &me) {
			return st, err
		}
		// A server error (no READ_ONLY ADMIN): the fence reports it.
		w.Log.Debug("old master watch: SET GLOBAL read_only refused", "err", err)
	}
	var wasRO sql.NullBool
	var ro bool
	if err := conn.QueryRowContext(qctx, "SELECT @hotstandby_was_ro, @@server_id, @@global.read_only").Scan(&wasRO, &st.serverID, &ro); err != nil {
		return st, err
	}
	st.took = time.Since(start)
	// Not set when the SET was refused: then read_only now is what it was.
	st.wasWritable = !ro || (wasRO.Valid && !wasRO.Bool)
	st.readOnly = ro
	if _, err := conn.ExecContext(qctx, "SET @hotstandby_was_ro = NULL"); err != nil {
		return st, err
	}
	return st, nil
}
