package agent

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/replica"
)

// The first run beside an existing standby. When [standby] is configured,
// the receiver's first run reads where the standby is (standbyProbe) and
// starts there, so that adopting a native replica of the master (the
// usual migration) loses nothing and needs no position typed by hand; the
// standby's own replication from the master is stopped first
// (takeOverStandby), so that its position stays where it was read.

// standbyProbe is the receiver's reader of the standby's GTID state for the
// first run (ingest.Config.Standby); nil without a [standby] section.
func (c Config) standbyProbe() ingest.StandbyProbe {
	if !c.Standby.Enabled() {
		return nil
	}
	return c.readStandbyGTIDs
}

// openStandby opens the standby with the applier's account.
func (c Config) openStandby() (*sql.DB, error) {
	conn, err := c.observedConnector("standby", "applier")
	if err != nil {
		return nil, err
	}
	if conn != nil {
		return sql.OpenDB(conn), nil
	}
	return sql.Open("mysql", c.StandbyDSN())
}

// readStandbyGTIDs stops the standby's own replication from another source
// if it still runs (stopNativeReplication), then reads its server_id,
// gtid_slave_pos and gtid_binlog_state: which of them the apply mode
// continues from is ContinuesFrom.
func (c Config) readStandbyGTIDs(ctx context.Context) (ingest.StandbyGTIDs, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := c.openStandby()
	if err != nil {
		return ingest.StandbyGTIDs{}, err
	}
	defer db.Close()
	out := ingest.StandbyGTIDs{Addr: c.Standby.Addr(), ContinuesFrom: ingest.SlavePos}
	if c.ApplyMode() == ModeDirect {
		out.ContinuesFrom = ingest.BinlogPos
	}
	if out.Replicates, out.NativeStopped, err = stopNativeReplication(ctx, db); err != nil {
		return out, fmt.Errorf("standby %s: %w", out.Addr, err)
	}
	var slavePos, binlogState string
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.server_id, @@GLOBAL.gtid_slave_pos, @@GLOBAL.gtid_binlog_state").
		Scan(&out.ServerID, &slavePos, &binlogState); err != nil {
		return out, fmt.Errorf("standby %s: read its GTID state: %w", out.Addr, err)
	}
	if out.SlavePos, err = binlog.ParseGTIDSet(binlog.MariaDB, slavePos); err != nil {
		return out, fmt.Errorf("standby %s: gtid_slave_pos %q: %w", out.Addr, slavePos, err)
	}
	for _, part := range splitNonEmpty(binlogState) {
		g, err := binlog.ParseGTID(part)
		if err != nil {
			return out, fmt.Errorf("standby %s: gtid_binlog_state %q: %w", out.Addr, binlogState, err)
		}
		out.BinlogState = append(out.BinlogState, g)
	}
	return out, nil
}

// stopNativeReplication stops the standby's replication (the default
// connection) when it replicates from another source than the agent's own
// binlog server and a thread still runs: a native replica of the master,
// being adopted. It returns that source and whether it stopped it. STOP
// SLAVE returns once the SQL thread stopped at a transaction boundary, so
// gtid_slave_pos read after it is where the standby is for good; in replica
// mode the agent re-points the standby at itself, in direct mode the agent
// applies to it and the stopped configuration stays (a restart of the
// standby would start it again unless skip_slave_start: remove it with
// RESET SLAVE ALL).
func stopNativeReplication(ctx context.Context, db *sql.DB) (source string, stopped bool, err error) {
	ss, err := replica.ReadSlaveStatus(ctx, db)
	if err != nil {
		return "", false, fmt.Errorf("SHOW SLAVE STATUS: %w", err)
	}
	if ss == nil || ss["Master_User"] == replicaUser {
		return "", false, nil
	}
	source = net.JoinHostPort(ss["Master_Host"], ss["Master_Port"])
	if ss["Slave_IO_Running"] == "No" && ss["Slave_SQL_Running"] == "No" {
		return source, false, nil
	}
	if _, err := db.ExecContext(ctx, "STOP SLAVE"); err != nil {
		return source, false, fmt.Errorf("it replicates from %s: STOP SLAVE: %w (stop its replication yourself, or grant the standby user REPLICATION SLAVE ADMIN)", source, err)
	}
	return source, true, nil
}

// takeOverStandby runs once, on the very first run (nothing received yet),
// before the apply mode starts: it stops the standby's own replication from
// another source (stopNativeReplication), so that neither the apply mode
// nor the first start reads a position that is still moving, and nothing
// else applies to the standby beside the agent. A failure is logged; the
// receiver's first start tries again before it reads the standby.
func (a *Agent) takeOverStandby(ctx context.Context) {
	if !a.cfg.Standby.Enabled() {
		return
	}
	st, err := a.store.Load()
	if err != nil || !st.Received.Pos.FilePos.IsZero() || !st.Received.Pos.GTID.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := a.cfg.openStandby()
	if err != nil {
		a.log.Warn("first run: the standby's own replication not checked", "standby", a.cfg.Standby.Addr(), "err", err)
		return
	}
	defer db.Close()
	source, stopped, err := stopNativeReplication(ctx, db)
	switch {
	case err != nil:
		a.log.Warn("first run: the standby's own replication not checked", "standby", a.cfg.Standby.Addr(), "err", err)
	case stopped:
		a.log.Warn("first run: the standby replicated from another source itself; stopped that replication (STOP SLAVE): the agent takes it over from where it is",
			"standby", a.cfg.Standby.Addr(), "its_source", source, "mode", a.cfg.ApplyMode())
	}
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
