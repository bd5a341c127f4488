package agent

import (
	"context"
	"time"

	"github.com/hotstandby/hotstandby/relay"
)

// purgeRelay deletes relay segments that nothing can need any more: closed,
// before the apply mode's horizon (every transaction in them applied on the
// standby), before the segment the checkpointed received frontier points
// into (where recovery starts), before what a downstream replica of [serve]
// reads, and unchanged for the retention period. Without a horizon (no
// standby, or its applied frontier unknown yet) nothing is purged.
func (a *Agent) purgeRelay(now time.Time) {
	st, err := a.store.Load()
	if err != nil || st.Received.Segment == 0 {
		return
	}
	h, ok := a.mode.purgeHorizon(st)
	if !ok {
		return
	}
	keepFrom := min(h.keepFrom, st.Received.Segment)
	if need, ok := a.serveKeepFrom(); ok {
		keepFrom = min(keepFrom, need) // a downstream replica still reads it
	}
	purged, err := relay.Purge(a.cfg.RelayDir(), keepFrom, now.Add(-a.cfg.Relay.Retention.Duration))
	for _, s := range purged {
		a.log.Info("relay segment purged: "+h.why, "segment", s.Path, "bytes", s.Size)
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
