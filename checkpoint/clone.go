package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

var keyClone = []byte("clone")

// Clone states.
const (
	// CloneRunning: a clone is copying (or was, and was interrupted: a
	// kill -9 leaves this state). The standby holds a partial copy; the
	// agent refuses to stream onto it.
	CloneRunning = "running"
	// CloneFailed: the last clone stopped on an error; the standby holds a
	// partial copy.
	CloneFailed = "failed"
	// CloneComplete: every table is copied and the standby's GTID state is
	// the snapshot's; the received frontier starts at the snapshot.
	CloneComplete = "complete"
)

// ErrCloneHasRelay means a clone was asked to complete in a data directory
// whose relay log already started: its positions would mix two copies.
var ErrCloneHasRelay = errors.New("checkpoint: the data directory already holds a received frontier")

// CloneState is the clone's record: in progress (with its progress counters,
// for status), failed, or complete with its snapshot position.
type CloneState struct {
	State     string    `json:"state"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Master    string    `json:"master"`  // host:port
	Standby   string    `json:"standby"` // host:port
	Workers   int       `json:"workers"`
	// Databases are the schemas this clone creates on the standby: a rerun
	// after an interruption drops them (they are its own) before it starts
	// over.
	Databases []string `json:"databases,omitempty"`
	// Snapshot is the master position of the consistent snapshot
	// (binlog_snapshot_file:binlog_snapshot_position and
	// BINLOG_GTID_POS of it); zero until the snapshot is taken.
	Snapshot binlog.Position `json:"-"`
	// GTIDState is the master's @@gtid_binlog_state at the snapshot, which
	// the standby takes as its own.
	GTIDState string `json:"gtid_state,omitempty"`
	// BlockedCommits is how long the master's commits waited for the
	// snapshot step (BACKUP STAGE BLOCK_COMMIT to END).
	BlockedCommits time.Duration `json:"blocked_commits_ns"`
	// Progress.
	TablesTotal int   `json:"tables_total"`
	TablesDone  int   `json:"tables_done"`
	RowsTotal   int64 `json:"rows_total"` // estimate (table statistics)
	RowsDone    int64 `json:"rows_done"`
	BytesDone   int64 `json:"bytes_done"`
	// Error is why a failed clone stopped.
	Error string `json:"error,omitempty"`
}

type cloneJSON struct {
	CloneState
	SnapshotPos string `json:"snapshot,omitempty"`
}

// SaveClone records c (running or failed). A complete clone is recorded
// only by CompleteClone.
func (s *Store) SaveClone(c CloneState) error {
	if c.State == CloneComplete {
		return errors.New("checkpoint: a clone is marked complete only by CompleteClone")
	}
	return s.db.Update(func(tx *bolt.Tx) error { return putCloneTx(tx.Bucket(bucketMaster), c) })
}

func putCloneTx(b *bolt.Bucket, c CloneState) error {
	cj := cloneJSON{CloneState: c}
	if !c.Snapshot.FilePos.IsZero() {
		cj.SnapshotPos = c.Snapshot.Encode()
	}
	v, err := json.Marshal(cj)
	if err != nil {
		return err
	}
	return b.Put(keyClone, v)
}

// LoadClone returns the clone's record; nil when no clone ever ran in this
// data directory.
func (s *Store) LoadClone() (*CloneState, error) {
	var out *CloneState
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		if b == nil {
			return nil
		}
		v := b.Get(keyClone)
		if v == nil {
			return nil
		}
		var cj cloneJSON
		if err := json.Unmarshal(v, &cj); err != nil {
			return err
		}
		c := cj.CloneState
		if cj.SnapshotPos != "" {
			p, err := binlog.DecodePosition(cj.SnapshotPos)
			if err != nil {
				return err
			}
			c.Snapshot = p
		}
		out = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: clone: %w", err)
	}
	return out, nil
}

// CompleteClone marks the clone complete and sets the received frontier to
// its snapshot position, with an audit entry, in one transaction: either
// the agent starts streaming at the snapshot, or the clone is still partial.
// The data directory must not have received anything yet
// (ErrCloneHasRelay).
func (s *Store) CompleteClone(c CloneState, by string, now time.Time) error {
	if c.Snapshot.FilePos.IsZero() {
		return errors.New("checkpoint: a complete clone needs its snapshot position")
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bucketFrontiers)
		old, _, err := getFrontierTx(fb, keyReceived)
		if err != nil {
			return err
		}
		if !old.Pos.FilePos.IsZero() || !old.Pos.GTID.IsZero() {
			return fmt.Errorf("%w (%s)", ErrCloneHasRelay, old.Pos)
		}
		c.State, c.UpdatedAt, c.Error = CloneComplete, now, ""
		if err := putCloneTx(tx.Bucket(bucketMaster), c); err != nil {
			return err
		}
		if err := putFrontierTx(fb, keyReceived, relay.Frontier{Pos: c.Snapshot}, now); err != nil {
			return err
		}
		return cloneAuditTx(tx, "clone", by, fmt.Sprintf("clone of %s into %s complete at %s (gtid_binlog_state %s); %d tables, %d rows, %d bytes, commits blocked %s",
			c.Master, c.Standby, c.Snapshot, orNone(c.GTIDState), c.TablesDone, c.RowsDone, c.BytesDone, c.BlockedCommits.Round(time.Microsecond)), now)
	})
}

// cloneAuditTx appends an audit entry inside tx (as AuditBy does on its own
// transaction).
func cloneAuditTx(tx *bolt.Tx, kind, by, text string, at time.Time) error {
	b := tx.Bucket(bucketAudit)
	seq, _ := b.NextSequence()
	v, _ := json.Marshal(AuditEntry{Seq: seq, At: at, Kind: kind, Text: text, By: by})
	return b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
}

func orNone(s string) string {
	if s == "" {
		return "empty"
	}
	return s
}
