package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hotstandby/hotstandby/control"
)

// ControlPath is the daemon's control socket: data_dir/control.sock.
func (c Config) ControlPath() string { return filepath.Join(c.DataDir, "control.sock") }

// controlOps is the daemon's registry of control operations.
func (a *Agent) controlOps() control.Ops {
	return control.Ops{"skip": a.opSkip, "promote": a.opPromote, "rejoin": a.opRejoin, "switchover": a.opSwitchover}
}

// listenControl creates the control socket (a stale one is removed).
func (a *Agent) listenControl() (*control.Server, error) {
	srv, err := control.Listen(control.Config{Path: a.cfg.ControlPath(), Ops: a.controlOps(), Logger: a.log, OpTimeout: 5 * time.Minute})
	if err != nil {
		return nil, err
	}
	a.log.Info("control socket listening", "path", srv.Addr())
	return srv, nil
}

// recoverOp, deferred in an operation's own goroutine (one that outlives
// the control socket's handler, which the control server guards), turns a
// panic into the operation's error, logged at ERROR with its stack: one
// broken operation must not end the daemon, the master's semi-sync replica.
func (a *Agent) recoverOp(op string, err *error) {
	if r := recover(); r != nil {
		a.log.Error("operation panicked; the daemon goes on", "op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*err = fmt.Errorf("%w: %s: %v (the daemon logged the stack and goes on; please report it)", control.ErrOpPanicked, op, r)
	}
}

// skipRequest is an operator's skip that the applier accepted and has not
// committed yet.
type skipRequest struct {
	by         control.Peer
	applierErr string        // the error the applier was stopped on
	done       chan struct{} // closed once committed and recorded
}

// skipRegistry pairs operators' skips with the applier's commits of them,
// so the audit entry is written when the skip has happened.
type skipRegistry struct {
	serial sync.Mutex // held by one skip op at a time

	mu      sync.Mutex // mu guards the fields below
	pending map[string]*skipRequest
}

func (r *skipRegistry) put(gtid string, req *skipRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]*skipRequest{}
	}
	r.pending[gtid] = req
}

// take removes and returns the request for gtid (nil if none).
func (r *skipRegistry) take(gtid string) *skipRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	req := r.pending[gtid]
	delete(r.pending, gtid)
	return req
}

// opSkip is the control op "skip": the explicit skip of the transaction the
// standby's apply is stopped on, in the apply mode's way (applyMode.skip).
func (a *Agent) opSkip(ctx context.Context, p control.Peer, req control.Request) (string, error) {
	if req.GTID == "" {
		return "", errors.New(`skip: "gtid" is required: the GTID the applier is stopped on`)
	}
	// One skip at a time: a second request for the same GTID sees the
	// standby past it (or still stopped on it if the first was lost).
	a.skips.serial.Lock()
	defer a.skips.serial.Unlock()
	return a.mode.skip(ctx, p, req.GTID)
}

// skipCommitted is the applier's Skipped hook: the skip has happened on the
// standby; record it with who asked and the error it replaced.
func (a *Agent) skipCommitted(gtid string) {
	r := a.skips.take(gtid)
	by := "unknown"
	if r != nil {
		by = r.by.String()
	} else { // cannot happen: only opSkip asks the applier to skip
		r = &skipRequest{done: make(chan struct{})}
	}
	text := fmt.Sprintf("skip GTID %s by %s; applier error: %s", gtid, by, r.applierErr)
	if err := a.store.AuditBy("skip", by, text, time.Now()); err != nil {
		a.log.Error("audit log not written", "err", err, "entry", text)
	}
	a.log.Warn("operator skip committed on the standby", "gtid", gtid, "by", by)
	close(r.done)
}

// roleOpLock lets one operation that changes who is master run at a time:
// promote, switchover and rejoin, from an operator or the detector. The
// operations run on the daemon's context, so the lock is held until the
// work ends, not until the client that asked stops waiting.
type roleOpLock struct {
	mu    sync.Mutex
	name  string // the operation running, "" if none
	by    string
	since time.Time
}

// begin takes the lock for the operation name asked by by, or says which
// one holds it. The returned end releases it (once).
func (l *roleOpLock) begin(name, by string) (end func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.name != "" {
		return nil, fmt.Errorf("%s refused: a %s (by %s, since %s) is still running; wait for it to end (`hotstandby status`, the audit log) and ask again",
			name, l.name, l.by, l.since.UTC().Format(time.RFC3339))
	}
	l.name, l.by, l.since = name, by, time.Now()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.name, l.by = "", ""
			l.mu.Unlock()
		})
	}, nil
}
