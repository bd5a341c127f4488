package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/semisync"
)

// Stream states shown by status.
const (
	StateConnecting = "connecting"
	// StateDumping: the dump was requested and the master has not sent its
	// first packet yet.
	StateDumping   = "dump requested"
	StateStreaming = "streaming"
	StateRetrying  = "retrying"
	// StateSilent: the last dump connection delivered nothing at all (no
	// rotate, no format description, no heartbeat) within the read
	// timeout; it stays until a dump delivers its first packet.
	StateSilent  = "silent"
	StateStopped = "stopped"
	StateFailed  = "failed"
)

// Hooks are fault-injection points for tests; the zero value is
// production behaviour.
type Hooks struct {
	// Sync replaces the relay's fsync.
	Sync func(*os.File) error
	// BeforeAck runs just before an ACK is written, with the position and
	// the durable frontier; tests assert the order here.
	BeforeAck func(ack, durable binlog.FilePos)
}

// Receiver streams the master's binlog into the relay log and acknowledges
// durable positions. Run owns the relay writer; the status methods may be
// called from any goroutine.
type Receiver struct {
	cfg   Config
	log   *slog.Logger
	store *checkpoint.Store
	acker *semisync.Acker
	hooks Hooks
	now   func() time.Time

	relay     *relay.Writer
	ckpt      *checkpointer
	identity  binlog.Identity
	preflight bool   // done once per run
	adopted   string // the standby's position this first run starts at ("" if none), for messages

	changed chan struct{}  // the durable frontier moved (capacity 1)
	notify  relay.Notifier // the durable frontier, with a wake-up for every reader (binlog server)

	heard heardBook // what the gate's B is made of

	mu      sync.Mutex // mu guards the fields below
	st      Status
	durable relay.Frontier
}

// Heard is when the stream last heard the master, as the failover gate
// needs it (failover.ProofGate, B).
type Heard struct {
	// Packet is when the reader last received a packet (event or heartbeat)
	// on a dump connection; zero: never in this run.
	Packet time.Time
	// AckPending is when the oldest ACK request the agent has not answered
	// yet was received (zero: none). A commit that waits for that ACK falls
	// back to asynchronous replication rpl_semi_sync_master_timeout after
	// it was written, which was before this moment; the stream has not
	// heard the master past it in the sense that matters. Requests left
	// unanswered by a connection that ended stay pending until a later
	// connection has answered every request it read.
	AckPending time.Time
}

// heardBook keeps Heard: the reader notes each packet and each ACK
// request, the writer each ACK sent.
type heardBook struct {
	packet atomic.Int64 // unix nanoseconds of the last packet read

	mu      sync.Mutex  // mu guards the fields below
	pending []time.Time // receipt times of this connection's ACK requests not yet answered, oldest first
	popped  uint64      // requests of this connection answered (or dropped from pending)
	read    uint64      // requests of this connection read
	carried time.Time   // the oldest unanswered request of an earlier connection
}

// newConnection starts the books of a dump connection: what the last one
// left unanswered is carried.
func (h *heardBook) newConnection() {
	h.mu.Lock()
	if len(h.pending) > 0 && (h.carried.IsZero() || h.pending[0].Before(h.carried)) {
		h.carried = h.pending[0]
	}
	h.pending, h.popped, h.read = nil, 0, 0
	h.mu.Unlock()
}

// readPacket is called by the reader for each packet, at its receipt.
func (h *heardBook) readPacket(at time.Time, ackWanted bool) {
	h.packet.Store(at.UnixNano())
	if !ackWanted {
		return
	}
	h.mu.Lock()
	h.pending = append(h.pending, at)
	h.read++
	h.mu.Unlock()
}

// acked is called by the writer after an ACK was written that answers the
// first n ACK requests the writer has taken on this connection.
func (h *heardBook) acked(n uint64) {
	h.mu.Lock()
	if n > h.popped {
		drop := min(n-h.popped, uint64(len(h.pending)))
		h.pending = h.pending[drop:]
		h.popped += drop
	}
	if h.popped == h.read && len(h.pending) == 0 {
		h.carried = time.Time{}
	}
	h.mu.Unlock()
}

