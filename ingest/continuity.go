package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hotstandby/hotstandby/binlog"
)

// ErrOtherHistory means the configured master's binlog does not continue
// the relay log: resuming would mix two histories.
var ErrOtherHistory = errors.New("the master's binlog does not continue this relay log")

// ErrMasterChanged means the configured master is another server whose
// history contains the relay log's (a new master after a failover or a
// switchover).
var ErrMasterChanged = errors.New("the configured master is a different server")

// historyQuerier is what the continuity check asks the master (a
// *binlog.Conn before its dump).
type historyQuerier interface {
	Query(q string) ([][]string, error)
}

// checkContinuity proves, with the master's own answers, that its binlog
// continues the relay log that ends at end (file position and GTID set),
// before anything is streamed. stored is the master identity the relay's
// positions belong to (nil: first run); id is the configured master's.
//
// MariaDB has no server_uuid: a master rebuilt from scratch with the same
// server_id looks like the old one, and its binlog positions belong to
// another history. So on MariaDB:
//   - BINLOG_GTID_POS(file, pos) at the relay's end must be the relay's own
//     GTID position there (every domain the relay knows), and
//   - the master's @@gtid_binlog_state must hold the relay's last GTID of
//     every domain.
//
// A different server_id whose binlog holds the relay's GTIDs is a master
// change (ErrMasterChanged), told apart from another history
// (ErrOtherHistory). MySQL (flavor mysql) is identified by server_uuid,
// which a rebuilt server does not keep: the identity check suffices there.
func checkContinuity(q historyQuerier, stored *binlog.Identity, id binlog.Identity, end binlog.Position) error {
	if id.Flavor != binlog.MariaDB || end.FilePos.IsZero() || end.GTID.IsZero() {
		return nil // nothing streamed yet (or MySQL): nothing to continue
	}
	missing, err := missingFromState(q, end.GTID)
	if err != nil {
		return err
	}
	if stored != nil && stored.ServerID != id.ServerID {
		if len(missing) == 0 {
			return fmt.Errorf("%w: the relay log's positions belong to %s, the configured master is %s, and its binlog holds the relay's transactions up to %s: "+
				"a new master after a failover or switchover; this agent does not follow a new master by itself yet: move data_dir away and start with start = \"gtid:%s\"",
				ErrMasterChanged, stored, id, end.GTID, end.GTID)
		}
		return fmt.Errorf("%w: the relay log's positions belong to %s, the configured master is %s, and it lacks %s: "+
			"point master.host back at the old master, or rebuild this standby from the new one with a fresh data_dir",
			ErrOtherHistory, stored, id, strings.Join(missing, ","))
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: its @@gtid_binlog_state lacks %s, which the relay log holds (ending at %s): the master was rebuilt or is another server with server_id %d; "+
			"do not mix them: rebuild this standby from this master with a fresh data_dir, or point master.host back at the old master",
			ErrOtherHistory, strings.Join(missing, ","), end.FilePos, id.ServerID)
	}
	return checkPosition(q, id, end)
}

// missingFromState lists the relay's last GTIDs (one per domain) that the
// master's @@gtid_binlog_state does not reach.
func missingFromState(q historyQuerier, relayGTIDs binlog.GTIDSet) ([]string, error) {
	rows, err := q.Query("SELECT @@GLOBAL.gtid_binlog_state")
	if err != nil {
		return nil, err
	}
	have := map[[2]uint32]uint64{}
	if len(rows) == 1 {
		for _, part := range strings.Split(rows[0][0], ",") {
			if g, err := binlog.ParseGTID(strings.TrimSpace(part)); err == nil {
				have[[2]uint32{g.Domain, g.Server}] = g.Seq
			}
		}
	}
	var missing []string
	for _, g := range relayGTIDs.MariaDBGTIDs() {
		if seq, ok := have[[2]uint32{g.Domain, g.Server}]; !ok || seq < g.Seq {
			missing = append(missing, g.String())
		}
	}
	return missing, nil
}

// checkPosition asks the master which GTID position its binlog has at the
// relay's end and compares it with the relay's.
func checkPosition(q historyQuerier, id binlog.Identity, end binlog.Position) error {
	rows, err := q.Query(fmt.Sprintf("SELECT BINLOG_GTID_POS('%s', %d)", strings.ReplaceAll(end.File, "'", "''"), end.Pos))
	if err != nil {
		return err
	}
	if len(rows) != 1 || rows[0][0] == "" || strings.EqualFold(rows[0][0], "NULL") {
		logs, err := q.Query("SHOW BINARY LOGS")
		if err != nil {
			return err
		}
		for _, l := range logs {
			if l[0] == end.File {
				size, _ := strconv.ParseUint(l[1], 10, 64)
				return fmt.Errorf("%w: its %s (%d bytes) has no event boundary at offset %d, where the relay log ends after %s: "+
					"the master was rebuilt or is another server with server_id %d; do not mix them: rebuild this standby from this master with a fresh data_dir",
					ErrOtherHistory, end.File, size, end.Pos, end.GTID, id.ServerID)
			}
		}
		return nil // purged or never there: the dump says so (error 1236)
	}
	at, err := binlog.ParseGTIDSet(binlog.MariaDB, rows[0][0])
	if err != nil {
		return fmt.Errorf("BINLOG_GTID_POS(%s) = %q: %w", end.FilePos, rows[0][0], err)
	}
	masterAt := map[uint32]binlog.GTID{}
	for _, g := range at.MariaDBGTIDs() {
		masterAt[g.Domain] = g
	}
	for _, g := range end.GTID.MariaDBGTIDs() {
		if m, ok := masterAt[g.Domain]; !ok || m != g {
			return fmt.Errorf("%w: at %s, where the relay log ends after %s, the master's binlog is at %s (BINLOG_GTID_POS): "+
				"the master was rebuilt or is another server with server_id %d; do not mix them: rebuild this standby from this master with a fresh data_dir",
				ErrOtherHistory, end.FilePos, end.GTID, at, id.ServerID)
		}
	}
	return nil
}
