package relay

import (
	"sync"
	"testing"
	"time"
)

// TestNotifierCheckThenWait is the reader's race: it watches, finds
// nothing new, and only then waits. A Publish between the Watch and the
// wait must still wake it (the channel it holds is already closed).
func TestNotifierCheckThenWait(t *testing.T) {
	var n Notifier
	f, moved := n.Watch()
	if f.Segment != 0 || f.Offset != 0 {
		t.Fatalf("a fresh notifier holds %+v, want the zero frontier", f)
	}
	n.Publish(Frontier{Segment: 1, Offset: 100}) // after the check, before the wait
	select {
	case <-moved:
	default:
		t.Fatal("a Publish between Watch and the wait did not close the watched channel: the move is lost")
	}
	if f, _ := n.Watch(); f.Offset != 100 {
		t.Fatalf("after the move Watch says %+v, want offset 100", f)
	}
	// An unchanged frontier wakes nobody.
	_, moved = n.Watch()
	n.Publish(Frontier{Segment: 1, Offset: 100})
	select {
	case <-moved:
		t.Fatal("publishing the same frontier again woke the readers")
	default:
	}
}

// TestNotifierStress: one publisher moves the frontier through many
// small steps while readers each check then wait, as a caught-up dump
// does; every reader must see the last frontier (none is left waiting
// on a move it missed) and never see the frontier go backwards.
func TestNotifierStress(t *testing.T) {
	const steps, readers = 20000, 8
	var n Notifier
	var wg sync.WaitGroup
	errs := make(chan string, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last int64
			for {
				f, moved := n.Watch()
				if f.Offset < last {
					errs <- "the frontier went backwards"
					return
				}
				last = f.Offset
				if f.Offset == steps {
					return
				}
				select {
				case <-moved:
				case <-time.After(time.Minute):
					errs <- "a reader waited a minute on a channel no Publish closed: a move was lost"
					return
				}
			}
		}()
	}
	for i := int64(1); i <= steps; i++ {
		n.Publish(Frontier{Segment: 1, Offset: i})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

// TestNotifierConcurrentPublish: publishers racing must not close a
// channel twice (a panic) and must wake the waiters.
func TestNotifierConcurrentPublish(t *testing.T) {
	var n Notifier
	_, moved := n.Watch()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				n.Publish(Frontier{Segment: uint64(p + 1), Offset: int64(i + 1)})
			}
		}()
	}
	wg.Wait()
	<-moved
}