func (h *heardBook) view() Heard {
	var v Heard
	if ns := h.packet.Load(); ns != 0 {
		v.Packet = time.Unix(0, ns)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v.AckPending = h.carried
	if len(h.pending) > 0 && (v.AckPending.IsZero() || h.pending[0].Before(v.AckPending)) {
		v.AckPending = h.pending[0]
	}
	return v
}

// Heard returns when the stream last heard the master.
func (r *Receiver) Heard() Heard { return r.heard.view() }

// Durable returns the relay log's durable frontier (applier.Source).
func (r *Receiver) Durable() relay.Frontier {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.durable
}

// AckStats returns the semi-sync ACK counters.
func (r *Receiver) AckStats() semisync.Stats { return r.acker.Stats() }

// Changed signals a move of the durable frontier (applier.Source).
func (r *Receiver) Changed() <-chan struct{} { return r.changed }

// DurableWatch returns the durable frontier and a channel closed when it
// moves again, read together (binlogserver.Watcher): a reader that checks,
// then waits on the channel, misses no move.
func (r *Receiver) DurableWatch() (relay.Frontier, <-chan struct{}) { return r.notify.Watch() }

func (r *Receiver) publishDurable(f relay.Frontier) {
	r.mu.Lock()
	r.durable = f
	r.mu.Unlock()
	r.notify.Publish(f)
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Status is the Receiver's live state.
type Status struct {
	State          string
	LastError      string
	LastErrorAt    time.Time
	ConnectedSince time.Time
	Identity       binlog.Identity
	Received       binlog.Position // end of the last whole transaction durable
	Acked          binlog.Position
	LastEventAt    time.Time
	LastEventTS    uint32 // header timestamp (master clock) of the last stored transaction event
	LastHeartbeat  time.Time
	Events         uint64
	Bytes          uint64
	Reconnects     uint64
	ChecksumErrors uint64
	// DumpConnID is the master's connection id of the current dump (zero
	// between dumps).
	DumpConnID uint32
	// Transactions counts the transactions stored; AckRequests the events
	// the master asked an ACK for (with semi-sync ON, at least one per
	// group of transactions committed together).
	Transactions, AckRequests uint64
	Warnings                  []string
	// SilentSince is when a dump connection first delivered nothing (zero
	// while dumps deliver); DumpThread is the master's view of that dump
	// thread (its processlist command, state and time), read on a
	// connection of its own.
	SilentSince time.Time
	DumpThread  string
	// CleanStop is where the master's last Stop event ended, and
	// CleanStopAt when the stream delivered it: a clean shutdown of the
	// master (a restart) writes one at the end of its binlog. The dump
	// sends it when the agent resumes after the restart (or before the
	// end of the dump, with shutdown_wait_for_slaves). A master that came
	// back without one crashed. Zero until one is received in this run.
	CleanStop   binlog.FilePos
	CleanStopAt time.Time
}

func NewReceiver(cfg Config, log *slog.Logger, store *checkpoint.Store, hooks Hooks) *Receiver {
	r := &Receiver{
		cfg: cfg, log: log.With("component", "stream"), store: store, hooks: hooks,
		acker: semisync.NewAcker(nil), now: time.Now,
		st: Status{State: StateConnecting}, changed: make(chan struct{}, 1),
	}
	r.ckpt = newCheckpointer(store, r.log, r.now)
	return r
}

func (r *Receiver) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Warnings = append([]string(nil), r.st.Warnings...)
	return st
}

func (r *Receiver) update(f func(*Status)) {
	r.mu.Lock()
	f(&r.st)
	r.mu.Unlock()
}

// run streams until ctx ends (nil) or a permanent error (returned).
func (r *Receiver) Run(ctx context.Context) error {
	ckptCtx, stopCkpt := context.WithCancel(context.Background())
	ckptDone := make(chan struct{})
	go func() { r.ckpt.run(ckptCtx); close(ckptDone) }()
	defer func() {
		stopCkpt()
		<-ckptDone // no save may land after the final one below
		if r.relay != nil {
			if err := r.relay.Close(); err != nil {
				r.log.Error("closing relay log", "err", err)
			}
			r.checkpoint()
			r.ckpt.flush()
		}
	}()
	backoff := r.cfg.ReconnectInitial
	for {
		start := r.now()
		err := r.session(ctx)
		if ctx.Err() != nil {
			r.update(func(s *Status) { s.State = StateStopped })
			return nil
		}
		if binlog.IsPermanent(err) {
			r.update(func(s *Status) {
				s.State, s.LastError, s.LastErrorAt = StateFailed, err.Error(), r.now()
			})
			return err
		}
		if r.now().Sub(start) > 10*time.Second {
			backoff = r.cfg.ReconnectInitial
		}
		r.log.Warn("stream interrupted; will reconnect from the durable position", "err", err, "retry_in", backoff)
		r.update(func(s *Status) {
			s.State, s.LastError, s.LastErrorAt = StateRetrying, err.Error(), r.now()
			if !s.SilentSince.IsZero() {
				s.State = StateSilent
			}
			s.Reconnects++
		})
		if localStorageError(err) {
			if !r.waitForStorage(ctx, err) {
				r.update(func(s *Status) { s.State = StateStopped })
				return nil
			}
			continue
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			r.update(func(s *Status) { s.State = StateStopped })
			return nil
		}
		backoff = min(backoff*2, r.cfg.ReconnectMax)
	}
}

// session is one connection: connect, check, dump, and stream until error.
func (r *Receiver) session(ctx context.Context) error {
	r.setState(StateConnecting)
	conn, err := binlog.Dial(ctx, r.cfg.Source)
	if err != nil {
		return err
	}
	defer conn.Close()
	id := conn.Identity()
	if err := r.store.CheckIdentity(id); err != nil {
		if errors.Is(err, checkpoint.ErrIdentityChanged) {
			// Say which: a new master that holds our history, or another.
			if st, lerr := r.store.Load(); lerr == nil && st.Identity != nil {
				if cerr := checkContinuity(conn, st.Identity, id, st.Received.Pos); cerr != nil {
					err = cerr
				}
			}
		}
		return &binlog.SourceError{Op: "check identity", Err: err, Permanent: true}
	}
	r.identity = id
	r.update(func(s *Status) { s.Identity = id })
	if !r.preflight {
		if err := r.runPreflight(conn); err != nil {
			return err
		}
		r.preflight = true
	}
	from, err := r.resumePoint(ctx, conn)
	if err != nil {
		return err
	}
	if err := checkContinuity(conn, &id, id, r.relay.Boundary().Pos); err != nil {
		var se *binlog.SourceError
		if errors.As(err, &se) {
			return err // the master did not answer: retry
		}
		return &binlog.SourceError{Op: "check that the master continues the relay log", Err: err, Permanent: true}
	}
	r.killPreviousDump(conn)
	r.heard.newConnection()
	if err := conn.StartDump(from); err != nil {
		return err
	}
	r.recordDump(conn.ConnectionID())
	r.update(func(s *Status) { s.DumpConnID = conn.ConnectionID() })
	defer r.update(func(s *Status) { s.DumpConnID = 0 })
	if from.UseGTID {
		r.log.Info("streaming", "master", r.cfg.Source.Addr, "from_gtid", from.GTID.String(), "semisync", r.cfg.Source.SemiSync)
	} else {
		r.log.Info("streaming", "master", r.cfg.Source.Addr, "from", from.File.String(), "semisync", r.cfg.Source.SemiSync)
	}
	r.setState(StateDumping)
	err = r.pump(ctx, conn)
	if errors.Is(err, errSilent) {
		view := r.dumpThreadView(ctx, conn.ConnectionID())
		r.log.Error("connected, "+silentMarker+": the master sent no rotate, no format description and no heartbeat after the dump request; reconnecting",
			"read_timeout", r.cfg.Source.ReadTimeout, "dump_thread_on_master", view)
		r.update(func(s *Status) {
			if s.SilentSince.IsZero() {
				s.SilentSince = r.now()
			}
			s.DumpThread = view
		})
		return fmt.Errorf("connected, %s within read_timeout %s (the master's dump thread: %s)", silentMarker, r.cfg.Source.ReadTimeout, view)
	}
	if binlog.ServerErrorCode(err) == 1236 {
		where := from.File.String()
		if from.UseGTID {
			where = "GTID " + from.GTID.String()
		}
		if r.adopted != "" {
			return &binlog.SourceError{Op: "stream from " + where, Permanent: true,
				Err: fmt.Errorf("%w (%s, where this first run starts: the master's binlog no longer has the transactions after it (purged) or never had them; rebuild the standby with hotstandby clone into a fresh data_dir)", err, r.adopted)}
		}
		return &binlog.SourceError{Op: "stream from " + where, Permanent: true,
			Err: fmt.Errorf("%w (the master no longer has these events, or never had them: if they were purged, this standby must be rebuilt from a fresh copy)", err)}
	}
	return err
}

// ackDurable acknowledges, once, everything the relay log already holds
// durably. After a crash between fsync and ACK, the master still waits for
// transactions the agent has; the resumed stream starts after them, so
// without this ACK those commits would wait out rpl_semi_sync_master_timeout
// and the master would fall back to asynchronous replication.
//
// It is sent when the dump's first packet has arrived, never right after
// the dump request: the master registers the connection with its semi-sync
// ACK receiver just before it sends that packet (Binlog_sender's init,
// dump_start), and a stock replica never writes before it is asked.
func (r *Receiver) ackDurable(conn *binlog.Conn) error {
	if !r.cfg.Source.SemiSync {
		return nil
	}
	durable, _, err := r.relay.Sync()
	if err != nil {
		return &binlog.SourceError{Op: "relay log", Err: err}
	}
	if durable.IsZero() || durable.Pos < 4 {
		return nil
	}
	r.acker.SetDurable(durable)
	if r.hooks.BeforeAck != nil {
		r.hooks.BeforeAck(durable, durable)
	}
	if err := r.acker.Ack(conn.AckWriter(), durable); err != nil {
		return &binlog.SourceError{Op: "send semi-sync ACK", Err: err}
	}
	return nil
}

// RecoverRelay opens the relay log (recovering its tail) without
// connecting to anything, publishes its durable frontier and closes it:
// what a promotion that resumes after a crash drains to, when the stream is
// never started again. It must not run while Run does.
func (r *Receiver) RecoverRelay() (relay.Frontier, error) {
	st, err := r.store.Load()
	if err != nil {
		return relay.Frontier{}, err
	}
	hint := st.Received
	if hint.Pos.GTID.Flavor() == "" {
		flavor := binlog.MariaDB
		if st.Identity != nil {
			flavor = st.Identity.Flavor
		}
		hint.Pos.GTID = binlog.NewGTIDSet(flavor)
	}
	rc := relay.DefaultConfig(r.cfg.RelayDir)
	rc.SegmentSize, rc.Acked = r.cfg.SegmentSize, st.Acked
	w, end, err := relay.Open(rc, hint)
	if err != nil {
		return relay.Frontier{}, err
	}
	if err := w.Close(); err != nil {
		return relay.Frontier{}, err
	}
	r.publishDurable(end)
	return end, nil
}

// resumePoint opens the relay log on first use and returns where the dump
// must start: after the last whole transaction in the relay log, or, on the
// very first run, at the configured start.
func (r *Receiver) resumePoint(ctx context.Context, conn *binlog.Conn) (binlog.DumpFrom, error) {
	if r.relay == nil {
		st, err := r.store.Load()
		if err != nil {
			return binlog.DumpFrom{}, &binlog.SourceError{Op: "load checkpoint", Err: err, Permanent: true}
		}
		hint := st.Received
		if hint.Pos.FilePos.IsZero() && hint.Pos.GTID.IsZero() {
			if hint, err = r.firstStart(ctx, conn); err != nil {
				return binlog.DumpFrom{}, err
			}
			// Persist the start before anything is streamed, so that a crash
			// before the first checkpoint still knows the GTID base.
			if err := r.store.SaveFrontiers(hint, binlog.FilePos{}, r.now()); err != nil {
				return binlog.DumpFrom{}, &binlog.SourceError{Op: "save start", Err: err, Permanent: true}
			}
		} else {
			r.log.Info("resuming from durable checkpoint", "position", hint.Pos.String())
		}
		if hint.Pos.GTID.Flavor() == "" {
			hint.Pos.GTID = binlog.NewGTIDSet(r.identity.Flavor)
		}
		rc := relay.DefaultConfig(r.cfg.RelayDir)
		rc.SegmentSize = r.cfg.SegmentSize
		rc.Sync = r.hooks.Sync
		rc.Acked = st.Acked
		relay, end, err := relay.Open(rc, hint)
		if err != nil {
			return binlog.DumpFrom{}, &binlog.SourceError{Op: "open relay log", Err: err, Permanent: true}
		}
		r.relay = relay
		r.update(func(s *Status) { s.Received = end.Pos })
		r.publishDurable(relay.Durable())
		if end.Segment != 0 {
			r.log.Info("relay log recovered", "end", end.Pos.String(), "segment", end.Segment, "offset", end.Offset)
		}
	}
	end, err := r.relay.ResetToBoundary()
	if err != nil {
		return binlog.DumpFrom{}, &binlog.SourceError{Op: "reset relay log", Err: err, Permanent: true}
	}
	if end.Pos.FilePos.IsZero() {
		// Only a GTID start has no file yet.
		r.relay.ExpectGTIDStart()
		return binlog.DumpFrom{GTID: end.Pos.GTID, UseGTID: true}, nil
	}
	return binlog.DumpFrom{File: end.Pos.FilePos}, nil
}

// pump runs the reader goroutine and the writer loop until one fails.
func (r *Receiver) pump(ctx context.Context, conn *binlog.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	q := newQueue(8 << 20)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 0, 1<<20)
		for first := true; ; first = false {
			ev, ack, err := conn.ReadEvent(buf)
			if err == nil {
				r.heard.readPacket(r.now(), ack && r.cfg.Source.SemiSync)
			}
			if err != nil {
				if first && isTimeout(err) {
					err = fmt.Errorf("%w: %w", errSilent, err)
				}
				q.fail(err)
				return
			}
			if err := q.push(ctx, ev, ack); err != nil {
				return
			}
			if cap(ev) > cap(buf) && cap(ev) <= 64<<20 {
				buf = ev[:0]
			}
		}
	}()
	err := r.write(ctx, conn, q)
	cancel()
	conn.Interrupt() // unblocks the reader; the session closes conn after it returned
	wg.Wait()
	return err
}

