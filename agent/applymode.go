package agent

import (
	"context"
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/status"
)

// applyMode is how the standby applies the relay log: [standby] mode. The
// agent picks one implementation in newAgent (directMode, replicaMode, or
// noMode without a [standby] section) and holds it for its lifetime;
// nothing else in the agent asks which mode it runs in.
//
// Every method may be called from any goroutine, before start as well as
// after the mode has ended (status, metrics and the control socket run
// while the daemon starts and stops): before start a mode reports itself
// as connecting and refuses what needs the standby.
type applyMode interface {
	// start runs the mode's goroutines (added to wg) until ctx ends or
	// drain stops them for good. fatal is called, at most once, when the
	// mode cannot run at all (its configuration): the daemon then stops
	// with that reason.
	start(ctx context.Context, wg *sync.WaitGroup, fatal func(error))
	// report fills in the report's applier part: rep.Applier, rep.Applied
	// and rep.Lag.AppliedSeconds where the mode knows them. rep.Received
	// is already set; recv is the receiver's status it came from.
	report(rep *status.Report, recv ingest.Status)
	// frontier is the standby's applied frontier to mirror into the
	// checkpoint store; false while unknown.
	frontier() (relay.Frontier, bool)
	// applied is the standby's applied GTID set, for a switchover's wait;
	// stoppedOn is the error the standby's apply is stopped on ("" when it
	// applies or waits).
	applied() (gtids binlog.GTIDSet, stoppedOn string, err error)
	// drain is a promotion's drain: it waits until the standby applied
	// everything up to target, then stops applying for good and returns
	// the standby's applied position. It fails, changing nothing, while the
	// standby's apply is stopped on an error.
	drain(ctx context.Context, target relay.Frontier) (binlog.Position, error)
	// stop ends the mode's apply for good, caught up or not, and returns
	// once it has ended (at once if it never started): a promotion's
	// MakeWritable calls it, since the direct applier's session sets
	// read_only=ON and replica mode would configure replication again.
	stop(ctx context.Context) error
	// skip is the control op "skip": the standby skips exactly the
	// transaction gtid its apply is stopped on; the audit log records it.
	// One skip runs at a time (the caller holds skipRegistry.serial).
	skip(ctx context.Context, p control.Peer, gtid string) (string, error)
	// purgeHorizon is the first relay segment the standby may still need,
	// given the checkpointed state; false: nothing may be purged now.
	purgeHorizon(stored checkpoint.State) (purgeHorizon, bool)
	// registerMetrics adds the mode's gauges and counters; collectErrors
	// adds its kinds to hotstandby_errors_total.
	registerMetrics(reg *prometheus.Registry, recv func() ingest.Status)
	collectErrors(ch chan<- prometheus.Metric)
}

// purgeHorizon is where relay purge stops: segments before keepFrom (and
// past retention) may go. why says in the log line why they could.
type purgeHorizon struct {
	keepFrom uint64
	why      string
}

// newApplyMode picks the apply mode the configuration asks for, once.
func newApplyMode(a *Agent) (applyMode, error) {
	switch {
	case !a.cfg.Standby.Enabled():
		return noMode{}, nil
	case a.cfg.ApplyMode() == ModeReplica:
		return &replicaMode{a: a}, nil
	default:
		return newDirectMode(a)
	}
}

var (
	_ applyMode = (*directMode)(nil)
	_ applyMode = (*replicaMode)(nil)
	_ applyMode = noMode{}
)

// errNoStandby is what the operations that need a standby answer without a
// [standby] section.
var errNoStandby = errors.New("no standby: the agent has no [standby] section")

// noMode is the apply mode of an agent without a [standby] section: it
// streams, acknowledges and serves, and applies nowhere. It reports no
// applier, keeps every relay segment (as before: purge needs an applied
// frontier) and refuses skip and drain.
type noMode struct{}

func (noMode) start(context.Context, *sync.WaitGroup, func(error)) {}
func (noMode) report(*status.Report, ingest.Status)                {}
func (noMode) frontier() (relay.Frontier, bool)                    { return relay.Frontier{}, false }
func (noMode) applied() (binlog.GTIDSet, string, error) {
	return binlog.GTIDSet{}, "", errNoStandby
}
func (noMode) drain(context.Context, relay.Frontier) (binlog.Position, error) {
	return binlog.Position{}, errNoStandby
}
func (noMode) stop(context.Context) error { return nil }
func (noMode) skip(context.Context, control.Peer, string) (string, error) {
	return "", errors.New("skip: no applier: the agent has no [standby] section")
}
func (noMode) purgeHorizon(checkpoint.State) (purgeHorizon, bool)         { return purgeHorizon{}, false }
func (noMode) registerMetrics(*prometheus.Registry, func() ingest.Status) {}
func (noMode) collectErrors(chan<- prometheus.Metric)                     {}
