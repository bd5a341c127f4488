package agent

import (
	"context"
	"time"

	"github.com/hotstandby/hotstandby/relay"
)

// purgeRelay deletes relay segments that nothing can need any more: closed,
// every transaction in them applied on the standby, before the segment the
// checkpointed received frontier points into (where recovery starts), and
// unchanged for the retention period. It runs only with an applier.
func (a *Agent) purgeRelay(now time.Time) {
	applied := a.applier.Status().Frontier
	st, err := a.store.Load()
	if err != nil || applied.Segment == 0 || st.Received.Segment == 0 {
		return
	}
	keepFrom := min(applied.Segment, st.Received.Segment, st.Applied.Segment)
	if st.Applied.Segment == 0 {
		keepFrom = min(applied.Segment, st.Received.Segment)
	}
	if need, ok := a.serveKeepFrom(); ok {
		keepFrom = min(keepFrom, need) // a downstream replica still reads it
	}
	purged, err := relay.Purge(a.cfg.RelayDir(), keepFrom, now.Add(-a.cfg.Relay.Retention.Duration))
	for _, s := range purged {
		a.log.Info("relay segment purged: applied and past retention", "segment", s.Path, "bytes", s.Size)
	}
	if err != nil {
		a.log.Error("relay purge", "err", err)
	}
}

// purgeLoop runs purgeRelay every interval until ctx ends.
func (a *Agent) purgeLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.purgeRelay(time.Now())
		case <-ctx.Done():
			return
		}
	}
}
