package ingest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// The standby's GTID variables an apply mode continues from
// (StandbyGTIDs.ContinuesFrom).
const (
	// SlavePos: replica mode; the standby replicates from the agent with
	// MASTER_USE_GTID=slave_pos and asks for what follows @@gtid_slave_pos.
	SlavePos = "gtid_slave_pos"
	// BinlogPos: direct mode; the applier's checkpoint is the standby's
	// @@gtid_binlog_state, whose last GTID per domain is @@gtid_binlog_pos.
	BinlogPos = "gtid_binlog_pos"
)

// ErrStandbyCannotContinue means the first run's start is one the
// configured standby cannot continue from: streaming from it would leave
// the standby with a gap, twice-applied transactions, or another history.
var ErrStandbyCannotContinue = errors.New("the standby cannot continue from the first run's start")

// StandbyGTIDs is where an existing standby is, read once before the very
// first run (Config.Standby).
type StandbyGTIDs struct {
	Addr     string // names the standby in messages
	ServerID uint32 // @@server_id
	// ContinuesFrom is the variable the standby's apply mode continues
	// from: SlavePos or BinlogPos.
	ContinuesFrom string
	SlavePos      binlog.GTIDSet // @@gtid_slave_pos
	BinlogState   []binlog.GTID  // @@gtid_binlog_state: the last GTID of each domain and server_id
	// Replicates is the source of the standby's own (native) replication,
	// host:port, when it had one that is not the agent; NativeStopped says
	// the agent stopped it (STOP SLAVE) so that its position stays put.
	Replicates    string
	NativeStopped bool
}

// StandbyProbe reads the standby's GTID state (Config.Standby). An error is
// retried: the first run never guesses where an unreachable standby is.
type StandbyProbe func(ctx context.Context) (StandbyGTIDs, error)

// masterHistory is what the first start asks the master about its binlog.
// Not SHOW BINARY LOGS: it waits for the binlog's lock, which a master
// holds while its commits wait for a semi-sync ACK (as when the standby
// being adopted was its semi-sync replica and has just stopped), for as
// long as rpl_semi_sync_master_timeout. A standby whose transactions the
// master purged is told by the dump itself (error 1236, refused at once).
type masterHistory struct {
	state      []binlog.GTID  // @@gtid_binlog_state
	startAt    binlog.GTIDSet // a file start: BINLOG_GTID_POS there
	startKnown bool           // startAt was answered (not NULL)
}

func readMasterHistory(q historyQuerier, start binlog.Start) (masterHistory, error) {
	var m masterHistory
	rows, err := q.Query("SELECT @@GLOBAL.gtid_binlog_state")
	if err != nil {
		return m, err
	}
	if len(rows) == 1 {
		m.state = parseGTIDList(rows[0][0])
	}
	if start.Kind == binlog.StartFile {
		if m.startAt, m.startKnown, err = gtidPosAt(q, start.File); err != nil {
			return m, err
		}
	}
	return m, nil
}

// gtidPosAt asks BINLOG_GTID_POS at p; false when it answers NULL.
func gtidPosAt(q historyQuerier, p binlog.FilePos) (binlog.GTIDSet, bool, error) {
	rows, err := q.Query(binlog.BinlogGTIDPosQuery(p))
	if err != nil {
		return binlog.GTIDSet{}, false, err
	}
	if len(rows) != 1 || strings.EqualFold(rows[0][0], "NULL") {
		return binlog.NewGTIDSet(binlog.MariaDB), false, nil
	}
	set, err := binlog.ParseGTIDSet(binlog.MariaDB, rows[0][0])
	if err != nil {
		return binlog.GTIDSet{}, false, fmt.Errorf("BINLOG_GTID_POS(%s) = %q: %w", p, rows[0][0], err)
	}
	return set, true, nil
}

func parseGTIDList(s string) []binlog.GTID {
	var out []binlog.GTID
	for _, part := range strings.Split(s, ",") {
		if g, err := binlog.ParseGTID(strings.TrimSpace(part)); err == nil {
			out = append(out, g)
		}
	}
	return out
}

// startPlan is the first start decided beside a standby.
type startPlan struct {
	// empty: the standby holds no transaction of the master's domains;
	// the configured start applies.
	empty bool
	// adopt: start after at, where the standby is (start = "current").
	adopt bool
	at    binlog.GTIDSet
}

