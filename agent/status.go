package agent

import (
	"encoding/json"
	"github.com/hotstandby/hotstandby/buildinfo"
	"net/http"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// liveReport builds the report of a running daemon.
func (a *Agent) liveReport() status.Report {
	st := a.recv.Status()
	ack := a.recv.AckStats()
	build := buildinfo.Get()
	rep := status.Report{Schema: status.ReportSchemaVersion, Daemon: "running", Role: "standby", Build: &build}
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
	a.mode.report(&rep, st)
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
			rep.Lag.ReceivedBytes = status.BytesBehind(rep.Master.Position, status.Pos(mv.Received)) // both as of the sample: never negative
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
			if n == 0 {
				zero := int64(0)
				rep.Lag.AppliedSeconds = &zero
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
	f.Retrying = a.failover.Retrying()
	if d := a.failover.detector; d != nil && role.Role == checkpoint.RoleStandby {
		v := d.View()
		f.Detector = &status.DetectorReport{ProbeOK: v.ProbeOK, ProbeAt: status.TimePtr(v.ProbeAt), ProbeError: v.ProbeErr,
			ProbeMS: float64(v.ProbeTook.Microseconds()) / 1000, Failures: v.Failures, StreamDown: v.StreamDown, StreamWhy: v.StreamWhy,
			Witness: v.Witness, Dead: v.Dead, Since: status.TimePtr(v.Since), Restart: v.Restart}
	}
	f.OldMasterWatch = a.oldMasterLine()
}
