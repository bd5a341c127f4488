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
	Pos           binlog.Position // SHOW MASTER STATUS and @@gtid_binlog_pos
	PosKnown      bool
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

// Monitor polls the master on a connection of its own: its current
// position (for lag in bytes), whether it is in semi-sync mode or fell back
// to asynchronous replication and since when, and the counters that prove
// (or disprove) that every commit waited for the agent's ACK. Proofs and
// breaches go to the checkpoint store, so that a promotion can rely on them
// after a restart. Run is one goroutine; View may be called from any.
type Monitor struct {
	cfg   binlog.SourceConfig
	log   *slog.Logger
	store *checkpoint.Store // nil: proofs are not recorded
	// stream counts the transactions the stream stored and the events that
	// asked for an ACK (nil: not checked).
	stream func() (txns, ackRequests uint64)

	prev     *sample // the previous sample on the current connection
	breached bool    // the last judged sample was a breach (logged once)

	mu   sync.Mutex // mu guards the field below
	view MasterView
}

// NewMonitor returns a monitor of the master at src (its replication
// fields are not used). store, if not nil, records semi-sync proofs; recv,
// if not nil, is the stream whose ACK requests a proof also needs.
func NewMonitor(src binlog.SourceConfig, log *slog.Logger, store *checkpoint.Store, recv *Receiver) *Monitor {
	m := &Monitor{cfg: src, log: log.With("component", "monitor"), store: store}
	if recv != nil {
		m.stream = func() (uint64, uint64) { st := recv.Status(); return st.Transactions, st.AckRequests }
	}
	return m
}

// View returns the last measurement.
func (m *Monitor) View() MasterView {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// Run polls every interval until ctx ends.
func (m *Monitor) Run(ctx context.Context, every time.Duration) {
	var conn *binlog.Conn
	defer func() {
		if conn != nil {
			conn.Quit()
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
				conn, m.prev = c, nil
			}
		}
		if conn != nil && !m.poll(conn) {
			conn.Close()
			conn = nil
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
	at               time.Time
	pos              binlog.Position
	posErr           error
	status           string
	clients          int
	noTx, noTimes    uint64
	waitPoint        string
	clockOffset      time.Duration
	haveClock, known bool   // known: the status counters were read
	txns, ackReqs    uint64 // the stream's counters when the sample was taken
	history          []binlog.GTID
	historyKnown     bool
	timeout          time.Duration // rpl_semi_sync_master_timeout
	waitNoSlave      string        // rpl_semi_sync_master_wait_no_slave: ON or OFF
}

// read takes one sample; the round trips happen here, outside any lock.
func (m *Monitor) read(conn *binlog.Conn) (sample, error) {
	s := sample{at: time.Now()}
	if m.stream != nil {
		s.txns, s.ackReqs = m.stream()
	}
	s.pos, s.posErr = conn.MasterStatus()
	rows, err := conn.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status', " +
		"'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_master_no_tx', 'Rpl_semi_sync_master_no_times')")
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
	if clock, err := conn.Query("SELECT UNIX_TIMESTAMP(NOW(6))"); err == nil && len(clock) == 1 {
		if f, err := strconv.ParseFloat(clock[0][0], 64); err == nil {
			s.clockOffset = time.Duration(f*float64(time.Second)) - time.Duration(s.at.UnixNano())
			s.haveClock = true
		}
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
	proven, breach := judge(m.prev, s)
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
		v.Pos = s.pos
	}
	v.MeasuredAt, v.Err = s.at, ""
	return true
}

// judge decides whether sample s proves that every commit since prev waited
// for an ACK, and if not (with a previous sample to compare), why not. The
// first sample on a connection proves nothing: there is nothing to compare
// its counters with.
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
	case prev == nil:
		return false, ""
	case s.noTimes > prev.noTimes || s.noTx > prev.noTx:
		return false, fmt.Sprintf("master fell back to async between %s and %s: %d commits without ACK (Rpl_semi_sync_master_no_tx +%d, no_times +%d)",
			prev.at.Local().Format("15:04:05"), at, s.noTx-prev.noTx, s.noTx-prev.noTx, s.noTimes-prev.noTimes)
	case s.noTx < prev.noTx || s.noTimes < prev.noTimes:
		return false, fmt.Sprintf("master's semi-sync counters went backwards at %s (a restart?): nothing proven across it", at)
	case s.txns > prev.txns && s.ackReqs == prev.ackReqs:
		return false, fmt.Sprintf("the stream received %d transactions between %s and %s and the master asked for no ACK",
			s.txns-prev.txns, prev.at.Local().Format("15:04:05"), at)
	}
	return true, ""
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
