package agent

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/status"
)

// directMode is apply mode direct: the agent's own session applies the
// relay log to the standby (package applier).
type directMode struct {
	a  *Agent
	ap *applier.Applier

	stopOnce sync.Once
	stopped  chan struct{} // closed by drain or stop: the applier stops for good
	done     chan struct{} // closed once the applier's Run has returned
	started  atomic.Bool   // start ran (done will be closed)
}

func newDirectMode(a *Agent) (*directMode, error) {
	st, err := a.store.Load()
	if err != nil {
		return nil, err
	}
	m := &directMode{a: a, stopped: make(chan struct{}), done: make(chan struct{})}
	m.ap = applier.New(applier.Config{
		DSN: a.cfg.StandbyDSN(), RelayDir: a.cfg.RelayDir(), Start: st.Applied, Logger: a.log,
		MasterServerID: func() uint32 { return a.recv.Status().Identity.ServerID },
		MasterHistory: func() ([]binlog.GTID, bool) {
			v := a.monitor.View()
			return v.History, v.HistoryKnown
		},
		Skipped: a.skipCommitted,
	}, a.recv)
	return m, nil
}

func (m *directMode) start(ctx context.Context, wg *sync.WaitGroup, fatal func(error)) {
	ctx, cancel := context.WithCancel(ctx)
	m.started.Store(true)
	wg.Add(2)
	go func() {
		defer wg.Done()
		select {
		case <-m.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	go func() {
		defer wg.Done()
		defer close(m.done)
		defer cancel()
		if err := m.ap.Run(ctx); err != nil {
			// The applier cannot run at all (its configuration): the
			// daemon stops with the reason rather than stream on with a
			// standby that is silently never written.
			fatal(err)
		}
	}()
}

func (m *directMode) report(rep *status.Report, recv ingest.Status) {
	as := m.ap.Status()
	applied := status.Pos(as.Applied)
	rep.Applied = &applied
	if n, ok := as.Behind(recv.Received.GTID); ok { // not the master's history before the relay log's start
		rep.Lag.AppliedTransactions = &n
	}
	rep.Applier = &status.ApplierReport{State: as.State, Standby: m.a.cfg.Standby.Addr(), Transactions: &as.Transactions,
		LastAppliedAt: status.TimePtr(as.AppliedAt), LastError: as.LastError, FailedGTID: as.FailedGTID, Errant: as.Errant, Warnings: as.Warnings}
	if n, ok := rep.ApplyLagTransactions(); ok && n != 0 && as.AppliedEventTS != 0 && recv.LastEventTS >= as.AppliedEventTS {
		d := int64(recv.LastEventTS - as.AppliedEventTS)
		rep.Lag.AppliedSeconds = &d
	}
}

func (m *directMode) frontier() (relay.Frontier, bool) {
	f := m.ap.Status().Frontier
	return f, !f.Pos.FilePos.IsZero()
}

func (m *directMode) applied() (binlog.GTIDSet, string, error) {
	st := m.ap.Status()
	if st.State == applier.StateError {
		return st.Applied.GTID, st.LastError, nil
	}
	return st.Applied.GTID, "", nil
}

// drain waits until the applier caught up with target, then stops it for
// good.
func (m *directMode) drain(ctx context.Context, target relay.Frontier) (binlog.Position, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		st := m.ap.Status()
		if st.State == applier.StateError {
			return binlog.Position{}, fmt.Errorf("the applier is stopped on an error: %s: fix the standby or skip the transaction (hotstandby skip), then run `hotstandby promote` again", st.LastError)
		}
		if atLeast(st.CaughtUp, target) {
			break
		}
		select {
		case <-ctx.Done():
			return binlog.Position{}, ctx.Err()
		case <-t.C:
		}
	}
	if err := m.stop(ctx); err != nil {
		return binlog.Position{}, err
	}
	return m.ap.Status().Applied, nil
}

func (m *directMode) stop(ctx context.Context) error {
	m.stopOnce.Do(func() { close(m.stopped) })
	if !m.started.Load() {
		return nil
	}
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// atLeast reports whether a is at or past b in the relay log.
func atLeast(a, b relay.Frontier) bool {
	return a.Segment > b.Segment || (a.Segment == b.Segment && a.Offset >= b.Offset)
}

// skip asks the applier to skip gtid and answers once the standby has
// committed the empty transaction that replaces it (skipCommitted), or once
// ctx ends.
func (m *directMode) skip(ctx context.Context, p control.Peer, gtid string) (string, error) {
	a := m.a
	r := &skipRequest{by: p, applierErr: m.ap.Status().LastError, done: make(chan struct{})}
	a.skips.put(gtid, r)
	if err := m.ap.Skip(gtid); err != nil {
		a.skips.take(gtid)
		return "", err
	}
	a.log.Warn("operator skip accepted", "gtid", gtid, "by", p.String())
	select {
	case <-r.done:
		return fmt.Sprintf("skipped %s: the standby committed an empty transaction with that GTID; recorded in the audit log", gtid), nil
	case <-ctx.Done():
		return fmt.Sprintf("skip of %s accepted, but the standby has not committed it yet (is it reachable?): the audit log records it when it does; if the applier stops on %s again, skip it again", gtid, gtid), nil
	}
}

// purgeHorizon: every segment before the applier's frontier is applied;
// the frontier last mirrored to the checkpoint store is where the next
// start resumes, so it is kept too.
func (m *directMode) purgeHorizon(stored checkpoint.State) (purgeHorizon, bool) {
	applied := m.ap.Status().Frontier
	if applied.Segment == 0 {
		return purgeHorizon{}, false
	}
	keepFrom := min(applied.Segment, stored.Received.Segment)
	if stored.Applied.Segment != 0 {
		keepFrom = min(keepFrom, stored.Applied.Segment)
	}
	return purgeHorizon{keepFrom: keepFrom, why: "applied and past retention"}, true
}

func (m *directMode) registerMetrics(reg *prometheus.Registry, recv func() ingest.Status) {
	counter := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	st := m.ap.Status
	registerPositionGauges(reg, "applied", func() (string, uint64) { p := st().Applied; return p.File, p.Pos })
	counter("hotstandby_applied_transactions_total", "Transactions committed on the standby by the applier.", func() float64 { return float64(st().Transactions) })
	gauge("hotstandby_applier_up", "1 while the applier applies or waits for events; 0 when stopped, on an error or retrying.", func() float64 {
		s := st().State
		return b2f(s == "applying" || s == "waiting")
	})
	gauge("hotstandby_apply_lag_transactions", "Transactions received but not yet applied (by GTID sequence, per domain); NaN when unknown.", func() float64 {
		received := recv().Received.GTID
		if lag, ok := st().Behind(received); ok && !received.IsZero() {
			return float64(lag)
		}
		return math.NaN()
	})
	gauge("hotstandby_errant_transactions", "GTIDs on the standby written by a server other than the master.", func() float64 { return float64(len(st().Errant)) })
}

func (m *directMode) collectErrors(ch chan<- prometheus.Metric) {
	as := m.ap.Status()
	ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(as.Errors), "apply")
	ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(as.Retries), "standby")
}