// write is the single relay writer: place a batch, fsync once, ACK once.
func (r *Receiver) write(ctx context.Context, conn *binlog.Conn, q *queue) error {
	lastCheckpoint := r.now()
	dumpAt := r.now()
	var requestsTaken uint64 // ACK requests taken from the queue on this connection
	for first := true; ; first = false {
		b, err := q.take(ctx)
		if err != nil {
			return err
		}
		if first && len(b.items) > 0 {
			if err := r.firstPacket(conn, b.event(0), r.now().Sub(dumpAt)); err != nil {
				return err
			}
		}
		took := time.Now()
		var ackPos binlog.FilePos
		var ackGTID binlog.GTIDSet
		var nbytes uint64
		var lastTS uint32
		var txns, ackReqs uint64
		stored := 0
		for i := range b.items {
			if b.items[i].ackWanted && r.cfg.Source.SemiSync {
				requestsTaken++
			}
			w, err := r.relay.Write(b.event(i))
			if err != nil {
				return r.writeFailed(err)
			}
			if w.Heartbeat {
				r.update(func(s *Status) { s.LastHeartbeat = r.now() })
				continue
			}
			if w.Stored && w.Header.Type == binlog.StopEvent {
				r.log.Info("the master's binlog has a Stop event here: it shut down cleanly", "at", w.End.String())
				r.update(func(s *Status) { s.CleanStop, s.CleanStopAt = w.End, r.now() })
			}
			if w.Stored {
				stored++
				nbytes += uint64(b.items[i].n)
				if w.Boundary && w.Header.Timestamp != 0 {
					lastTS = w.Header.Timestamp
				}
				if w.Boundary && (w.Header.Type == binlog.XIDEvent || w.Header.Type == binlog.QueryEvent) {
					txns++
				}
				if b.items[i].ackWanted {
					ackReqs++
					ackPos = w.End
					if w.Boundary {
						ackGTID = r.relay.GTIDs()
					}
				}
			}
		}
		if stored > 0 || !ackPos.IsZero() {
			syncStart := time.Now()
			durable, boundary, err := r.relay.Sync()
			if err != nil {
				return r.writeFailed(err)
			}
			if m := r.cfg.Metrics.Fsync; m != nil {
				m.Observe(time.Since(syncStart).Seconds())
			}
			r.acker.SetDurable(durable)
			r.publishDurable(boundary)
			if !ackPos.IsZero() && r.cfg.Source.SemiSync {
				if r.hooks.BeforeAck != nil {
					r.hooks.BeforeAck(ackPos, durable)
				}
				if err := r.acker.Ack(conn.AckWriter(), ackPos); err != nil {
					if errors.Is(err, semisync.ErrAckBeyondDurable) {
						// A broken invariant: the ACK was not sent. Stop the
						// daemon rather than go on with it.
						r.log.Error("internal error: refused to acknowledge beyond the durable relay log; stopping", "err", err)
						return &binlog.SourceError{Op: "send semi-sync ACK", Err: err, Permanent: true}
					}
					return &binlog.SourceError{Op: "send semi-sync ACK", Err: err}
				}
				r.heard.acked(requestsTaken)
				if m := r.cfg.Metrics.AckLatency; m != nil {
					m.Observe(time.Since(took).Seconds())
				}
			}
			now := r.now()
			r.update(func(s *Status) {
				s.Received = boundary.Pos
				if !ackPos.IsZero() && r.cfg.Source.SemiSync {
					s.Acked = binlog.Position{FilePos: ackPos, GTID: ackGTID}
				}
				s.LastEventAt = now
				if lastTS != 0 {
					s.LastEventTS = lastTS
				}
				s.Events += uint64(stored)
				s.Bytes += nbytes
				s.Transactions += txns
				s.AckRequests += ackReqs
			})
		}
		if r.now().Sub(lastCheckpoint) >= r.cfg.CheckpointInterval {
			r.checkpoint()
			lastCheckpoint = r.now()
		}
		if b.err != nil {
			return b.err
		}
	}
}

