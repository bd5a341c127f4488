package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/binlogserver"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/replica"
	"github.com/hotstandby/hotstandby/status"
)

// Apply modes ([standby] mode).
const (
	// ModeDirect: the agent's own session applies the relay log with
	// BINLOG statements (package applier).
	ModeDirect = "direct"
	// ModeReplica: the standby replicates from the agent's binlog server
	// with its own parallel SQL threads (package replica).
	ModeReplica = "replica"
)

// replicaUser is the binlog server's account when [serve] names none.
const replicaUser = "hotstandby_standby"

// relayServer is the binlog server the standby replicates from in replica
// mode: it serves only durable events of the relay log.
type relayServer interface {
	// Addr is the address it listens on, host:port.
	Addr() string
	// Serve serves replicas until ctx ends.
	Serve(ctx context.Context) error
	// Close stops listening and ends every replica's connection.
	Close() error
	// OldestNeeded is the oldest relay segment a connected replica reads
	// (false: none connected).
	OldestNeeded() (uint64, bool)
	// Replicas is what it knows of each connected replica's dump.
	Replicas() []binlogserver.Replica
}

// replicaMode is the agent's part in replica mode: the binlog server and the
// replica that controls the standby. rep is set by start.
type replicaMode struct {
	a *Agent

	mu         sync.Mutex // mu guards the fields below
	rep        *replica.Replica
	srv        relayServer
	cancel     context.CancelFunc // ends rep.Run (stop)
	runDone    chan struct{}      // closed once rep.Run has returned
	stopped    bool               // stop was called: never start again
	badApplied string             // a gtid_slave_pos that did not parse, logged once
	// caughtUp is the relay log's GTID state at the latest point up to
	// which the standby is known to have applied every transaction the
	// relay holds (caughtUpTo); empty until known. See lagBase.
	caughtUp binlog.GTIDSet

	purgeMu sync.Mutex                // purgeMu guards the field below
	segGTID map[uint64]binlog.GTIDSet // the GTIDs of closed relay segments (they never change)
}

// replicaStatus returns the replica's status, false before it started.
func (m *replicaMode) status() (replica.Status, bool) {
	m.mu.Lock()
	rep := m.rep
	m.mu.Unlock()
	if rep == nil {
		return replica.Status{}, false
	}
	return rep.Status(), true
}

func (m *replicaMode) server() relayServer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.srv
}

func (m *replicaMode) replica() *replica.Replica {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rep
}

// randomPassword is the binlog server's password when [serve] sets none:
// kept in memory only, new at every start (the standby gets it through
// CHANGE MASTER at every start too).
func randomPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("replica mode: generate the binlog server's password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// start listens with the binlog server and starts the replica; both run
// until ctx ends. Run errors that end replica mode for good (the drain)
// are not errors.
func (m *replicaMode) start(ctx context.Context, wg *sync.WaitGroup, fatal func(error)) {
	if err := m.startReplica(ctx, wg); err != nil {
		fatal(err)
	}
}

func (m *replicaMode) startReplica(ctx context.Context, wg *sync.WaitGroup) error {
	a := m.a
	if role, err := a.store.LoadRole(); err != nil {
		return err
	} else if role.Role == checkpoint.RolePromoting && checkpoint.Drained(role.Step) {
		// The drain is done: the standby is no replica any more (or is
		// being made writable); configuring it again would undo that.
		a.log.Info("the interrupted promotion is past its drain: the standby's replication is not configured again", "step", role.Step)
		return nil
	}
	srv, user, password, err := a.listenRelayServer()
	if err != nil {
		return err
	}
	host, portText, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		srv.Close()
		return fmt.Errorf("replica mode: binlog server address %s: %w", srv.Addr(), err)
	}
	port, _ := strconv.Atoi(portText)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	cfg := replica.DefaultConfig()
	cfg.DSN = a.cfg.StandbyDSN()
	if cfg.Connector, err = a.cfg.observedConnector("standby", "applier"); err != nil {
		srv.Close()
		return fmt.Errorf("replica mode: standby connection: %w", err)
	}
	cfg.Source = replica.Source{Host: host, Port: port, User: user, Password: password, HeartbeatPeriod: a.cfg.Master.Heartbeat.Duration, ServerID: a.cfg.ServerID}
	cfg.ParallelThreads = a.cfg.Standby.ParallelThreads
	cfg.MasterServerID = func() uint32 { return a.recv.Status().Identity.ServerID }
	cfg.Logger = a.log
	rep, err := replica.New(cfg)
	if err != nil {
		srv.Close()
		return err
	}
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		srv.Close()
		return nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	m.rep, m.srv, m.cancel, m.runDone = rep, srv, cancel, make(chan struct{})
	runDone := m.runDone
	m.mu.Unlock()
	a.log.Info("apply mode replica: the standby replicates from the agent's binlog server", "listen", srv.Addr(),
		"standby", a.cfg.Standby.Addr(), "parallel_threads", cfg.ParallelThreads)
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("binlog server stopped", "err", err)
		}
	}()
	go func() {
		defer wg.Done()
		err := rep.Run(runCtx)
		close(runDone)
		if errors.Is(err, replica.ErrDrained) || (runCtx.Err() != nil && ctx.Err() == nil) { // drained, or stop
			<-ctx.Done() // the server keeps serving other replicas until the end
		}
		cancel()
		srv.Close()
	}()
	return nil
}

