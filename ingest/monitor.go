package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
)

// MasterView is what the Monitor last measured on the master.
type MasterView struct {
	Pos      binlog.Position // SHOW MASTER STATUS and @@gtid_binlog_pos
	PosKnown bool
	// Received is the stream's durable position read just before Pos: the
	// stream cannot be ahead of the master, so Pos minus Received is never
	// negative (the stream's current position may be, against a Pos up to
	// one interval old).
	Received      binlog.Position
	SemiSync      string // Rpl_semi_sync_master_status: ON, OFF, or "" unknown
	SemiSyncSince time.Time
	// Clients is Rpl_semi_sync_master_clients; WaitPoint is
	// rpl_semi_sync_master_wait_point (AFTER_SYNC is lossless).
	Clients   int
	WaitPoint string
	// NoTx and NoTimes are Rpl_semi_sync_master_no_tx (commits that did not
	// wait for an ACK) and Rpl_semi_sync_master_no_times (fallbacks to
	// asynchronous replication), as last read.
	NoTx, NoTimes uint64
	// History is the master's @@gtid_binlog_state (every server's last GTID
	// per domain), HistoryKnown once read.
	History      []binlog.GTID
	HistoryKnown bool
	// ProvenAt is the last sample that proved every commit since the
	// previous one waited for the agent's ACK; Breach says why the last
	// sample that did not, did not (empty once proven again).
	ProvenAt    time.Time
	Breach      string
	MeasuredAt  time.Time
	ClockOffset time.Duration // the master's clock minus ours, at MeasuredAt
	Err         string
}

// StreamView is what the monitor reads of the agent's own stream at each
// sample, before and after its round trips.
type StreamView struct {
	State  string // the receiver's state (StateStreaming, ...)
	DumpID uint32 // the master's connection id of the current dump (0: none)
	// Received is the durable end of the last whole transaction, in the
	// master's coordinates; an ACK for it has been written.
	Received binlog.Position
	// Transactions and AckRequests count what the stream stored; AcksSent
	// counts the semi-sync ACKs it wrote.
	Transactions, AckRequests, AcksSent uint64
}

// Monitor polls the master on a connection of its own: its current
// position (for lag in bytes), whether it is in semi-sync mode or fell back
// to asynchronous replication and since when, and the counters that prove
// (or disprove) that every commit waited for the agent's ACK. Proofs and
// breaches go to the checkpoint store, so that a promotion can rely on them
// after a restart. Run is one goroutine; View and CaughtUpAt may be called
// from any.
type Monitor struct {
	cfg   binlog.SourceConfig
	log   *slog.Logger
	store *checkpoint.Store // nil: proofs are not recorded
	// stream reads the agent's stream (nil: not checked, nothing is proven
	// about who acknowledges).
	stream func() StreamView

	prev     *sample // the previous sample on the current connection
	breached bool    // the last judged sample was a breach (logged once)

	mu    sync.Mutex // mu guards the fields below
	view  MasterView
	marks []mark // recent positions of the master, oldest first
}

// mark is a position of the master and a moment at which its binlog ended
// at or before it: the moment SHOW MASTER STATUS was sent.
type mark struct {
	at  time.Time
	pos binlog.FilePos
}

// maxMarks bounds the positions kept for CaughtUpAt (a minute at 2 s).
const maxMarks = 32

// NewMonitor returns a monitor of the master at src (its replication
// fields are not used). store, if not nil, records semi-sync proofs; recv,
// if not nil, is the agent's stream, which a proof also needs.
func NewMonitor(src binlog.SourceConfig, log *slog.Logger, store *checkpoint.Store, recv *Receiver) *Monitor {
	m := &Monitor{cfg: src, log: log.With("component", "monitor"), store: store}
	if recv != nil {
		m.stream = func() StreamView {
			st := recv.Status()
			return StreamView{State: st.State, DumpID: st.DumpConnID, Received: st.Received,
				Transactions: st.Transactions, AckRequests: st.AckRequests, AcksSent: recv.AckStats().Sent}
		}
	}
	return m
}

// CaughtUpAt returns the latest moment at which the master's binlog ended
// at or before received, as far as the monitor measured it: everything the
// master had written by then is at or before received. Zero: none known.
func (m *Monitor) CaughtUpAt(received binlog.FilePos) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.marks) - 1; i >= 0; i-- {
		if ok, err := received.AtLeast(m.marks[i].pos); err == nil && ok {
			return m.marks[i].at
		}
	}
	return time.Time{}
}

