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
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
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
}

// replicaMode is the agent's part in replica mode: the binlog server and the
// replica that controls the standby. rep is set by start.
type replicaMode struct {
	a *Agent

	mu  sync.Mutex // mu guards the fields below
	rep *replica.Replica
	srv relayServer
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
// are not errors. done is closed when both have ended.
func (m *replicaMode) start(ctx context.Context, wg *sync.WaitGroup, done chan struct{}) error {
	a := m.a
	if role, err := a.store.LoadRole(); err != nil {
		return err
	} else if role.Role == checkpoint.RolePromoting && checkpoint.Drained(role.Step) {
		// The drain is done: the standby is no replica any more (or is
		// being made writable); configuring it again would undo that.
		a.log.Info("the interrupted promotion is past its drain: the standby's replication is not configured again", "step", role.Step)
		close(done)
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
	cfg.Source = replica.Source{Host: host, Port: port, User: user, Password: password, HeartbeatPeriod: a.cfg.Master.Heartbeat.Duration}
	cfg.ParallelThreads = a.cfg.Standby.ParallelThreads
	cfg.MasterServerID = func() uint32 { return a.recv.Status().Identity.ServerID }
	cfg.Logger = a.log
	rep, err := replica.New(cfg)
	if err != nil {
		srv.Close()
		return err
	}
	m.mu.Lock()
	m.rep, m.srv = rep, srv
	m.mu.Unlock()
	a.log.Info("apply mode replica: the standby replicates from the agent's binlog server", "listen", srv.Addr(),
		"standby", a.cfg.Standby.Addr(), "parallel_threads", cfg.ParallelThreads)
	var both sync.WaitGroup
	both.Add(4)
	go func() { defer both.Done(); m.mirrorApplied(ctx, time.Second) }()
	go func() {
		defer both.Done()
		t := time.NewTicker(purgeEvery(a.cfg.Relay.Retention.Duration))
		defer t.Stop()
		cache := map[uint64]binlog.GTIDSet{}
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				m.purge(now, cache)
			}
		}
	}()
	wg.Add(1)
	go func() { defer wg.Done(); both.Wait(); close(done) }()
	go func() {
		defer both.Done()
		if err := srv.Serve(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("binlog server stopped", "err", err)
		}
	}()
	go func() {
		defer both.Done()
		err := rep.Run(ctx)
		if errors.Is(err, replica.ErrDrained) {
			<-ctx.Done() // the server keeps serving other replicas until the end
		}
		srv.Close()
	}()
	return nil
}

// mirrorApplied copies the standby's gtid_slave_pos, the applied frontier
// of replica mode, into the checkpoint store's applied record every period
// and once more when ctx ends, as direct mode mirrors its frontier: the
// status of a stopped daemon (and its --check) reads it there. Only the GTID
// set is known in this mode (the standby's own threads read the relay log,
// through the binlog server), so the record names no relay segment and no
// file position.
func (m *replicaMode) mirrorApplied(ctx context.Context, period time.Duration) {
	var last string
	save := func() {
		st, ok := m.status()
		if !ok || st.Applied == "" || st.Applied == last {
			return
		}
		g, err := binlog.ParseGTIDSet(binlog.MariaDB, st.Applied)
		if err != nil {
			m.a.log.Error("applied frontier not saved: the standby's gtid_slave_pos", "gtid_slave_pos", st.Applied, "err", err)
			last = st.Applied
			return
		}
		if err := m.a.store.SaveApplied(relay.Frontier{Pos: binlog.Position{GTID: g}}, time.Now()); err != nil {
			m.a.log.Error("applied frontier not saved", "err", err)
			return
		}
		last = st.Applied
	}
	everyUntilDone(ctx, period, save)
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
func (m *replicaMode) report(rep *status.Report) {
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
	if st.BehindSeconds >= 0 {
		s := st.BehindSeconds
		rep.Lag.AppliedSeconds = &s
	}
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
func (m *replicaMode) registerMetrics(reg *prometheus.Registry, recvGTID func() binlog.GTIDSet) {
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
	gauge("hotstandby_apply_lag_transactions", "Transactions received by the agent and not yet in the standby's gtid_slave_pos.", func() float64 {
		g, err := binlog.ParseGTIDSet(binlog.MariaDB, st().Applied)
		if err != nil {
			return -1
		}
		n, ok := g.SeqBehind(recvGTID())
		if !ok {
			return -1
		}
		return float64(n)
	})
}
