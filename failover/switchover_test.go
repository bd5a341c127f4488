package failover

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
)

// fakeLiveMaster is a master whose GTID moves on with each read until it
// is frozen.
type fakeLiveMaster struct {
	mu          sync.Mutex
	frozen      bool
	thawed      bool
	freezeErr   error
	wasReadOnly bool // read_only was ON before the freeze
	reads       int
}

func (m *fakeLiveMaster) Freeze(context.Context) (FenceResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := FenceResult{Addr: "10.0.0.1:3306", Reachable: true, session: true, readOnlyRead: true, WasReadOnly: m.wasReadOnly}
	if m.freezeErr != nil {
		res.Err = m.freezeErr
		return res, m.freezeErr
	}
	m.frozen, res.ReadOnly = true, true
	return res, nil
}

func (m *fakeLiveMaster) Thaw(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frozen, m.thawed = false, true
	return nil
}

func (m *fakeLiveMaster) LastGTID(context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	if m.frozen {
		return "0-1-100", nil
	}
	return "0-1-90", nil
}

// fakeFollower has applied up to a GTID of domain 0.
type fakeFollower struct{ applied string }

func (f fakeFollower) Applied(gtid string) (bool, string, error) {
	want, err1 := binlog.ParseGTID(gtid)
	have, err2 := binlog.ParseGTID(f.applied)
	if err := errors.Join(err1, err2); err != nil {
		return false, "", err
	}
	return have.Seq >= want.Seq, "applied " + f.applied, nil
}

func newTestStore(t *testing.T) *checkpoint.Store {
	t.Helper()
	st, err := checkpoint.Open(filepath.Join(t.TempDir(), "checkpoint.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestSwitchoverUndoneOnTimeout: the standby caught up with the master
// before the freeze but not with its last GTID after it: the switchover
// is aborted within its timeout, the master thawed, nothing promoted.
// A failed freeze thaws too.
func TestSwitchoverUndoneOnTimeout(t *testing.T) {
	tests := []struct {
		name      string
		applied   string
		freezeErr error
		want      string
	}{
		{name: "standby stuck after the freeze", applied: "0-1-95", want: "has not applied the master's last GTID 0-1-100"},
		{name: "freeze failed", applied: "0-1-95", freezeErr: errors.New("read_only reads back OFF"), want: "could not be frozen"},
		{name: "standby behind before the freeze", applied: "0-1-50", want: "did not catch up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newTestStore(t)
			m := &fakeLiveMaster{freezeErr: tt.freezeErr}
			sw := &Switchover{Master: m, Follower: fakeFollower{tt.applied}, Promoter: &Promoter{Store: store, Now: time.Now},
				Timeout: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
			_, err := sw.Run(context.Background(), "test")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run: %v, want %q", err, tt.want)
			}
			before := tt.applied == "0-1-50"
			if before && (m.thawed || m.frozen || !errors.Is(err, ErrRefused)) {
				t.Fatalf("refused before the freeze: thawed %v frozen %v err %v; want nothing changed", m.thawed, m.frozen, err)
			}
			if !before && (!m.thawed || m.frozen || !errors.Is(err, ErrSwitchoverAborted) || !strings.Contains(err.Error(), "writable again")) {
				t.Fatalf("aborted: thawed %v frozen %v err %v; want the master thawed", m.thawed, m.frozen, err)
			}
			if r, _ := store.LoadRole(); r.Role != checkpoint.RoleStandby {
				t.Fatalf("role %s after an aborted switchover", r.Role)
			}
		})
	}
}

// TestSwitchoverNeverThawsAfterAPromotion: a switchover that finds the
// standby already promoted (a second switchover, an operator's promote)
// leaves the old master read-only: thawing it would make two writers.
func TestSwitchoverNeverThawsAfterAPromotion(t *testing.T) {
	store := newTestStore(t)
	if err := store.SaveRole(checkpoint.Role{Role: checkpoint.RoleMaster, Epoch: 1, Step: checkpoint.StepDone}); err != nil {
		t.Fatal(err)
	}
	m := &fakeLiveMaster{}
	sw := &Switchover{Master: m, Follower: fakeFollower{"0-1-100"}, Promoter: &Promoter{Store: store, Now: time.Now},
		Timeout: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	_, err := sw.Run(context.Background(), "test")
	if !errors.Is(err, ErrSwitchoverAborted) || !strings.Contains(err.Error(), "stays read-only") || m.thawed {
		t.Fatalf("Run with the standby already promoted: %v (thawed %v); want aborted, the master left read-only", err, m.thawed)
	}
}

// TestSwitchoverAbortLeavesAReadOnlyMasterReadOnly: a master that was
// read-only before the switchover is not made writable by its abort.
func TestSwitchoverAbortLeavesAReadOnlyMasterReadOnly(t *testing.T) {
	store := newTestStore(t)
	m := &fakeLiveMaster{wasReadOnly: true}
	sw := &Switchover{Master: m, Follower: fakeFollower{"0-1-95"}, Promoter: &Promoter{Store: store, Now: time.Now},
		Timeout: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
	_, err := sw.Run(context.Background(), "test")
	if !errors.Is(err, ErrSwitchoverAborted) || m.thawed || !strings.Contains(err.Error(), "read-only before") {
		t.Fatalf("Run: %v (thawed %v); want aborted with the master left read-only", err, m.thawed)
	}
}
