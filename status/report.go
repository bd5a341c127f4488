package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/hotstandby/hotstandby/buildinfo"
	"net/http"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// Stream states as the daemon reports them (ingest's states).
const (
	StateStreaming = "streaming"
	StateStopped   = "stopped"
)

// ReportSchemaVersion is the version of the JSON status schema. It changes
// when a key changes meaning or disappears; new keys do not change it.
const ReportSchemaVersion = 1

// PosReport is a frontier in status output. Unknown parts are omitted, never
// shown as zero.
type PosReport struct {
	File string  `json:"file,omitempty"`
	Pos  *uint64 `json:"pos,omitempty"`
	GTID string  `json:"gtid,omitempty"`
}

// Pos turns a position into its report form.
func Pos(p binlog.Position) PosReport {
	out := PosReport{GTID: p.GTID.String()}
	if !p.FilePos.IsZero() {
		pos := p.Pos
		out.File, out.Pos = p.File, &pos
	}
	return out
}

// StreamReport is the "stream" object.
type StreamReport struct {
	State          string     `json:"state"`
	Master         string     `json:"master"`
	MasterServerID *uint32    `json:"master_server_id,omitempty"`
	Flavor         string     `json:"flavor,omitempty"`
	ConnectedSince *time.Time `json:"connected_since,omitempty"`
	LastEventAt    *time.Time `json:"last_event_at,omitempty"`
	LastHeartbeat  *time.Time `json:"last_heartbeat_at,omitempty"`
	Events         *uint64    `json:"events_received,omitempty"`
	Bytes          *uint64    `json:"bytes_received,omitempty"`
	Reconnects     *uint64    `json:"reconnects,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
	Warnings       []string   `json:"warnings,omitempty"`
	// SilentSince is set while dump connections deliver nothing at all (no
	// rotate, no format description, no heartbeat): state "silent",
	// "connected, master sends nothing". MasterDumpThread is the master's
	// processlist view of the agent's dump thread then.
	SilentSince      *time.Time `json:"silent_since,omitempty"`
	MasterDumpThread string     `json:"master_dump_thread,omitempty"`
}

// SemiSyncReport is the "semisync" object.
type SemiSyncReport struct {
	Enabled   bool       `json:"enabled"`
	AcksSent  *uint64    `json:"acks_sent,omitempty"`
	LastAckAt *time.Time `json:"last_ack_at,omitempty"`
	// ProvenAt is the last moment at which every commit on the master since
	// the previous check was proven to have waited for the agent's ACK
	// (semi-sync ON, AFTER_SYNC, the agent its only semi-sync replica, no
	// commit without an ACK). Breach is the last reason it could not be
	// proven, and BreachAt when (kept after later proofs: a proof covers
	// only what follows it).
	ProvenAt *time.Time `json:"lossless_proven_at,omitempty"`
	Breach   string     `json:"lossless_breach,omitempty"`
	BreachAt *time.Time `json:"lossless_breach_at,omitempty"`
}

// MasterReport is what the agent last measured on the master itself (the
// "master" object); absent when the master could not be asked.
type MasterReport struct {
	Position      PosReport  `json:"position"`
	SemiSync      string     `json:"semisync_status,omitempty"` // Rpl_semi_sync_master_status: ON or OFF
	SemiSyncSince *time.Time `json:"semisync_status_since,omitempty"`
	MeasuredAt    time.Time  `json:"measured_at"`
}

// LagReport holds lag figures, each named for how it is measured; absent
// ones are unknown.
type LagReport struct {
	// ReceivedBytes is the master's position minus the received one, both
	// in the same binlog file (SHOW MASTER STATUS as of master.measured_at).
	ReceivedBytes *int64 `json:"received_bytes_behind_master,omitempty"`
	// AppliedBytes is received minus applied, in the same file.
	AppliedBytes *int64 `json:"applied_bytes_behind_received,omitempty"`
	// AppliedTransactions counts GTID sequence numbers received but not applied.
	AppliedTransactions *int64 `json:"applied_transactions_behind_received,omitempty"`
	// AppliedSeconds is the master commit time (event timestamp) of the
	// newest received transaction minus that of the last applied one; 0
	// when everything received is applied. Not the time since the last
	// event: an idle master is not lag.
	AppliedSeconds *int64 `json:"applied_seconds_behind_received_by_event_time,omitempty"`
	// ReceivedSeconds is the master's clock (read by the monitor) minus the
	// commit time of the newest received transaction, when the master is
	// ahead of what was received; 0 when received equals the master's
	// position.
	ReceivedSeconds *int64 `json:"received_seconds_behind_master_clock,omitempty"`
}

// RelayReport is the relay log on disk.
type RelayReport struct {
	Segments int `json:"segments"`
	// Bytes is the disk space the segments take, the live segment's
	// preallocated tail included.
	Bytes int64 `json:"bytes_on_disk"`
}

// ApplierReport is the "applier" object (absent without a standby).
type ApplierReport struct {
	State         string     `json:"state"`
	Standby       string     `json:"standby"`
	Transactions  *uint64    `json:"transactions_applied,omitempty"`
	LastAppliedAt *time.Time `json:"last_applied_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	FailedGTID    string     `json:"failed_gtid,omitempty"`
	Errant        []string   `json:"errant_gtids,omitempty"`
	// Warnings are the standby preflight's findings that weaken durability
	// after a power loss (sync_binlog, innodb_flush_log_at_trx_commit).
	Warnings []string `json:"warnings,omitempty"`
	// Mode is the apply mode, "direct" or "replica" (empty: direct). In
	// replica mode Source is the binlog server the standby replicates from,
	// ParallelThreads its slave_parallel_threads, IOThread and SQLThread
	// Slave_IO_Running and Slave_SQL_Running, LastIOError Last_IO_Error.
	Mode            string `json:"mode,omitempty"`
	Source          string `json:"source,omitempty"`
	ParallelThreads int    `json:"parallel_threads,omitempty"`
	IOThread        string `json:"io_thread,omitempty"`
	SQLThread       string `json:"sql_thread,omitempty"`
	LastIOError     string `json:"last_io_error,omitempty"`
}

