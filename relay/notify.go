package relay

import "sync/atomic"

// Notifier hands the durable frontier from the goroutine that makes it
// durable to any number of readers, and wakes them when it moves.
//
// Invariant: a move is never lost. Watch returns a frontier and the
// channel of that same publication in one atomic load; the channel is
// closed by the Publish that replaces it, and by nothing else. A reader
// that found nothing new to do at f and then waits on the channel is
// woken by every later Publish, including one that ran between its Watch
// and its wait (the channel is then already closed). The zero Notifier is
// ready: it holds the zero frontier.
type Notifier struct {
	cur atomic.Pointer[notice]
}

type notice struct {
	f     Frontier
	moved chan struct{} // closed when the next Publish replaces this notice
}

func (n *Notifier) load() *notice {
	if c := n.cur.Load(); c != nil {
		return c
	}
	fresh := &notice{moved: make(chan struct{})}
	if n.cur.CompareAndSwap(nil, fresh) {
		return fresh
	}
	return n.cur.Load()
}

// Publish records f as the durable frontier and wakes every reader waiting
// on an earlier Watch. It is called by one goroutine at a time (the relay
// writer's owner; concurrent calls are safe, each replaced notice is closed
// once); a publication of an unchanged frontier wakes nobody.
func (n *Notifier) Publish(f Frontier) {
	if c := n.load(); c.f.Segment == f.Segment && c.f.Offset == f.Offset && c.f.Pos.FilePos == f.Pos.FilePos {
		return
	}
	old := n.cur.Swap(&notice{f: f, moved: make(chan struct{})})
	close(old.moved)
}

// Watch returns the durable frontier and a channel closed when it moves
// past it. Safe from any goroutine; it takes no lock.
func (n *Notifier) Watch() (Frontier, <-chan struct{}) {
	c := n.load()
	return c.f, c.moved
}
