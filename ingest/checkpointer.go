package ingest

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// checkpointer writes the durable frontiers to the checkpoint store on its
// own goroutine, so that bbolt's two fdatasyncs per commit never sit between
// the relay's fsync and the semi-sync ACK. The writer offers the newest
// frontier; an older one still waiting is replaced.
type checkpointer struct {
	store  *checkpoint.Store
	log    *slog.Logger
	now    func() time.Time
	notify chan struct{}

	mu      sync.Mutex // mu guards the fields below
	pending *checkpointItem
}

type checkpointItem struct {
	received relay.Frontier
	acked    binlog.FilePos
}

func newCheckpointer(store *checkpoint.Store, log *slog.Logger, now func() time.Time) *checkpointer {
	return &checkpointer{store: store, log: log, now: now, notify: make(chan struct{}, 1)}
}

// offer hands over the newest frontiers; it never blocks.
func (c *checkpointer) offer(received relay.Frontier, acked binlog.FilePos) {
	c.mu.Lock()
	c.pending = &checkpointItem{received: received, acked: acked}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// run saves offered frontiers until ctx ends, then saves the last one.
func (c *checkpointer) run(ctx context.Context) {
	for {
		select {
		case <-c.notify:
			c.flush()
		case <-ctx.Done():
			c.flush()
			return
		}
	}
}

// flush saves the pending frontiers, if any.
func (c *checkpointer) flush() {
	c.mu.Lock()
	item := c.pending
	c.pending = nil
	c.mu.Unlock()
	if item == nil || item.received.Pos.FilePos.IsZero() {
		return
	}
	if err := c.store.SaveFrontiers(item.received, item.acked, c.now()); err != nil {
		c.log.Error("checkpoint not saved", "err", err)
	}
}