// FailoverReport is the "failover" object: the mode, the epoch, the last
// promotion, the detector's current view, and whether a promotion now would
// be lossless and why not.
type FailoverReport struct {
	Mode  string `json:"mode"` // auto, manual or off
	Epoch uint64 `json:"epoch"`
	// Promotion is the last (or current) promotion.
	Promotion *PromotionReport `json:"promotion,omitempty"`
	Detector  *DetectorReport  `json:"detector,omitempty"`
	// LosslessNow says whether a promotion now is proven lossless;
	// LosslessWhy says what may be lost when not.
	LosslessNow bool   `json:"promotion_lossless_now"`
	LosslessWhy string `json:"promotion_lossless_why_not,omitempty"`
	// Retrying says why the automatic promotion is being tried again (it
	// was refused or aborted, and the master is still dead and a promotion
	// still proven lossless); "" when it is not.
	Retrying string `json:"retrying,omitempty"`
	// LastAborted is the last promotion aborted because the old master
	// answered and could not be fenced: epoch, who, when, why.
	LastAborted string `json:"last_aborted,omitempty"`
	// OldMasterWatch is the promoted agent's watch of the old master:
	// "old master watch: up, fenced (read-only); last: ..."; "" before a
	// promotion and once it rejoined.
	OldMasterWatch string `json:"old_master_watch,omitempty"`
}

