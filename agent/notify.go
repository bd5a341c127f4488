package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/ingest"
)

// notifySystemd speaks systemd's notify protocol (Type=notify) when the
// daemon runs under it (NOTIFY_SOCKET set; otherwise it returns at once):
//   - READY=1 once the daemon serves: the stream is up, or the daemon waits
//     for its master (a failed attempt, reconnecting), or the recorded role
//     runs no stream (promoted, promoting). A refusal (exit 1) before that
//     never says READY, so `systemctl start` fails with the refusal in the
//     journal;
//   - WATCHDOG=1 every WatchdogSec/2 (WATCHDOG_USEC) while the receiver's
//     status answers (its lock is free: the stream is not wedged) -- a hung
//     daemon is killed with SIGABRT (a goroutine dump in the journal) and
//     restarted by Restart=on-failure;
//   - STATUS= the stream's state, for `systemctl status`, when it changes;
//   - STOPPING=1 when the daemon stops.
func (a *Agent) notifySystemd(ctx context.Context) {
	notify := func(state string) bool {
		ok, err := daemon.SdNotify(false, state)
		if err != nil {
			a.log.Warn("systemd notification not sent", "state", state, "err", err)
		}
		return ok
	}
	if !notify("STATUS=starting") {
		return // not under systemd (or the socket is gone)
	}
	watchdog, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		a.log.Warn("systemd watchdog: WATCHDOG_USEC not understood; no watchdog pings", "err", err)
	}
	poll := 100 * time.Millisecond // until READY
	every := 5 * time.Second       // STATUS= after READY, without a watchdog
	if watchdog > 0 {
		every = watchdogPeriod(watchdog)
		poll = min(poll, every)
	}
	ready, lastStatus := false, ""
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		st := a.recv.Status() // blocks if the receiver's lock is held for good: no more pings
		line := fmt.Sprintf("STATUS=stream %s (master %s)", st.State, a.cfg.Master.Addr())
		if !ready && a.serving(st) {
			ready = true
			notify("READY=1\n" + line)
			lastStatus = line
			a.log.Info("systemd notified: ready", "stream", st.State, "watchdog", watchdog)
			t.Reset(every)
		}
		if ready {
			if watchdog > 0 {
				notify("WATCHDOG=1")
			}
			if line != lastStatus {
				notify(line)
				lastStatus = line
			}
		}
		select {
		case <-ctx.Done():
			notify("STOPPING=1")
			return
		case <-t.C:
		}
	}
}

// serving reports whether the daemon has started: the stream is up or
// waits for its master, or the role runs no stream.
func (a *Agent) serving(st ingest.Status) bool {
	switch st.State {
	case ingest.StateStreaming, ingest.StateRetrying, ingest.StateSilent:
		return true
	}
	role, err := a.store.LoadRole()
	return err == nil && role.Role != checkpoint.RoleStandby
}

// watchdogPeriod is half of WatchdogSec, as sd_watchdog_enabled(3) asks,
// but never below 50ms: a hostile or mistyped WATCHDOG_USEC=1 must not
// turn the loop into a busy one (systemd then kills the daemon, which says
// what is wrong; it does not spin a core).
func watchdogPeriod(watchdog time.Duration) time.Duration {
	return max(watchdog/2, 50*time.Millisecond)
}
