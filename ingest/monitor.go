package ingest

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// MasterView is what the Monitor last measured on the master.
type MasterView struct {
	Pos           binlog.Position // SHOW MASTER STATUS and @@gtid_binlog_pos
	PosKnown      bool
	SemiSync      string // Rpl_semi_sync_master_status: ON, OFF, or "" unknown
	SemiSyncSince time.Time
	MeasuredAt    time.Time
	ClockOffset   time.Duration // the master's clock minus ours, at MeasuredAt
	Err           string
}

// Monitor polls the master on a connection of its own: its current position
// (for lag in bytes) and whether it is in semi-sync mode or fell back to
// asynchronous replication, and since when.
type Monitor struct {
	cfg binlog.SourceConfig
	log *slog.Logger

	mu   sync.Mutex // mu guards the field below
	view MasterView
}

// NewMonitor returns a monitor of the master at src (its replication
// fields are not used).
func NewMonitor(src binlog.SourceConfig, log *slog.Logger) *Monitor {
	return &Monitor{cfg: src, log: log.With("component", "monitor")}
}

// View returns the last measurement.
func (m *Monitor) View() MasterView {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

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
				ConnectTimeout: m.cfg.ConnectTimeout, ReadTimeout: m.cfg.ReadTimeout})
			if err != nil {
				m.mu.Lock()
				m.view.Err, m.view.PosKnown, m.view.SemiSync = err.Error(), false, ""
				m.mu.Unlock()
			} else {
				conn = c
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

// poll measures once; false means the connection is broken.
func (m *Monitor) poll(conn *binlog.Conn) bool {
	now := time.Now()
	pos, posErr := conn.MasterStatus()
	rows, err := conn.Query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_source_status')")
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.view.Err = err.Error()
		return false
	}
	state := ""
	for _, r := range rows {
		state = strings.ToUpper(r[1])
	}
	if clock, err := conn.Query("SELECT UNIX_TIMESTAMP(NOW(6))"); err == nil && len(clock) == 1 {
		if f, err := strconv.ParseFloat(clock[0][0], 64); err == nil {
			m.view.ClockOffset = time.Duration(f*float64(time.Second)) - time.Duration(now.UnixNano())
		}
	}
	if state != m.view.SemiSync {
		if m.view.SemiSync != "" || state != "" {
			m.log.Info("master semi-sync status", "status", state, "was", m.view.SemiSync)
		}
		m.view.SemiSync, m.view.SemiSyncSince = state, now
	}
	m.view.PosKnown = posErr == nil
	if posErr == nil {
		m.view.Pos = pos
	}
	m.view.MeasuredAt, m.view.Err = now, ""
	return true
}