// lastPerDomain keeps, per domain, the GTID with the highest sequence
// number (gtid_binlog_pos from gtid_binlog_state under gtid_strict_mode).
func lastPerDomain(gs []binlog.GTID, keep func(binlog.GTID) bool) map[uint32]binlog.GTID {
	out := map[uint32]binlog.GTID{}
	for _, g := range gs {
		if have, ok := out[g.Domain]; keep(g) && (!ok || g.Seq > have.Seq) {
			out[g.Domain] = g
		}
	}
	return out
}

// planStart decides where the very first run starts when a standby is
// configured (see the package doc, "The first run").
func planStart(start binlog.Start, sb StandbyGTIDs, m masterHistory) (startPlan, error) {
	knows := map[[2]uint32]uint64{} // (domain, server_id) -> the master's last seq
	for _, g := range m.state {
		knows[[2]uint32{g.Domain, g.Server}] = max(knows[[2]uint32{g.Domain, g.Server}], g.Seq)
	}
	masterLast := lastPerDomain(m.state, func(binlog.GTID) bool { return true })
	inMaster := func(g binlog.GTID) bool { _, ok := masterLast[g.Domain]; return ok }
	fromMaster := func(g binlog.GTID) bool { _, ok := knows[[2]uint32{g.Domain, g.Server}]; return ok }
	slave := lastPerDomain(sb.SlavePos.MariaDBGTIDs(), inMaster)
	binlogAll := lastPerDomain(sb.BinlogState, inMaster)
	binlogMaster := lastPerDomain(sb.BinlogState, fromMaster)
	if len(slave) == 0 && len(binlogMaster) == 0 {
		return startPlan{empty: true}, nil
	}
	refuse := func(format string, args ...any) (startPlan, error) {
		text := fmt.Sprintf(format, args...)
		if sb.Replicates != "" && sb.NativeStopped {
			text += fmt.Sprintf(" (the agent stopped the standby's own replication from %s: START SLAVE on it resumes it)", sb.Replicates)
		}
		return startPlan{}, fmt.Errorf("%w: standby %s: %s", ErrStandbyCannotContinue, sb.Addr, text)
	}
	cont, other, otherVar := slave, binlogMaster, BinlogPos
	if sb.ContinuesFrom == BinlogPos {
		cont, other, otherVar = binlogAll, slave, SlavePos
	}
	for _, d := range domains(other) {
		o := other[d]
		if c, ok := cont[d]; !ok || o.Seq > c.Seq {
			fix := fmt.Sprintf("if it holds exactly the master's transactions up to %s, SET GLOBAL gtid_slave_pos = '%s' on it; otherwise rebuild it with hotstandby clone", o, setOf(binlogAll))
			if sb.ContinuesFrom == BinlogPos {
				fix = `it replicated with log_slave_updates=OFF and direct mode would apply them again: use [standby] mode = "replica", or rebuild it with hotstandby clone`
			}
			return refuse("it holds the master's transactions up to %s (%s), but %s, which %s continues from, is at %s: %s",
				o, otherVar, sb.ContinuesFrom, modeName(sb.ContinuesFrom), posText(cont, d), fix)
		}
	}
	for _, d := range domains(cont) {
		g := cont[d]
		if seq, ok := knows[[2]uint32{g.Domain, g.Server}]; !ok || seq < g.Seq {
			what := "has diverged from the master: the master's binlog never had that transaction"
			switch {
			case g.Server == sb.ServerID:
				what = "has transactions of its own the master never had (written on it: errant)"
			case masterLast[d].Seq < g.Seq:
				what = "is ahead of the master: it has transactions the master never had (it replicated from another server, or the master was rebuilt)"
			}
			return refuse("it is at %s (%s) and the master's binlog is at %s (gtid_binlog_state %s): the standby %s; rebuild it from this master with hotstandby clone",
				g, sb.ContinuesFrom, masterLast[d], gtidList(m.state), what)
		}
	}
	var startAt binlog.GTIDSet
	switch start.Kind {
	case binlog.StartCurrent:
		return startPlan{adopt: true, at: setOf(cont)}, nil
	case binlog.StartGTID:
		set, err := binlog.ParseGTIDSet(binlog.MariaDB, start.GTID)
		if err != nil {
			return startPlan{}, err
		}
		startAt = set
	case binlog.StartFile:
		if !m.startKnown {
			return startPlan{}, nil // no boundary there or no such file: the dump says so
		}
		startAt = m.startAt
	}
	for _, s := range startAt.MariaDBGTIDs() {
		if c, ok := cont[s.Domain]; inMaster(s) && (!ok || c.Seq < s.Seq) {
			return refuse("start = %q begins after %s in domain %d, and the standby is at %s (%s): the transactions in between would never reach it; "+
				"set start = \"current\" (the first run then starts where the standby is)", start.String(), s, s.Domain, posText(cont, s.Domain), sb.ContinuesFrom)
		}
	}
	return startPlan{}, nil
}