// stop ends the replica's control loop for good (it would configure the
// standby's replication again) and waits for it; the binlog server keeps
// serving until the daemon ends. The caller ends the standby's replication
// itself (MakeWritable: STOP SLAVE, RESET SLAVE ALL).
func (m *replicaMode) stop(ctx context.Context) error {
	m.mu.Lock()
	m.stopped = true
	cancel, done := m.cancel, m.runDone
	m.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// frontier is the standby's gtid_slave_pos, the applied frontier of
// replica mode. Only the GTID set is known in this mode (the standby's own
// threads read the relay log, through the binlog server), so it names no
// relay segment and no file position.
func (m *replicaMode) frontier() (relay.Frontier, bool) {
	st, ok := m.status()
	if !ok || st.Applied == "" {
		return relay.Frontier{}, false
	}
	g, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err != nil {
		m.mu.Lock()
		logIt := m.badApplied != st.Applied
		m.badApplied = st.Applied
		m.mu.Unlock()
		if logIt {
			m.a.log.Error("applied frontier not saved: the standby's gtid_slave_pos", "gtid_slave_pos", st.Applied, "err", err)
		}
		return relay.Frontier{}, false
	}
	return relay.Frontier{Pos: binlog.Position{GTID: g}}, true
}

// applied is the standby's gtid_slave_pos, and the SQL or IO thread's
// error while replication is stopped on one.
func (m *replicaMode) applied() (binlog.GTIDSet, string, error) {
	st, ok := m.status()
	if !ok {
		return binlog.GTIDSet{}, "", errors.New("the standby's replication has not started yet")
	}
	var stoppedOn string
	switch st.State {
	case replica.StateError:
		stoppedOn = st.Error()
	case replica.StatePreflight:
		stoppedOn = strings.Join(st.Findings, "; ")
	}
	g, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err != nil {
		return binlog.GTIDSet{}, stoppedOn, fmt.Errorf("the standby's gtid_slave_pos %q: %w", st.Applied, err)
	}
	return g, stoppedOn, nil
}

// drain is the promotion's drain in replica mode: wait until the standby
// applied every GTID up to target, then end replication (STOP SLAVE; RESET
// SLAVE ALL).
func (m *replicaMode) drain(ctx context.Context, target relay.Frontier) (binlog.Position, error) {
	var rep *replica.Replica
	for rep == nil {
		if rep = m.replica(); rep == nil {
			select {
			case <-ctx.Done():
				return binlog.Position{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	frontier := target.Pos.GTID.String()
	if err := rep.Drain(ctx, frontier); err != nil {
		if errors.Is(err, replica.ErrSQLThread) {
			return binlog.Position{}, fmt.Errorf("%s: fix the standby or skip the transaction (hotstandby skip), then run `hotstandby promote` again", err)
		}
		return binlog.Position{}, err
	}
	applied, err := binlog.ParseGTIDSet(binlog.MariaDB, rep.Status().Applied)
	if err != nil {
		return binlog.Position{}, fmt.Errorf("replica mode: drained, but gtid_slave_pos: %w", err)
	}
	return binlog.Position{FilePos: target.Pos.FilePos, GTID: applied}, nil
}

// skip is the control op "skip" in replica mode: the replica skips exactly
// the transaction its SQL thread is stopped on, then the audit log records
// who asked and the error it replaced.
func (m *replicaMode) skip(ctx context.Context, p control.Peer, gtid string) (string, error) {
	rep := m.replica()
	if rep == nil {
		return "", errors.New("skip: the standby's replication has not started yet")
	}
	before := rep.Status().Error()
	if err := rep.Skip(ctx, gtid); err != nil {
		m.a.log.Warn("operator skip refused", "gtid", gtid, "by", p.String(), "err", err)
		return "", err
	}
	text := fmt.Sprintf("skip GTID %s by %s; standby SQL thread error: %s", gtid, p.String(), before)
	if err := m.a.store.AuditBy("skip", p.String(), text, time.Now()); err != nil {
		m.a.log.Error("audit log not written", "err", err, "entry", text)
	}
	m.a.log.Warn("operator skip done on the standby", "gtid", gtid, "by", p.String())
	return fmt.Sprintf("skipped %s: gtid_slave_pos moved past it and the standby's binlog carries it as an empty transaction; recorded in the audit log", gtid), nil
}

// report fills in the applier part of the status report from the replica.
func (m *replicaMode) report(rep *status.Report, recv ingest.Status) {
	ap := &status.ApplierReport{State: "connecting", Standby: m.a.cfg.Standby.Addr(), Mode: ModeReplica,
		ParallelThreads: m.a.cfg.Standby.ParallelThreads}
	rep.Applier = ap
	st, ok := m.status()
	if !ok {
		return
	}
	ap.ParallelThreads, ap.IOThread, ap.SQLThread, ap.Source = st.ParallelThreads, st.IORunning, st.SQLRunning, st.Source
	ap.LastIOError, ap.Warnings = st.LastIOError, st.Warnings
	ap.Errant = m.errant(st.BinlogState)
	switch st.State {
	case replica.StatePreflight:
		ap.State, ap.LastError = "error", strings.Join(st.Findings, "; ")
	case replica.StateError:
		ap.State, ap.LastError, ap.FailedGTID = "error", st.Error(), st.FailedGTID
	case replica.StateRunning:
		ap.State = "applying"
		if st.BehindTransactions == 0 {
			ap.State = "waiting"
		}
	case replica.StateDrained:
		ap.State = "stopped"
	default:
		ap.State, ap.LastError = st.State, st.LastError
	}
	if st.Applied != "" || st.State == replica.StateRunning {
		if g, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied); err == nil {
			applied := status.Pos(binlog.Position{GTID: g})
			rep.Applied = &applied
		}
	}
	ap.Transactions = appliedSinceStart(st)
	if n, ok := m.behind(st, recv.Received.GTID); ok {
		rep.Lag.AppliedTransactions = &n
	}
	if st.BehindSeconds >= 0 {
		s := st.BehindSeconds
		rep.Lag.AppliedSeconds = &s
	}
}

// behind counts the received transactions the standby has not applied, per
// GTID domain by sequence number, from lagBase: the master's history from
// before the relay log's start (start = "current" on a master with a
// history) is never served to the standby and is not lag, as
// applier.Status.Behind counts it in direct mode. false while unknown.
func (m *replicaMode) behind(st replica.Status, received binlog.GTIDSet) (int64, bool) {
	// gtid_slave_pos read once is known, empty or not, also while the
	// standby is down: it only grows, so the count from the last reading
	// is never less than the truth.
	if received.IsZero() || st.CheckedAt.IsZero() {
		return 0, false
	}
	applied, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err != nil {
		return 0, false
	}
	return m.lagBase(applied).SeqBehind(received)
}

// lagBase is, per GTID domain, the later of the standby's gtid_slave_pos and
// the relay's GTID state up to which the standby applied everything the
// relay holds (m.caughtUp, moved forward here by caughtUpTo).
func (m *replicaMode) lagBase(applied binlog.GTIDSet) binlog.GTIDSet {
	var g binlog.GTIDSet
	ok := false
	if srv := m.server(); srv != nil {
		g, ok = caughtUpTo(srv.Replicas(), m.a.recv.Durable(), applied)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.caughtUp = binlog.LatestPerDomain(m.caughtUp, g) // never back: two callers may race
	}
	return binlog.LatestPerDomain(applied, m.caughtUp)
}

// caughtUpTo returns the relay's GTID state at durable when the standby is
// known to have applied every transaction the relay holds up to there:
// the standby's binlog server has one replica (the standby), dumping in
// GTID mode, that has been sent everything durable up to durable's
// position (its dump is caught up and its last event ends there), and the
// standby's gtid_slave_pos (applied, read after srv's snapshot or before:
// it only grows) holds both the state it asked to start from and the last
// GTID of each domain sent on this connection. The dump sends every
// relay transaction after the asked state, so the standby then has all
// of them; the GTIDs of durable that it lacks are from before the relay
// log's start. false: not known now (the last answer stays valid).
func caughtUpTo(reps []binlogserver.Replica, durable relay.Frontier, applied binlog.GTIDSet) (binlog.GTIDSet, bool) {
	if durable.Pos.GTID.IsZero() {
		return binlog.GTIDSet{}, false
	}
	if durable.Segment == 0 {
		// The relay log holds nothing yet (a first start at the master's
		// current position, before its first event): every GTID received
		// is from before its start.
		return durable.Pos.GTID, true
	}
	if len(reps) != 1 {
		return binlog.GTIDSet{}, false
	}
	r := reps[0]
	if r.Mode != "gtid" || !r.CaughtUp || r.Sent != durable.Pos.FilePos {
		return binlog.GTIDSet{}, false
	}
	for _, text := range []string{r.Requested, r.SentGTID} {
		set, err := binlog.ParseGTIDSet(binlog.MariaDB, text)
		if err != nil {
			return binlog.GTIDSet{}, false
		}
		if ok, err := applied.Contains(set); err != nil || !ok {
			return binlog.GTIDSet{}, false
		}
	}
	return durable.Pos.GTID, true
}

// appliedSinceStart counts the transactions the standby applied since this
// run of the agent configured its replication: the GTID sequence numbers
// gtid_slave_pos advanced by from its value then, summed over domains (a
// domain new since then counts from 0). That is the number of transactions
// when the master numbers them without gaps, as it does unless a session sets
// gtid_seq_no; a transaction skipped with `hotstandby skip` counts (the
// standby commits it empty). nil while unknown (not configured yet).
func appliedSinceStart(st replica.Status) *uint64 {
	if !st.StartKnown {
		return nil
	}
	start, err1 := binlog.ParseGTIDSet(binlog.MariaDB, st.StartApplied)
	now, err2 := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
	if err1 != nil || err2 != nil {
		return nil
	}
	n, ok := start.SeqBehind(now)
	if !ok {
		return nil
	}
	u := uint64(n)
	return &u
}

// errant returns the GTIDs of the standby's gtid_binlog_state that are in
// no history the agent knows: neither in the master's gtid_binlog_state (as
// the monitor last read it) nor in the relay log's durable GTIDs; as the
// direct applier judges them. Unknown history: nil.
func (m *replicaMode) errant(binlogState string) []string {
	v := m.a.monitor.View()
	if !v.HistoryKnown || binlogState == "" {
		return nil
	}
	known := map[[2]uint32]uint64{}
	for _, g := range append(v.History, m.a.recv.Durable().Pos.GTID.MariaDBGTIDs()...) {
		k := [2]uint32{g.Domain, g.Server}
		known[k] = max(known[k], g.Seq)
	}
	var out []string
	for _, part := range strings.Split(binlogState, ",") {
		g, err := binlog.ParseGTID(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if have, ok := known[[2]uint32{g.Domain, g.Server}]; !ok || have < g.Seq {
			out = append(out, g.String())
		}
	}
	sort.Strings(out)
	return out
}

// registerMetrics adds replica mode's gauges.
func (m *replicaMode) registerMetrics(reg *prometheus.Registry, recv func() ingest.Status) {
	recvGTID := func() binlog.GTIDSet { return recv().Received.GTID }
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	st := func() replica.Status { s, _ := m.status(); return s }
	gauge("hotstandby_applier_up", "1 while the standby's replication threads run without an error (replica mode).", func() float64 {
		return b2f(st().State == replica.StateRunning)
	})
	gauge("hotstandby_replica_io_thread_running", "1 while the standby's IO thread runs (Slave_IO_Running Yes).", func() float64 { return b2f(st().IORunning == "Yes") })
	gauge("hotstandby_replica_sql_thread_running", "1 while the standby's SQL thread runs (Slave_SQL_Running Yes).", func() float64 { return b2f(st().SQLRunning == "Yes") })
	gauge("hotstandby_replica_sql_errno", "Last_SQL_Errno of the standby's SQL thread (0: none).", func() float64 { return float64(st().LastSQLErrno) })
	gauge("hotstandby_replica_parallel_threads", "slave_parallel_threads configured on the standby.", func() float64 { return float64(st().ParallelThreads) })
	gauge("hotstandby_replica_seconds_behind_master", "Seconds_Behind_Master of the standby (-1: NULL).", func() float64 { return float64(st().BehindSeconds) })
	gauge("hotstandby_apply_lag_transactions", "Transactions received by the agent and not yet in the standby's gtid_slave_pos (the master's history before the relay log's start is not lag).", func() float64 {
		n, ok := m.behind(st(), recvGTID())
		if !ok {
			return -1
		}
		return float64(n)
	})
}

// collectErrors: replica mode counts no apply or standby errors of its own
// (the standby's threads report theirs in status).
func (m *replicaMode) collectErrors(chan<- prometheus.Metric) {}