// firstPacket marks the dump as delivering: the state becomes streaming, a
// silent spell ends, and the durable frontier is acknowledged once.
func (r *Receiver) firstPacket(conn *binlog.Conn, ev []byte, after time.Duration) error {
	typ := "unknown"
	if h, err := binlog.ParseHeader(ev); err == nil {
		typ = strconv.Itoa(int(h.Type))
	}
	r.log.Info("first packet of the dump arrived", "event", typ, "after", after.Round(time.Microsecond))
	now := r.now()
	r.update(func(s *Status) {
		if !s.SilentSince.IsZero() {
			r.log.Info("the master sends again", "silent_for", now.Sub(s.SilentSince).Round(time.Millisecond))
		}
		s.State, s.ConnectedSince, s.SilentSince, s.DumpThread = StateStreaming, now, time.Time{}, ""
	})
	return r.ackDurable(conn)
}

// errSilent means a dump delivered nothing before the read timeout.
var errSilent = errors.New(silentMarker)

// silentMarker names the silent-dump condition in logs and status; the
// test harness watches for it (harness.StuckMarker).
const silentMarker = "master sends nothing"

// isTimeout reports whether err is a read deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return strings.Contains(err.Error(), "i/o timeout")
}

// setState sets the state, except that a silent spell stays visible until a
// dump delivers again.
func (r *Receiver) setState(state string) {
	r.update(func(s *Status) {
		s.State = state
		if !s.SilentSince.IsZero() {
			s.State = StateSilent
		}
	})
}

