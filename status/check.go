package status

import (
	"fmt"
	"strings"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// Exit codes of `status --check`, the monitoring-plugin convention
// (Nagios, Icinga, keepalived's vrrp_script treats non-zero as failure).
const (
	CheckOK       = 0
	CheckWarning  = 1
	CheckCritical = 2
	CheckUnknown  = 3
)

// CheckThresholds are the limits of `status --check`.
type CheckThresholds struct {
	WarnApplyLag, CritApplyLag int64         // transactions received but not applied
	WarnSilence, CritSilence   time.Duration // since the last event or heartbeat
}

// DefaultCheckThresholds returns the defaults.
func DefaultCheckThresholds() CheckThresholds {
	return CheckThresholds{WarnApplyLag: 1000, CritApplyLag: 100000, WarnSilence: 10 * time.Second, CritSilence: 60 * time.Second}
}

// ApplyLagTransactions is how many transactions the applier is behind the
// received frontier, counted per GTID domain; false when it cannot be
// measured (no applier, or no GTIDs on one side). The daemon's own count
// (Lag.AppliedTransactions), when the report has it, is the answer: it knows
// where the relay log starts, and the master's transactions from before
// then are not lag; otherwise (a stopped daemon's report) the received and
// applied GTID positions are compared.
func (rep Report) ApplyLagTransactions() (int64, bool) {
	if n := rep.Lag.AppliedTransactions; n != nil {
		return *n, true
	}
	if rep.Applied == nil || rep.Received.GTID == "" {
		return 0, false
	}
	recv, err1 := binlog.ParseGTIDSet(binlog.MariaDB, rep.Received.GTID)
	appl, err2 := binlog.ParseGTIDSet(binlog.MariaDB, rep.Applied.GTID)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return appl.SeqBehind(recv)
}

// Check judges the report: the exit code and one summary line.
func (rep Report) Check(th CheckThresholds, now time.Time) (int, string) {
	type finding struct {
		code int
		text string
	}
	var fs []finding
	add := func(code int, format string, args ...any) {
		fs = append(fs, finding{code, fmt.Sprintf(format, args...)})
	}
	if f := rep.Failover; f != nil && rep.Role != "standby" && rep.Role != "" {
		return rep.checkPromoted(*f)
	}
	if f := rep.Failover; f != nil && f.Detector != nil && f.Detector.Dead {
		add(CheckCritical, "the master is declared dead (%s); failover mode %s", f.Detector.ProbeError, f.Mode)
	}
	if rep.Daemon != "running" {
		add(CheckCritical, "the daemon is not running")
	} else if rep.Stream.State != StateStreaming {
		msg := "stream " + rep.Stream.State
		if rep.Stream.LastError != "" {
			msg += ": " + rep.Stream.LastError
		}
		add(CheckCritical, "%s", msg)
	} else {
		last := rep.Stream.LastEventAt
		if hb := rep.Stream.LastHeartbeat; hb != nil && (last == nil || hb.After(*last)) {
			last = hb
		}
		if last == nil {
			last = rep.Stream.ConnectedSince
		}
		if last != nil {
			switch silent := now.Sub(*last); {
			case silent > th.CritSilence:
				add(CheckCritical, "nothing from the master for %s (no event, no heartbeat)", silent.Round(time.Second))
			case silent > th.WarnSilence:
				add(CheckWarning, "nothing from the master for %s (no event, no heartbeat)", silent.Round(time.Second))
			}
		}
	}
	if ap := rep.Applier; ap != nil {
		switch {
		case ap.State == "error":
			add(CheckCritical, "applier stopped: %s", ap.LastError)
		case len(ap.Errant) > 0:
			add(CheckCritical, "errant transactions on the standby: %s", strings.Join(ap.Errant, ","))
		}
		if lag, ok := rep.ApplyLagTransactions(); ok {
			switch {
			case lag > th.CritApplyLag:
				add(CheckCritical, "applier %d transactions behind", lag)
			case lag > th.WarnApplyLag:
				add(CheckWarning, "applier %d transactions behind", lag)
			}
		}
	}
	for _, w := range rep.Stream.Warnings {
		add(CheckWarning, "%s", w)
	}
	if ap := rep.Applier; ap != nil {
		for _, w := range ap.Warnings {
			add(CheckWarning, "%s", w)
		}
	}
	for _, w := range tlsFindings(rep.TLS) {
		add(CheckWarning, "%s", w)
	}
	if ss := rep.SemiSync; ss.Enabled && ss.BreachAt != nil && (ss.ProvenAt == nil || !ss.ProvenAt.After(*ss.BreachAt)) {
		add(CheckWarning, "not proven lossless since %s: %s", ss.BreachAt.Format(time.RFC3339), ss.Breach)
	}
	code, worst := CheckOK, ""
	var texts []string
	for _, f := range fs {
		if f.code > code {
			code = f.code
		}
		texts = append(texts, f.text)
	}
	if len(texts) > 0 {
		worst = strings.Join(texts, "; ")
	}
	label := map[int]string{CheckOK: "OK", CheckWarning: "WARNING", CheckCritical: "CRITICAL"}[code]
	if code == CheckOK {
		summary := fmt.Sprintf("streaming from %s, received %s", rep.Stream.Master, rep.Received.text())
		if lag, ok := rep.ApplyLagTransactions(); ok {
			summary += fmt.Sprintf(", applier %d transactions behind", lag)
		}
		return code, "OK: " + summary
	}
	return code, label + ": " + worst
}

// checkPromoted judges an agent whose standby was promoted (or is being
// promoted): there is no stream to judge any more.
func (rep Report) checkPromoted(f FailoverReport) (int, string) {
	if rep.Role == "promoting" {
		step := "unknown"
		if f.Promotion != nil {
			step = f.Promotion.Step
		}
		return CheckCritical, fmt.Sprintf("CRITICAL: a promotion (epoch %d) is in progress or stopped at step %s", f.Epoch, step)
	}
	line := fmt.Sprintf("OK: promoted: the standby is the master (epoch %d)", f.Epoch)
	if p := f.Promotion; p != nil && p.Forced {
		return CheckWarning, fmt.Sprintf("WARNING: promoted (epoch %d) with --force, not proven lossless", f.Epoch)
	}
	return CheckOK, line
}