// PromotionReport is a promotion as recorded in the checkpoint store.
type PromotionReport struct {
	Step      string     `json:"step"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	By        string     `json:"by,omitempty"`
	Forced    bool       `json:"forced,omitempty"`
	OldMaster string     `json:"old_master,omitempty"`
	Applied   string     `json:"applied,omitempty"`
	// Rejoined: the old master rejoined as a replica of this one (by
	// `hotstandby rejoin`): which, when, at which GTID.
	Rejoined string `json:"rejoined,omitempty"`
}

// DetectorReport is the death detector's view.
type DetectorReport struct {
	ProbeOK    bool       `json:"probe_ok"`
	ProbeAt    *time.Time `json:"probe_at,omitempty"`
	ProbeError string     `json:"probe_error,omitempty"`
	ProbeMS    float64    `json:"probe_ms"`
	Failures   int        `json:"probe_failures_in_a_row"`
	StreamDown bool       `json:"stream_down"`
	StreamWhy  string     `json:"stream_down_why,omitempty"`
	Witness    string     `json:"witness,omitempty"`
	Dead       bool       `json:"master_dead"`
	Since      *time.Time `json:"since,omitempty"`
	// Restart: "master restarting: connection refused for 3.1s, grace
	// 5s" while a refusing master is given its restart grace, and why it
	// ran out after; "" otherwise.
	Restart string `json:"restart,omitempty"`
}

// AddRole fills in the role, the epoch and the last promotion.
func (rep *Report) AddRole(r checkpoint.Role, mode string) {
	rep.Role = r.Role
	f := &FailoverReport{Mode: mode, Epoch: r.Epoch, LastAborted: r.Aborted}
	if r.Step != "" {
		f.Promotion = &PromotionReport{Step: r.Step, StartedAt: TimePtr(r.StartedAt), UpdatedAt: TimePtr(r.UpdatedAt), Reason: r.Reason,
			By: r.By, Forced: r.Forced, OldMaster: r.OldAddr, Applied: r.Target, Rejoined: r.Rejoined}
	}
	rep.Failover = f
}

// Report is what `hotstandby status` shows, as a person's view or JSON.
type Report struct {
	Schema   int            `json:"schema_version"`
	Daemon   string         `json:"daemon"` // running or stopped
	Role     string         `json:"role"`   // standby, promoting or master
	Stream   StreamReport   `json:"stream"`
	Received PosReport      `json:"received"`
	Acked    PosReport      `json:"acked"`
	Applied  *PosReport     `json:"applied,omitempty"`
	Applier  *ApplierReport `json:"applier,omitempty"`
	// SafeToPromote is the end of the last whole transaction received:
	// what a promotion may apply up to.
	SafeToPromote PosReport      `json:"safe_to_promote"`
	Master        *MasterReport  `json:"master,omitempty"`
	Lag           LagReport      `json:"lag"`
	Relay         *RelayReport   `json:"relay,omitempty"`
	SemiSync      SemiSyncReport `json:"semisync"`
	CheckpointAt  *time.Time     `json:"checkpoint_at,omitempty"`
	// Failover is the failover machinery's view (absent without a standby).
	Failover *FailoverReport `json:"failover,omitempty"`
	Audit    []string        `json:"audit,omitempty"`
	// Serve is the binlog server and its replicas (absent when not serving).
	Serve *ServeReport `json:"serve,omitempty"`
	// TLS is how each connection of the daemon is protected (running only).
	TLS []TLSReport `json:"tls,omitempty"`
	// Clone is a clone in progress, or one that failed (absent when none
	// ran, or the last completed).
	Clone *CloneReport `json:"clone,omitempty"`
	// Build is the running daemon's build (running only; `hotstandby
	// version` prints the installed binary's).
	Build *buildinfo.Info `json:"build,omitempty"`
}