// dumpThreadView is the master's view of the dump connection id, read on a
// connection of its own: "command=Binlog Dump state=... time=3s", or why it
// could not be read.
func (r *Receiver) dumpThreadView(ctx context.Context, id uint32) string {
	src := r.cfg.Source
	ctx, cancel := context.WithTimeout(ctx, src.ConnectTimeout+src.ReadTimeout)
	defer cancel()
	c, err := binlog.Dial(ctx, binlog.SourceConfig{Addr: src.Addr, User: src.User, Password: src.Password,
		ConnectTimeout: src.ConnectTimeout, ReadTimeout: src.ReadTimeout, TLS: src.TLS, TLSFallback: src.TLSFallback})
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	defer c.Quit()
	rows, err := c.Query(fmt.Sprintf("SELECT command, COALESCE(state, ''), time FROM information_schema.processlist WHERE id = %d", id))
	switch {
	case err != nil:
		return "unknown (" + err.Error() + ")"
	case len(rows) == 0:
		return fmt.Sprintf("connection %d is not in the master's processlist", id)
	}
	return fmt.Sprintf("connection %d: command=%q state=%q time=%ss", id, rows[0][0], rows[0][1], rows[0][2])
}

// writeFailed turns a relay failure into a retryable stream error: the
// batch that failed is dropped (ResetToBoundary at the next session) and
// nothing durable is touched. A checksum failure is said as such.
func (r *Receiver) writeFailed(err error) error {
	if errors.Is(err, binlog.ErrChecksum) {
		r.log.Error("event failed its checksum; not stored, will re-read it from the master", "err", err)
		r.update(func(s *Status) { s.ChecksumErrors++ })
	}
	return &binlog.SourceError{Op: "relay log", Err: err}
}