func modeName(v string) string {
	if v == BinlogPos {
		return "direct mode"
	}
	return "replica mode"
}

func domains(m map[uint32]binlog.GTID) []uint32 {
	out := make([]uint32, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func setOf(m map[uint32]binlog.GTID) binlog.GTIDSet {
	s := binlog.NewGTIDSet(binlog.MariaDB)
	for _, d := range domains(m) {
		s = s.AddMariaDB(m[d])
	}
	return s
}

func posText(m map[uint32]binlog.GTID, d uint32) string {
	if g, ok := m[d]; ok {
		return g.String()
	}
	return fmt.Sprintf("nothing of domain %d", d)
}

func gtidList(gs []binlog.GTID) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = g.String()
	}
	return strings.Join(parts, ",")
}

// firstStart turns the configured start into the first frontier. With a
// standby configured (MariaDB) it first reads where the standby is: a
// standby that holds the master's transactions is adopted (start =
// "current" starts where it is; another start must not begin after it),
// and a start it cannot continue from is refused at once.
func (r *Receiver) firstStart(ctx context.Context, conn *binlog.Conn) (relay.Frontier, error) {
	start, _ := binlog.ParseStart(r.cfg.Start) // validated with the config
	if r.cfg.Standby != nil && r.identity.Flavor == binlog.MariaDB {
		sb, err := r.cfg.Standby(ctx)
		if err != nil {
			return relay.Frontier{}, &binlog.SourceError{Op: "first run: read where the standby is", Err: err}
		}
		if sb.NativeStopped {
			r.log.Warn("first run: the standby replicated from another source itself; the agent stopped that replication (STOP SLAVE) to take it over",
				"standby", sb.Addr, "its_source", sb.Replicates)
		}
		m, err := readMasterHistory(conn, start)
		if err != nil {
			return relay.Frontier{}, err
		}
		plan, err := planStart(start, sb, m)
		if err != nil {
			return relay.Frontier{}, &binlog.SourceError{Op: "first run", Err: err, Permanent: true}
		}
		switch {
		case plan.adopt:
			r.adopted = fmt.Sprintf("the standby %s is at %s (%s)", sb.Addr, plan.at, sb.ContinuesFrom)
			r.log.Info("first run: adopting the standby: starting where it is", "standby", sb.Addr, sb.ContinuesFrom, plan.at.String())
			return relay.Frontier{Pos: binlog.Position{GTID: plan.at}}, nil
		case plan.empty && start.Kind == binlog.StartCurrent:
			r.log.Warn("first run: the standby holds no transaction of the master's domains: starting at the master's current position, "+
				"so it gets only what the master commits from now on; fill it first with hotstandby clone", "standby", sb.Addr)
		}
	}
	switch start.Kind {
	case binlog.StartGTID:
		set, err := binlog.ParseGTIDSet(r.identity.Flavor, start.GTID)
		if err != nil {
			return relay.Frontier{}, &binlog.SourceError{Op: "start " + start.String(), Err: err, Permanent: true}
		}
		r.log.Info("first run: starting after GTID set", "gtid", set.String())
		return relay.Frontier{Pos: binlog.Position{GTID: set}}, nil
	case binlog.StartFile:
		r.log.Info("first run: starting at file position", "from", start.File.String())
		return relay.Frontier{Pos: binlog.Position{FilePos: start.File, GTID: binlog.NewGTIDSet(r.identity.Flavor)}}, nil
	}
	ms, err := conn.MasterStatus()
	if err != nil {
		return relay.Frontier{}, err
	}
	r.log.Info("first run: starting at the master's current position", "from", ms.String())
	return relay.Frontier{Pos: ms}, nil
}
