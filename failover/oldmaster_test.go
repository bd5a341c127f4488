package failover

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// watchRun is an OldMasterWatch under test with its Run goroutine and the
// events it reported.
type watchRun struct {
	w      *OldMasterWatch
	mu     sync.Mutex
	events []OldMasterEvent
	cancel context.CancelFunc
	done   chan struct{}
}

func startWatch(t *testing.T, w *OldMasterWatch) *watchRun {
	t.Helper()
	r := &watchRun{w: w, done: make(chan struct{})}
	log, lb := fenceLogger()
	w.Log = log
	w.OnEvent = func(ev OldMasterEvent) {
		r.mu.Lock()
		r.events = append(r.events, ev)
		r.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); w.Run(ctx) }()
	t.Cleanup(func() {
		r.stop(t)
		if t.Failed() {
			t.Logf("watch log:\n%s", lb.String())
		}
	})
	return r
}

func (r *watchRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the watch did not return after its context ended")
	}
}

func (r *watchRun) eventsNow() []OldMasterEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]OldMasterEvent(nil), r.events...)
}

// waitEvents waits until the watch reported n events.
func (r *watchRun) waitEvents(t *testing.T, n int) []OldMasterEvent {
	t.Helper()
	waitFor(t, "watch events", func() bool { return len(r.eventsNow()) >= n })
	return r.eventsNow()
}