// checkpoint offers the durable frontiers to the checkpointer.
func (r *Receiver) checkpoint() {
	if r.relay == nil {
		return
	}
	r.ckpt.offer(r.relay.Durable(), r.Status().Acked.FilePos)
}

// dumpIDFile holds the master's connection ids of the agent's recent dumps,
// one per line, newest last.
func (r *Receiver) dumpIDFile() string { return filepath.Join(r.cfg.DataDir, "dump.id") }

// maxDumpIDs is how many recent dump connection ids the agent remembers.
const maxDumpIDs = 16

// previousDumps returns the recorded dump connection ids.
func (r *Receiver) previousDumps() []uint64 {
	b, err := os.ReadFile(r.dumpIDFile())
	if err != nil {
		return nil
	}
	var ids []uint64
	for _, f := range strings.Fields(string(b)) {
		if id, err := strconv.ParseUint(f, 10, 32); err == nil && id != 0 {
			ids = append(ids, id)
		}
	}
	return ids
}

// killPreviousDump ends the agent's own earlier dump threads on the master
// that are still there, and waits (up to 10 s) until they are gone, before a
// new dump is requested.
//
// After a crash (kill -9) such a thread lingers until the master next writes
// to it. A new dump with the same server_id then waits in the master's
// kill_zombie_dump_threads, in 100 ms steps and without a timeout, until the
// old one has left; the master's own kill of it does not shut its socket
// down, and an old thread stuck in the semi-sync ACK receiver's remove_slave
// wakes only when some replica socket shows activity. KILL CONNECTION shuts
// the socket down, which wakes both. Only threads with a recorded id, of the
// agent's own user, in a dump (or being killed: "Killed", "Busy") are
// killed: every dump the agent starts is recorded, since the zombie may be
// an older one than the last.
func (r *Receiver) killPreviousDump(conn *binlog.Conn) {
	ids := r.previousDumps()
	if len(ids) == 0 {
		return
	}
	list := make([]string, len(ids))
	for i, id := range ids {
		list[i] = strconv.FormatUint(id, 10)
	}
	query := fmt.Sprintf("SELECT id, command, COALESCE(state, '') FROM information_schema.processlist WHERE id IN (%s) AND id <> %d AND user = '%s' AND command IN ('Binlog Dump', 'Killed', 'Busy')",
		strings.Join(list, ","), conn.ConnectionID(), strings.ReplaceAll(r.cfg.Source.User, "'", "''"))
	rows, err := conn.Query(query)
	if err != nil || len(rows) == 0 {
		return
	}
	for _, row := range rows {
		if _, err := conn.Query("KILL CONNECTION " + row[0]); err != nil && binlog.ServerErrorCode(err) != 1094 { // 1094: already gone
			r.log.Warn("could not end a previous dump thread", "id", row[0], "err", err)
			continue
		}
		r.log.Info("ended the agent's previous dump thread on the master", "id", row[0], "command", row[1], "state", row[2])
	}
	deadline := r.now().Add(10 * time.Second)
	for r.now().Before(deadline) {
		if rows, err = conn.Query(query); err != nil || len(rows) == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.log.Warn("a previous dump thread of the agent is still on the master after KILL; the new dump may wait for it",
		"id", rows[0][0], "command", rows[0][1], "state", rows[0][2])
}

// recordDump remembers the connection id of the dump just started.
func (r *Receiver) recordDump(id uint32) {
	ids := append(r.previousDumps(), uint64(id))
	if len(ids) > maxDumpIDs {
		ids = ids[len(ids)-maxDumpIDs:]
	}
	var b strings.Builder
	for _, id := range ids {
		b.WriteString(strconv.FormatUint(id, 10) + "\n")
	}
	if err := os.WriteFile(r.dumpIDFile(), []byte(b.String()), 0o600); err != nil {
		r.log.Warn("could not record the dump connection id", "err", err)
	}
}

// localStorageError reports whether err is the relay log's own storage
// failing (full, over quota, read-only): reconnecting to the master cannot
// help until that changes.
func localStorageError(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EROFS)
}

