package binlogserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
)

// follower is a go-mysql BinlogSyncer client that records the end of the
// last transaction it received.
type follower struct {
	mu   sync.Mutex // mu guards the fields below
	last binlog.FilePos
	seen int // Xid events received
	err  error
}

func (fl *follower) at() (binlog.FilePos, int, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.last, fl.seen, fl.err
}

// follow starts a client of the fixture's server from file:4 whose
// heartbeat period is an hour: between frontier moves it gets nothing, so
// only a wake-up of its dump moves it (a lost wake-up is not hidden by the
// next heartbeat).
func (f *relayFixture) follow(t *testing.T, id uint32, semi bool) *follower {
	t.Helper()
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: id, Flavor: mysql.MariaDBFlavor, Host: "127.0.0.1", Port: uint16(f.port()),
		User: "downstream", Password: f.pw, SemiSyncEnabled: semi, HeartbeatPeriod: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxReconnectAttempts: 1, DisableRetrySync: true,
	})
	st, err := s.StartSync(mysql.Position{Name: f.files[0], Pos: 4})
	if err != nil {
		s.Close()
		t.Fatalf("BinlogSyncer %d: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl := &follower{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		file := f.files[0]
		for {
			ev, err := st.GetEvent(ctx)
			if err != nil {
				fl.mu.Lock()
				fl.err = err
				fl.mu.Unlock()
				return
			}
			switch e := ev.Event.(type) {
			case *replication.RotateEvent:
				file = string(e.NextLogName)
			case *replication.XIDEvent:
				fl.mu.Lock()
				fl.last = binlog.FilePos{File: file, Pos: uint64(ev.Header.LogPos)}
				fl.seen++
				fl.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); s.Close(); <-done })
	return fl
}

// TestWakeupEveryCommit: the durable frontier moves one commit at a time
// and each move waits until every replica has that commit: each step
// needs the dumps, caught up and asleep, to be woken by that one move
// (their heartbeat is an hour away). A lost wake-up stalls a step. Then
// the frontier runs through the remaining commits as fast as it can be
// moved and every replica must end with every commit, none past the
// frontier on the way. Replicas plain and semi-sync; the Source is a
// Watcher (no poll).
func TestWakeupEveryCommit(t *testing.T) {
	f := newRelayFixture(t, 2, 300)
	f.durableAt(1)
	followers := []*follower{f.follow(t, 71, false), f.follow(t, 72, false), f.follow(t, 73, true)}
	waitAll := func(k int) {
		t.Helper()
		want := f.ends[k-1].pos
		harness.WaitFor(t, fmt.Sprintf("every replica to receive commit %d (%s)", k, want), 60*time.Second, func() bool {
			for i, fl := range followers {
				got, _, err := fl.at()
				if err != nil {
					t.Fatalf("replica %d: %v", i, err)
				}
				if got != want {
					return false
				}
			}
			return true
		})
	}
	waitAll(1)
	half := len(f.ends) / 2
	for k := 2; k <= half; k++ {
		f.durableAt(k)
		waitAll(k)
		for i, fl := range followers {
			if got, _, _ := fl.at(); got != f.ends[k-1].pos {
				t.Fatalf("replica %d is at %s with the frontier at %s: past the durable frontier", i, got, f.ends[k-1].pos)
			}
		}
	}
	for k := half + 1; k <= len(f.ends); k++ {
		f.durableAt(k)
	}
	waitAll(len(f.ends))
	for i, fl := range followers {
		if _, seen, _ := fl.at(); seen != len(f.ends) {
			t.Fatalf("replica %d received %d commits, want %d", i, seen, len(f.ends))
		}
	}
}
