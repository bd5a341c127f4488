package agent

import (
	"context"
	"os"
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
	segs, err := relay.ListSegments(a.cfg.RelayDir())
	if err != nil {
		a.log.Error("relay purge: list segments", "err", err)
		return
	}
	for i, s := range segs {
		if s.Seq >= keepFrom || i == len(segs)-1 {
			return // segments are ordered: the rest are needed
		}
		info, err := os.Stat(s.Path)
		if err != nil || now.Sub(info.ModTime()) < a.cfg.Relay.Retention.Duration {
			return
		}
		if err := os.Remove(s.Path); err != nil {
			a.log.Error("relay purge: remove segment", "segment", s.Path, "err", err)
			return
		}
		a.log.Info("relay segment purged: applied and past retention", "segment", s.Path, "bytes", s.Size)
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