// CloneReport is `hotstandby clone`'s record while it has not completed.
type CloneReport struct {
	State       string     `json:"state"` // running (or interrupted) or failed
	StartedAt   *time.Time `json:"started_at,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
	Snapshot    string     `json:"snapshot,omitempty"`
	TablesDone  int        `json:"tables_done"`
	TablesTotal int        `json:"tables_total"`
	RowsDone    int64      `json:"rows_done"`
	RowsTotal   int64      `json:"rows_total_estimate"`
	BytesDone   int64      `json:"bytes_done"`
	Error       string     `json:"error,omitempty"`
}

// TimePtr is nil for the zero time: unknown times are omitted.
func TimePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// BytesBehind is ahead minus behind when both are in the same binlog file.
func BytesBehind(ahead, behind PosReport) *int64 {
	if ahead.File == "" || ahead.File != behind.File || ahead.Pos == nil || behind.Pos == nil {
		return nil
	}
	d := int64(*ahead.Pos) - int64(*behind.Pos)
	return &d
}

// RelayUsage measures the relay log in dir (nil when unreadable).
func RelayUsage(dir string) *RelayReport {
	segs, err := relay.ListSegments(dir)
	if err != nil {
		return nil
	}
	r := &RelayReport{Segments: len(segs)}
	for _, s := range segs {
		r.Bytes += s.Size
	}
	return r
}

// AuditLines formats audit entries, one line each.
func AuditLines(entries []checkpoint.AuditEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.At.Format(time.RFC3339)+" "+e.Kind+": "+e.Text)
	}
	return out
}

// Source says where a daemon's status can be found: its endpoint, else its
// checkpoint store and relay log.
type Source struct {
	Listen         string // the status endpoint (host:port); "" = none
	CheckpointPath string
	RelayDir       string
	Master         string // host:port, for the report
	Standby        string // host:port; "" = no applier
	SemiSync       bool
	FailoverMode   string
}

// AddProof fills in the stored semi-sync proof and breach (either may be
// nil).
func (s *SemiSyncReport) AddProof(proof *checkpoint.SemiSyncProof, breach *checkpoint.SemiSyncBreach) {
	if proof != nil {
		s.ProvenAt = TimePtr(proof.At)
	}
	if breach != nil {
		s.Breach, s.BreachAt = breach.Reason, TimePtr(breach.At)
	}
}

// Stored builds the report of a stopped daemon from its checkpoint store.
func Stored(cfg Source) (Report, error) {
	rep := Report{Schema: ReportSchemaVersion, Daemon: "stopped", Role: "standby"}
	rep.Stream = StreamReport{State: StateStopped, Master: cfg.Master}
	rep.SemiSync.Enabled = cfg.SemiSync
	store, err := checkpoint.Open(cfg.CheckpointPath, true)
	if err != nil {
		if errors.Is(err, checkpoint.ErrLocked) {
			return Report{}, fmt.Errorf("the daemon holds %s but its status endpoint %s does not answer", cfg.CheckpointPath, cfg.Listen)
		}
		return rep, nil // never ran: nothing known
	}
	defer store.Close()
	st, err := store.Load()
	if err != nil {
		return Report{}, err
	}
	if st.Identity != nil {
		id := st.Identity.ServerID
		rep.Stream.MasterServerID, rep.Stream.Flavor = &id, string(st.Identity.Flavor)
	}
	rep.Received = Pos(st.Received.Pos)
	if !st.Acked.IsZero() {
		rep.Acked = Pos(binlog.Position{FilePos: st.Acked})
	}
	rep.CheckpointAt = TimePtr(st.UpdatedAt)
	rep.SafeToPromote = rep.Received
	rep.Relay = RelayUsage(cfg.RelayDir)
	if cfg.Standby != "" {
		applied := Pos(st.Applied.Pos)
		rep.Applied = &applied
		rep.Applier = &ApplierReport{State: StateStopped, Standby: cfg.Standby}
	}
	if entries, err := store.AuditLog(); err == nil {
		rep.Audit = AuditLines(entries)
	}
	if c, err := store.LoadClone(); err == nil && c != nil && c.State != checkpoint.CloneComplete {
		rep.Clone = &CloneReport{State: c.State, StartedAt: TimePtr(c.StartedAt), UpdatedAt: TimePtr(c.UpdatedAt), Snapshot: c.Snapshot.String(),
			TablesDone: c.TablesDone, TablesTotal: c.TablesTotal, RowsDone: c.RowsDone, RowsTotal: c.RowsTotal, BytesDone: c.BytesDone, Error: c.Error}
	}
	if proof, breach, err := store.SemiSync(); err == nil {
		rep.SemiSync.AddProof(proof, breach)
	}
	if cfg.Standby != "" {
		if r, err := store.LoadRole(); err == nil {
			rep.AddRole(r, cfg.FailoverMode)
			rep.Failover.LosslessWhy = "unknown: the daemon is not running (it judges from the master's live state)"
		}
	}
	return rep, nil
}

// Get returns the report: from the running daemon's endpoint when it
// answers, else from the checkpoint file.
func Get(ctx context.Context, cfg Source) (Report, error) {
	if cfg.Listen != "" {
		rep, err := Fetch(ctx, cfg.Listen)
		if err == nil {
			return rep, nil
		}
	}
	return Stored(cfg)
}

// Fetch asks the running daemon at addr for its report.
func Fetch(ctx context.Context, addr string) (Report, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return Report{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Report{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Report{}, fmt.Errorf("status endpoint: %s", resp.Status)
	}
	var rep Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return Report{}, fmt.Errorf("status endpoint: %w", err)
	}
	return rep, nil
}
