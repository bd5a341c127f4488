package ingest

import (
	"context"
	"sync"
)

// item is one event in a batch: its bytes live in the batch's arena.
type item struct {
	off, n    int
	ackWanted bool
}

// batch is what the reader handed over since the writer last looked.
type batch struct {
	items []item
	arena []byte
	err   error // the reader stopped with this error after the items
}

func (b *batch) event(i int) []byte { return b.arena[b.items[i].off : b.items[i].off+b.items[i].n] }

// queue moves events from the stream reader to the relay writer in batches.
// The reader copies each event into an arena once; the writer swaps the whole
// batch out under the lock, so the per-event cost is one copy and one
// uncontended lock. It bounds the bytes in flight: a slow disk slows the
// reader, which slows the master's dump thread, never the agent's memory.
type queue struct {
	limit  int
	notify chan struct{} // a batch is waiting (capacity 1)
	space  chan struct{} // the writer took a batch (capacity 1)

	mu    sync.Mutex // mu guards the fields below
	cur   batch
	spare batch
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, notify: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// push copies ev into the queue, waiting while the queue is full.
func (q *queue) push(ctx context.Context, ev []byte, ackWanted bool) error {
	q.mu.Lock()
	for len(q.cur.arena) >= q.limit {
		q.mu.Unlock()
		select {
		case <-q.space:
		case <-ctx.Done():
			return ctx.Err()
		}
		q.mu.Lock()
	}
	off := len(q.cur.arena)
	q.cur.arena = append(q.cur.arena, ev...)
	q.cur.items = append(q.cur.items, item{off: off, n: len(ev), ackWanted: ackWanted})
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return nil
}

// fail records the reader's final error.
func (q *queue) fail(err error) {
	q.mu.Lock()
	q.cur.err = err
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// take waits for a batch and returns it. The batch is valid until the next
// take.
func (q *queue) take(ctx context.Context) (*batch, error) {
	for {
		q.mu.Lock()
		if len(q.cur.items) > 0 || q.cur.err != nil {
			q.cur, q.spare = q.spare, q.cur
			q.cur.items, q.cur.arena, q.cur.err = q.cur.items[:0], q.cur.arena[:0], nil
			q.mu.Unlock()
			select {
			case q.space <- struct{}{}:
			default:
			}
			return &q.spare, nil
		}
		q.mu.Unlock()
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