// waitForStorage holds the reconnect while the relay log's file system
// refuses writes, probing it with a small synced file, and returns when a
// probe succeeds (false when ctx ends). Reconnecting at once would only
// start a dump that fails on its first write: on a MariaDB master each
// such dump registers as a semi-sync replica and leaves a moment later,
// and a quick add-then-remove can lose the ACK receiver's wakeup
// (Ack_receiver::wait_for_slave_connection in 10.11), leaving that dump
// thread stuck in remove_slave and every later dump with the agent's
// server_id waiting for it.
func (r *Receiver) waitForStorage(ctx context.Context, cause error) bool {
	r.log.Error("relay log storage refuses writes; waiting for space before reconnecting to the master (every event already stored is kept)",
		"dir", r.cfg.RelayDir, "err", cause)
	wait := r.cfg.ReconnectInitial
	for {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return false
		}
		if err := probeWritable(r.cfg.RelayDir); err == nil {
			r.log.Info("relay log storage accepts writes again; reconnecting", "dir", r.cfg.RelayDir)
			return true
		} else if !localStorageError(err) {
			r.log.Warn("probing the relay log's storage", "dir", r.cfg.RelayDir, "err", err)
			return true // not a space problem: let the session say what it is
		}
		wait = min(wait*2, r.cfg.ReconnectMax)
	}
}

// probeWritable writes, syncs and removes a 64 KiB file in dir.
func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".space-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, 64<<10))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