// View returns the last measurement.
func (m *Monitor) View() MasterView {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// Run polls every interval until ctx ends.
//
// The end of ctx ends a sample in flight: its connection is interrupted,
// so a stop of the agent never waits for a master that is slow to answer
// (a sample's round trips take no context).
func (m *Monitor) Run(ctx context.Context, every time.Duration) {
	var conn *binlog.Conn
	var connMu sync.Mutex // guards conn against the interrupt below
	setConn := func(c *binlog.Conn) {
		connMu.Lock()
		conn = c
		connMu.Unlock()
	}
	stopInterrupt := context.AfterFunc(ctx, func() {
		connMu.Lock()
		defer connMu.Unlock()
		if conn != nil {
			_ = conn.Interrupt()
		}
	})
	defer stopInterrupt()
	defer func() {
		connMu.Lock()
		defer connMu.Unlock()
		if conn != nil {
			conn.Close() // Run returns only once ctx ended
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if conn == nil {
			c, err := binlog.Dial(ctx, binlog.SourceConfig{Addr: m.cfg.Addr, User: m.cfg.User, Password: m.cfg.Password,
				ConnectTimeout: m.cfg.ConnectTimeout, ReadTimeout: m.cfg.ReadTimeout,
				TLS: m.cfg.TLS, TLSFallback: m.cfg.TLSFallback, OnPlaintext: m.cfg.OnPlaintext})
			if err != nil {
				m.mu.Lock()
				m.view.Err, m.view.PosKnown, m.view.SemiSync = err.Error(), false, ""
				m.mu.Unlock()
			} else {
				m.prev = nil
				setConn(c)
				if ctx.Err() != nil {
					return // the interrupt may have run before conn was set
				}
			}
		}
		if conn != nil && !m.poll(conn) {
			c := conn
			setConn(nil)
			c.Close()
			if ctx.Err() != nil {
				return
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// sample is one round of readings.
type sample struct {
	at            time.Time // before the round trips; the status counters were read after it
	posAt         time.Time // when SHOW MASTER STATUS was sent, after the counters were read
	pos           binlog.Position
	posErr        error
	status        string
	clients       int
	noTx, noTimes uint64
	// getAck is Rpl_semi_sync_master_get_ack (ACK packets the master
	// received from any replica); waitSessions is
	// Rpl_semi_sync_master_wait_sessions (commits waiting for an ACK).
	getAck, waitSessions uint64
	// ackBase is where the ACK count is compared from (see ackBase).
	ackBase          ackBase
	waitPoint        string
	clockOffset      time.Duration
	haveClock, known bool // known: the status counters were read
	// before and after are the agent's stream read before the counters and
	// after the last round trip (haveStream: read at all).
	before, after StreamView
	haveStream    bool
	// dumpCommand is the master's processlist command of the stream's dump
	// connection (before.DumpID): "Binlog Dump", another, or "" when the
	// master has no such connection; dumpChecked when it was read.
	dumpCommand  string
	dumpChecked  bool
	history      []binlog.GTID
	historyKnown bool
	timeout      time.Duration // rpl_semi_sync_master_timeout
	waitNoSlave  string        // rpl_semi_sync_master_wait_no_slave: ON or OFF
}

// ackBase is the baseline of the ACK comparison: the master's get_ack and
// the agent's ACKs sent (read before the counters) at one sample, the
// first on the connection or the first after a breach. ACKs the agent sent
// before a sample may reach the master after it: compared sample by
// sample, each boundary could count one of the agent's ACKs as another's.
// From a baseline, only the baseline's own ACKs in flight can (ackSlack
// allows for them), while another replica's ACKs add up.
type ackBase struct {
	at           time.Time
	getAck, sent uint64
}

// ackSlack is how many of the agent's ACKs may have been in flight at the
// baseline.
const ackSlack = 2

// read takes one sample; the round trips happen here, outside any lock.
// The order matters to the proof (see judge): the stream first, then the
// counters, then the master's position, then the stream again.
func (m *Monitor) read(conn *binlog.Conn) (sample, error) {
	s := sample{at: time.Now()}
	if m.stream != nil {
		s.before, s.haveStream = m.stream(), true
	}
	rows, err := conn.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status', " +
		"'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_master_no_times', " +
		"'Rpl_semi_sync_master_get_ack', 'Rpl_semi_sync_master_wait_sessions')")
	if err != nil {
		return s, err
	}
	for _, r := range rows {
		n, _ := strconv.ParseUint(r[1], 10, 64)
		switch strings.ToLower(r[0]) {
		case "rpl_semi_sync_master_status", "rpl_semi_sync_source_status":
			s.status = strings.ToUpper(r[1])
		case "rpl_semi_sync_master_clients":
			s.clients = int(n)
		case "rpl_semi_sync_master_no_tx":
			s.noTx, s.known = n, true
		case "rpl_semi_sync_master_no_times":
			s.noTimes = n
		case "rpl_semi_sync_master_get_ack":
			s.getAck = n
		case "rpl_semi_sync_master_wait_sessions":
			s.waitSessions = n
		}
	}
	s.posAt = time.Now()
	s.pos, s.posErr = conn.MasterStatus()
	if s.haveStream && s.before.DumpID != 0 {
		if v, err := conn.Query(fmt.Sprintf("SELECT command FROM information_schema.processlist WHERE id = %d", s.before.DumpID)); err == nil {
			s.dumpChecked = true
			if len(v) == 1 {
				s.dumpCommand = v[0][0]
			}
		}
	}
	if v, err := conn.Query("SELECT @@GLOBAL.rpl_semi_sync_master_wait_point, @@GLOBAL.rpl_semi_sync_master_timeout, " +
		"@@GLOBAL.rpl_semi_sync_master_wait_no_slave"); err == nil && len(v) == 1 {
		s.waitPoint = strings.ToUpper(v[0][0])
		ms, _ := strconv.ParseUint(v[0][1], 10, 64)
		s.timeout = time.Duration(ms) * time.Millisecond
		s.waitNoSlave = strings.ToUpper(v[0][2])
		if s.waitNoSlave == "1" {
			s.waitNoSlave = "ON"
		}
	}
	if v, err := conn.Query("SELECT @@GLOBAL.gtid_binlog_state"); err == nil && len(v) == 1 {
		s.historyKnown = true
		for _, part := range strings.Split(v[0][0], ",") {
			if g, err := binlog.ParseGTID(strings.TrimSpace(part)); err == nil {
				s.history = append(s.history, g)
			}
		}
	}
	asked := time.Now()
	if clock, err := conn.Query("SELECT UNIX_TIMESTAMP(NOW(6))"); err == nil && len(clock) == 1 {
		if f, err := strconv.ParseFloat(clock[0][0], 64); err == nil {
			s.clockOffset = time.Duration(f*float64(time.Second)) - time.Duration(asked.UnixNano())
			s.haveClock = true
		}
	}
	if m.stream != nil {
		s.after = m.stream()
	}
	return s, nil
}

// poll measures once; false means the connection is broken.
func (m *Monitor) poll(conn *binlog.Conn) bool {
	s, err := m.read(conn)
	if err != nil {
		m.mu.Lock()
		m.view.Err = err.Error()
		m.mu.Unlock()
		return false
	}
	if m.prev != nil {
		s.ackBase = m.prev.ackBase
	} else {
		s.ackBase = ackBase{at: s.at, getAck: s.getAck, sent: s.before.AcksSent}
	}
	proven, breach := judge(m.prev, s)
	if m.prev == nil && breach == "" && m.store != nil {
		// The first sample on a connection: the time since the last proof
		// (the agent or the monitor was down) is seen in the counters only.
		if proof, _, err := m.store.SemiSync(); err == nil && proof != nil {
			breach = sinceProof(*proof, s)
		}
	}
	if breach != "" {
		s.ackBase = ackBase{at: s.at, getAck: s.getAck, sent: s.before.AcksSent}
	}
	if s.known {
		m.prev = &s
	}
	m.record(s, proven, breach)
	m.mu.Lock()
	defer m.mu.Unlock()
	v := &m.view
	if s.status != v.SemiSync {
		if v.SemiSync != "" || s.status != "" {
			m.log.Info("master semi-sync status", "status", s.status, "was", v.SemiSync)
		}
		v.SemiSync, v.SemiSyncSince = s.status, s.at
	}
	v.Clients, v.WaitPoint, v.NoTx, v.NoTimes = s.clients, s.waitPoint, s.noTx, s.noTimes
	if s.historyKnown {
		v.History, v.HistoryKnown = s.history, true
	}
	if proven {
		v.ProvenAt, v.Breach = s.at, ""
	} else if breach != "" {
		v.Breach = breach
	}
	if s.haveClock {
		v.ClockOffset = s.clockOffset
	}
	v.PosKnown = s.posErr == nil
	if s.posErr == nil {
		v.Pos, v.Received = s.pos, s.before.Received
		if !s.pos.FilePos.IsZero() {
			m.marks = append(m.marks, mark{at: s.posAt, pos: s.pos.FilePos})
			if len(m.marks) > maxMarks {
				m.marks = m.marks[len(m.marks)-maxMarks:]
			}
		}
	}
	v.MeasuredAt, v.Err = s.at, ""
	return true
}

// judge decides whether sample s proves that every commit that returned OK
// on the master before s's counters were read is durable in the relay log,
// and if not (with a previous sample to compare), why not; "" with false is
// "not proven, and no breach either". The first sample on a connection
// proves nothing: there is nothing to compare its counters with.
//
// The argument, for a sample s and the previous one p: a commit that
// returned OK before s's counters were read either was written before p's
// SHOW MASTER STATUS was sent, and then it lies at or before p.pos, which
// the stream has durably received by the end of s (checked last); or it
// was written after that, so it was still to complete when p's counters
// were read, and it completed between p's and s's counters. Such a commit
// waited for an ACK (no_tx and no_times did not move; ON, AFTER_SYNC,
// wait_no_slave=ON), from the one semi-sync replica the master counts,
// which is the agent: the agent's stream streamed on one dump connection
// through the whole sample, the master holds that connection as a binlog
// dump, and the master received no more ACKs since the baseline (ackBase)
// than the agent sent (plus ackSlack that may have been in flight then). The agent acknowledges
// only what is durable. A commit still waiting at s (wait_sessions) is not
// covered by s: the next sample covers it, or the gate's timeout argument
// does.
func judge(prev *sample, s sample) (proven bool, breach string) {
	at := s.at.Local().Format("15:04:05")
	switch {
	case !s.known:
		return false, "" // not a semi-sync master (plugin off): the preflight says so
	case s.status != "ON" && prev != nil && s.noTx > prev.noTx:
		return false, fmt.Sprintf("master fell back to async at %s: %d commits without ACK since %s (Rpl_semi_sync_master_status=%s, no_tx +%d)",
			at, s.noTx-prev.noTx, prev.at.Local().Format("15:04:05"), s.status, s.noTx-prev.noTx)
	case s.status != "ON":
		return false, fmt.Sprintf("master not in semi-sync at %s (Rpl_semi_sync_master_status=%s: it commits without waiting for the agent's ACK, async)", at, s.status)
	case s.waitPoint != "" && s.waitPoint != "AFTER_SYNC":
		return false, fmt.Sprintf("master waits for ACKs %s, not AFTER_SYNC, at %s: a commit may be visible before the agent has it", s.waitPoint, at)
	case s.waitNoSlave == "OFF" || s.waitNoSlave == "0":
		return false, fmt.Sprintf("master has rpl_semi_sync_master_wait_no_slave=OFF at %s: it stops waiting the moment the agent disconnects", at)
	case s.clients != 1:
		return false, fmt.Sprintf("master has %d semi-sync replicas at %s: it waits for one ACK from any of them, so a commit may be on another replica only", s.clients, at)
	}
	if s.haveStream {
		if why := notTheAgent(s, at); why != "" {
			return false, why
		}
	}
	switch {
	case prev == nil:
		return false, ""
	case s.noTimes > prev.noTimes || s.noTx > prev.noTx:
		return false, fmt.Sprintf("master fell back to async between %s and %s: %d commits without ACK (Rpl_semi_sync_master_no_tx +%d, no_times +%d)",
			prev.at.Local().Format("15:04:05"), at, s.noTx-prev.noTx, s.noTx-prev.noTx, s.noTimes-prev.noTimes)
	case s.noTx < prev.noTx || s.noTimes < prev.noTimes || s.getAck < prev.getAck:
		return false, fmt.Sprintf("master's semi-sync counters went backwards at %s (a restart?): nothing proven across it", at)
	case !s.haveStream || !s.dumpChecked:
		return false, "" // who acknowledged is unknown: nothing proven
	case s.before.Transactions > prev.before.Transactions && s.before.AckRequests == prev.before.AckRequests:
		return false, fmt.Sprintf("the stream received %d transactions between %s and %s and the master asked for no ACK",
			s.before.Transactions-prev.before.Transactions, prev.at.Local().Format("15:04:05"), at)
	case s.after.AcksSent < s.ackBase.sent || s.getAck < s.ackBase.getAck:
		return false, "" // another stream (a restarted receiver): nothing to compare
	case s.getAck-s.ackBase.getAck > s.after.AcksSent-s.ackBase.sent+ackSlack:
		return false, fmt.Sprintf("another semi-sync replica acknowledged commits for the agent between %s and %s: the master received %d ACKs (Rpl_semi_sync_master_get_ack), the agent sent %d; a commit it acknowledged may be missing here",
			s.ackBase.at.Local().Format("15:04:05"), at, s.getAck-s.ackBase.getAck, s.after.AcksSent-s.ackBase.sent)
	case prev.posErr != nil || prev.pos.FilePos.IsZero():
		return false, "" // where the master was at prev is unknown
	}
	if ok, err := s.after.Received.FilePos.AtLeast(prev.pos.FilePos); err != nil || !ok {
		// Not a breach: the stream is behind (a large transaction, a slow
		// disk); a commit waiting for it that falls back shows in no_tx.
		return false, ""
	}
	return true, ""
}

// sinceProof says why the master's counters in s, the first sample on a
// connection, break the last proof: a fallback to asynchronous replication
// since it (while the agent or its monitor was down), or counters that went
// backwards (a restarted master: nothing is known of the time between).
func sinceProof(proof checkpoint.SemiSyncProof, s sample) string {
	at := s.at.Local().Format("15:04:05")
	switch {
	case !s.known:
		return ""
	case s.noTx < proof.NoTx || s.noTimes < proof.NoTimes:
		return fmt.Sprintf("master's semi-sync counters went backwards between the last proof (%s) and %s (a restart?): nothing proven across it",
			proof.At.Local().Format("15:04:05"), at)
	case s.noTx > proof.NoTx || s.noTimes > proof.NoTimes:
		return fmt.Sprintf("master fell back to async between the last proof (%s) and %s, while the agent was not watching: %d commits without ACK (Rpl_semi_sync_master_no_tx +%d, no_times +%d)",
			proof.At.Local().Format("15:04:05"), at, s.noTx-proof.NoTx, s.noTx-proof.NoTx, s.noTimes-proof.NoTimes)
	}
	return ""
}

// notTheAgent says why the one semi-sync replica the master counts in s may
// not be the agent's stream ("" when it is, as far as s shows).
func notTheAgent(s sample, at string) string {
	b, a := s.before, s.after
	if b.State != StateStreaming || a.State != StateStreaming || b.DumpID == 0 || a.DumpID != b.DumpID {
		state := a.State
		if b.State != StateStreaming {
			state = b.State
		}
		if state == StateStreaming {
			state = "reconnecting"
		}
		return fmt.Sprintf("the master counts one semi-sync replica at %s, but the agent's stream is %s: another semi-sync replica, or a dump connection of the agent's the master still holds, answers for the agent; a commit it acknowledges may be missing here",
			at, state)
	}
	if s.dumpChecked && !strings.HasPrefix(s.dumpCommand, "Binlog Dump") {
		seen := "is not on the master"
		if s.dumpCommand != "" {
			seen = fmt.Sprintf("is %q on the master, not a binlog dump", s.dumpCommand)
		}
		return fmt.Sprintf("the agent's dump connection %d %s at %s: the one semi-sync replica the master counts is another; a commit it acknowledges may be missing here",
			b.DumpID, seen, at)
	}
	return ""
}

// record writes a proof or a breach to the checkpoint store.
func (m *Monitor) record(s sample, proven bool, breach string) {
	if m.store == nil {
		return
	}
	var err error
	switch {
	case proven:
		err = m.store.SaveSemiSyncProof(checkpoint.SemiSyncProof{At: s.at, NoTx: s.noTx, NoTimes: s.noTimes, Timeout: s.timeout})
	case breach != "":
		if !m.breached {
			m.log.Warn("semi-sync not proven: a promotion now may lose committed transactions", "reason", breach)
		}
		err = m.store.SaveSemiSyncBreach(checkpoint.SemiSyncBreach{At: s.at, Reason: breach})
	}
	if proven || breach != "" {
		m.breached = !proven
	}
	if err != nil {
		m.log.Error("semi-sync proof not saved", "err", err)
	}
}
