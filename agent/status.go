package agent

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/hotstandby/hotstandby/applier"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// liveReport builds the report of a running daemon.
func (a *Agent) liveReport() status.Report {
	st := a.recv.Status()
	ack := a.recv.AckStats()
	rep := status.Report{Schema: status.ReportSchemaVersion, Daemon: "running", Role: "standby"}
	rep.Stream = status.StreamReport{
		State: st.State, Master: a.cfg.Master.Addr(),
		ConnectedSince: status.TimePtr(st.ConnectedSince), LastEventAt: status.TimePtr(st.LastEventAt),
		LastHeartbeat: status.TimePtr(st.LastHeartbeat), Events: &st.Events, Bytes: &st.Bytes,
		Reconnects: &st.Reconnects, LastError: st.LastError, LastErrorAt: status.TimePtr(st.LastErrorAt),
		Warnings: st.Warnings, SilentSince: status.TimePtr(st.SilentSince), MasterDumpThread: st.DumpThread,
	}
	if st.State == ingest.StateStreaming {
		rep.Stream.LastError, rep.Stream.LastErrorAt = "", nil
	}
	if st.Identity.Flavor != "" {
		id := st.Identity.ServerID
		rep.Stream.MasterServerID, rep.Stream.Flavor = &id, string(st.Identity.Flavor)
	}
	rep.Received = status.Pos(st.Received)
	rep.Acked = status.Pos(st.Acked)
	rep.SemiSync = status.SemiSyncReport{Enabled: a.cfg.SemiSync.Enabled, AcksSent: &ack.Sent, LastAckAt: status.TimePtr(ack.LastAt)}
	if a.applier != nil {
		as := a.applier.Status()
		applied := status.Pos(as.Applied)
		rep.Applied = &applied
		if n, ok := as.Behind(st.Received.GTID); ok { // not the master's history before the relay log's start
			rep.Lag.AppliedTransactions = &n
		}
		rep.Applier = &status.ApplierReport{State: as.State, Standby: a.cfg.Standby.Addr(), Transactions: &as.Transactions,
			LastAppliedAt: status.TimePtr(as.AppliedAt), LastError: as.LastError, FailedGTID: as.FailedGTID, Errant: as.Errant, Warnings: as.Warnings}
	}
	if a.replica != nil {
		a.replica.report(&rep)
	}
	if proof, breach, err := a.store.SemiSync(); err == nil {
		rep.SemiSync.AddProof(proof, breach)
	}
	if a.failover != nil {
		a.addFailover(&rep)
	}
	if entries, err := a.store.AuditLog(); err == nil {
		rep.Audit = status.AuditLines(entries)
	}
	rep.SafeToPromote = rep.Received
	rep.TLS = a.cfg.TLSReport()
	if mv := a.monitor.View(); mv.PosKnown || mv.SemiSync != "" {
		rep.Master = &status.MasterReport{Position: status.Pos(mv.Pos), SemiSync: mv.SemiSync, SemiSyncSince: status.TimePtr(mv.SemiSyncSince), MeasuredAt: mv.MeasuredAt}
		if mv.PosKnown {
			rep.Lag.ReceivedBytes = status.BytesBehind(rep.Master.Position, rep.Received)
			var secs int64
			if rep.Lag.ReceivedBytes == nil || *rep.Lag.ReceivedBytes != 0 {
				if st.LastEventTS == 0 {
					secs = -1
				} else {
					masterNow := time.Now().Add(mv.ClockOffset)
					secs = int64(masterNow.Sub(time.Unix(int64(st.LastEventTS), 0)).Seconds())
				}
			}
			if secs >= 0 {
				rep.Lag.ReceivedSeconds = &secs
			}
		}
	}
	if rep.Applied != nil {
		rep.Lag.AppliedBytes = status.BytesBehind(rep.Received, *rep.Applied)
		if n, ok := rep.ApplyLagTransactions(); ok {
			rep.Lag.AppliedTransactions = &n
			var as applier.Status // replica mode: Seconds_Behind_Master, set by replica.report
			if a.applier != nil {
				as = a.applier.Status()
			}
			switch {
			case n == 0:
				zero := int64(0)
				rep.Lag.AppliedSeconds = &zero
			case as.AppliedEventTS != 0 && st.LastEventTS >= as.AppliedEventTS:
				d := int64(st.LastEventTS - as.AppliedEventTS)
				rep.Lag.AppliedSeconds = &d
			}
		}
	}
	rep.Relay = status.RelayUsage(a.cfg.RelayDir())
	rep.Serve = a.serveReport()
	return rep
}

func (a *Agent) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a.liveReport())
}

// addFailover fills in the role, the detector's view and the gate's verdict.
func (a *Agent) addFailover(rep *status.Report) {
	role, err := a.store.LoadRole()
	if err != nil {
		return
	}
	rep.AddRole(role, a.cfg.Failover.Mode)
	f := rep.Failover
	if role.Role == checkpoint.RoleStandby {
		f.LosslessNow, f.LosslessWhy = a.failover.promoter.Gate.Lossless()
	}
	if d := a.failover.detector; d != nil && role.Role == checkpoint.RoleStandby {
		v := d.View()
		f.Detector = &status.DetectorReport{ProbeOK: v.ProbeOK, ProbeAt: status.TimePtr(v.ProbeAt), ProbeError: v.ProbeErr,
			ProbeMS: float64(v.ProbeTook.Microseconds()) / 1000, Failures: v.Failures, StreamDown: v.StreamDown, StreamWhy: v.StreamWhy,
			Witness: v.Witness, Dead: v.Dead, Since: status.TimePtr(v.Since)}
	}
}