// TestOldMasterWatchLeavesOthersAlone: the watch touches neither a server
// with another server_id on the address (a VIP moved to the new master),
// nor an old master that is up and read-only when the watch starts (a
// switchover's), nor anything while paused (a rejoin at work); it ends
// when Done says so.
func TestOldMasterWatchLeavesOthersAlone(t *testing.T) {
	s := fenceServer(t)
	ctx := context.Background()
	app, _ := fenceClientConn(t, s, "app", appPassword)
	alive := func(what string) {
		t.Helper()
		if _, err := app.ExecContext(ctx, "SELECT 1"); err != nil {
			t.Fatalf("%s: the client's connection was killed: %v", what, err)
		}
	}
	readOnly := func() string {
		t.Helper()
		ro, err := s.QueryString(ctx, "SELECT @@global.read_only")
		if err != nil {
			t.Fatal(err)
		}
		return ro
	}
	dsn := fenceDSN(s.Addr(), "fencer", fencerPassword)
	outer := t

	t.Run("another server_id", func(t *testing.T) {
		r := startWatch(t, &OldMasterWatch{DSN: dsn, ServerID: 7})
		waitFor(t, "the watch to see another server", func() bool {
			return r.w.View().State == "up, not the old master (server_id 1)"
		})
		if ro := readOnly(); ro != "0" {
			t.Fatalf("read_only=%s on a server that is not the old master", ro)
		}
		alive("another server_id")
		if ev := r.eventsNow(); len(ev) > 0 {
			t.Fatalf("events %+v", ev)
		}
	})
	t.Run("paused, then done", func(t *testing.T) {
		var paused, done atomic.Bool
		var calls atomic.Int64
		paused.Store(true)
		w := &OldMasterWatch{DSN: dsn, ServerID: 1, UpInterval: time.Millisecond,
			Paused: func() bool { calls.Add(1); return paused.Load() },
			Done:   func() (bool, string) { return done.Load(), "the old master rejoined (test)" }}
		r := startWatch(t, w)
		waitFor(t, "50 rounds paused", func() bool { return calls.Load() >= 50 })
		if ro := readOnly(); ro != "0" {
			t.Fatalf("read_only=%s while paused", ro)
		}
		alive("paused")
		done.Store(true)
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return when Done said so")
		}
		if st := w.View().State; st != "stopped: the old master rejoined (test)" {
			t.Fatalf("state %q", st)
		}
		if ev := r.eventsNow(); len(ev) > 0 {
			t.Fatalf("events %+v", ev)
		}
	})
	t.Run("up and read-only at the start", func(t *testing.T) {
		if err := s.Exec(ctx, "SET GLOBAL read_only = ON"); err != nil {
			t.Fatal(err)
		}
		r := startWatch(t, &OldMasterWatch{DSN: dsn, ServerID: 1, UpInterval: time.Millisecond})
		waitFor(t, "the watch to look", func() bool { return r.w.View().State == "up, read-only" })
		alive("read-only at the start")
		if ev := r.eventsNow(); len(ev) > 0 {
			t.Fatalf("events %+v", ev)
		}
		r.stop(t) // before read_only goes OFF: a running watch would fence it
		if err := s.Exec(ctx, "SET GLOBAL read_only = OFF"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("locked by a rejoin: no fence until it ends", func(t *testing.T) {
		var held atomic.Bool
		var tries atomic.Int64
		held.Store(true)
		r := startWatch(t, &OldMasterWatch{DSN: dsn, ServerID: 1, UpInterval: time.Millisecond,
			Lock: func() (func(), bool) { tries.Add(1); return func() {}, !held.Load() }})
		// read_only OFF until the watch wants to fence (a query a
		// stopped watch left in flight may still set it ON).
		waitFor(t, "the watch to want the lock", func() bool {
			if tries.Load() == 0 {
				if err := s.Exec(ctx, "SET GLOBAL read_only = OFF"); err != nil {
					t.Fatal(err)
				}
			}
			return tries.Load() > 0
		})
		waitFor(t, "20 tries of the lock", func() bool { return tries.Load() >= 20 })
		alive("locked")
		if ev := r.eventsNow(); len(ev) > 0 {
			t.Fatalf("events %+v while locked", ev)
		}
		held.Store(false)
		if ev := r.waitEvents(t, 1)[0]; !ev.Fence.Fenced() || !ev.WasWritable {
			t.Fatalf("event %+v: want fenced once the lock is free", ev)
		}
		r.stop(t)
		if err := s.Exec(ctx, "SET GLOBAL read_only = OFF"); err != nil {
			t.Fatal(err)
		}
		app, _ = fenceClientConn(outer, s, "app", appPassword) // the fence killed the last one
	})
}

// TestOldMasterWatchFences: an old master found writable is fenced (its
// clients killed, read_only verified); made writable again, it is fenced
// again; restarted with read_only=OFF in its option file, it is fenced on
// its return; a fence that fails (a user without the privileges) is
// reported, not fenced, and tried again later.
func TestOldMasterWatchFences(t *testing.T) {
	s := fenceServer(t)
	ctx := context.Background()
	dsn := fenceDSN(s.Addr(), "fencer", fencerPassword)
	r := startWatch(t, &OldMasterWatch{DSN: dsn, ServerID: 1})
	readOnly := func() string {
		t.Helper()
		ro, err := s.QueryString(ctx, "SELECT @@global.read_only")
		if err != nil {
			t.Fatal(err)
		}
		return ro
	}

	// Found writable while up.
	app, _ := fenceClientConn(t, s, "app", appPassword)
	ev := r.waitEvents(t, 1)[0]
	if ev.Returned || !ev.WasWritable || !ev.Fence.Fenced() || ev.Fence.Killed < 1 {
		t.Fatalf("event %+v: want a writable old master fenced with its client killed", ev)
	}
	if ro := readOnly(); ro != "1" {
		t.Fatalf("read_only=%s after the fence", ro)
	}
	if _, err := app.ExecContext(ctx, "SELECT 1"); err == nil {
		t.Fatal("the client's connection survived the fence")
	}
	if sum := ev.Summary(); !strings.Contains(sum, "found writable: fenced, read_only=ON set ") || !strings.Contains(sum, "; fence "+s.Addr()+": read_only=ON") {
		t.Errorf("summary %q", ev.Summary())
	}

	// Made writable again by someone: fenced again.
	if err := s.Exec(ctx, "SET GLOBAL read_only = OFF"); err != nil {
		t.Fatal(err)
	}
	ev = r.waitEvents(t, 2)[1]
	if ev.Returned || !ev.WasWritable || !ev.Fence.Fenced() {
		t.Fatalf("event %+v: want fenced again", ev)
	}

	// A restart: the option file has no read_only.
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	ev = r.waitEvents(t, 3)[2]
	if !ev.Returned || !ev.WasWritable || !ev.Fence.Fenced() || ev.DownFor <= 0 {
		t.Fatalf("event %+v: want the return of a writable old master, fenced", ev)
	}
	if ro := readOnly(); ro != "1" {
		t.Fatalf("read_only=%s after the return", ro)
	}
	if !strings.Contains(ev.Summary(), "answered again after ") || !strings.Contains(ev.Summary(), "writable (read_only=OFF): fenced") {
		t.Errorf("summary %q", ev.Summary())
	}
	r.stop(t)

	// A fence user without the privileges: reported, retried, never
	// "fenced", and it kills nothing (not even its own user's other
	// connections, which is all it could see).
	if err := s.Exec(ctx, "SET GLOBAL read_only = OFF"); err != nil {
		t.Fatal(err)
	}
	sameUser, _ := fenceClientConn(t, s, "app", appPassword)
	var looks atomic.Int64
	r2 := startWatch(t, &OldMasterWatch{DSN: fenceDSN(s.Addr(), "app", appPassword), ServerID: 1, Retry: time.Millisecond,
		UpInterval: time.Millisecond, Paused: func() bool { looks.Add(1); return false }})
	ev = r2.waitEvents(t, 1)[0]
	if ev.Fence.Fenced() || ev.Attempt != 1 || !strings.Contains(ev.Summary(), "NOT FENCED: not tried: the fence user lacks READ_ONLY ADMIN, PROCESS, CONNECTION ADMIN: nothing killed") {
		t.Fatalf("event %+v (%s): want a fence not tried", ev, ev.Summary())
	}
	// Not tried again while up (only at its next return).
	n := looks.Load()
	waitFor(t, "50 more looks", func() bool { return looks.Load() >= n+50 })
	if evs := r2.eventsNow(); len(evs) != 1 {
		t.Fatalf("%d events: want the one, not retried while up", len(evs))
	}
	if ro := readOnly(); ro != "0" {
		t.Fatalf("read_only=%s: the user cannot set it", ro)
	}
	if st := r2.w.View().State; !strings.HasPrefix(st, "up, NOT FENCED: ") {
		t.Fatalf("state %q", st)
	}
	if _, err := sameUser.ExecContext(ctx, "SELECT 1"); err != nil {
		t.Fatalf("a failed fence killed a connection: %v", err)
	}
}

// TestOldMasterWatchTableLock: a client of the returning old master holds
// LOCK TABLES ... WRITE, which SET GLOBAL read_only waits for: the watch's
// first statement gives up after its lock wait, and the fence kills the
// client and sets read_only.
func TestOldMasterWatchTableLock(t *testing.T) {
	s := fenceServer(t)
	ctx := context.Background()
	lockConn, lockID := fenceClientConn(t, s, "admin", adminPassword)
	if _, err := lockConn.ExecContext(ctx, "LOCK TABLES fence.t WRITE"); err != nil {
		t.Fatal(err)
	}
	r := startWatch(t, &OldMasterWatch{DSN: fenceDSN(s.Addr(), "fencer", fencerPassword), ServerID: 1, Timeout: 5 * time.Second})
	ev := r.waitEvents(t, 1)[0]
	if !ev.Fence.Fenced() || !ev.WasWritable || !slices.Contains(ev.Fence.KilledIDs, lockID) {
		t.Fatalf("event %+v (%s): want fenced with the lock holder %d killed", ev, ev.Summary(), lockID)
	}
	if ro, _ := s.QueryString(ctx, "SELECT @@global.read_only"); ro != "1" {
		t.Fatalf("read_only=%s", ro)
	}
}
