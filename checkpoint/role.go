package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hotstandby/hotstandby/binlog"
)

var keyRole = []byte("role")

// Roles of the agent's server.
const (
	// RoleStandby: the agent streams from the master and keeps the standby
	// read-only. The zero Role reads as this.
	RoleStandby = "standby"
	// RolePromoting: a promotion started and has not finished; a restart
	// resumes it and never streams from the old master again.
	RolePromoting = "promoting"
	// RoleMaster: the standby was promoted; the agent never streams from or
	// acknowledges the old master again (no failback).
	RoleMaster = "master"
)

// Promotion steps, in order. Each is recorded when it is done.
const (
	StepStarted   = "started"    // the decision, with its reason, is recorded
	StepStreamEnd = "stream-end" // the stream is stopped for good
	StepDrained   = "drained"    // every durable transaction is applied
	StepFenced    = "fenced"     // the old master fenced (where reachable), STONITH run
	StepWritable  = "writable"   // the standby is writable, replication config removed
	StepDone      = "done"       // epoch recorded, hooks run
)

// Role is the agent's role and the promotion that made it (or is making
// it).
type Role struct {
	Role  string `json:"role"`
	Epoch uint64 `json:"epoch"` // increases by one with every promotion
	// The promotion (absent in the standby role before any promotion).
	Step      string          `json:"step,omitempty"`
	StartedAt time.Time       `json:"started_at,omitempty"`
	UpdatedAt time.Time       `json:"updated_at,omitempty"`
	Reason    string          `json:"reason,omitempty"` // why it was decided
	Forced    bool            `json:"forced,omitempty"` // promote --force: loss not excluded
	By        string          `json:"by,omitempty"`     // who asked (automatic: "detector")
	OldMaster binlog.Identity `json:"old_master"`       // the master it was promoted over
	OldAddr   string          `json:"old_addr,omitempty"`
	// Target is the safe frontier the drain applied up to (after
	// StepDrained): the end of the last whole transaction received.
	Target string `json:"target,omitempty"`
	// Rejoined says which old master rejoined as a replica of this epoch's
	// master, when, and at which GTID (set by `hotstandby rejoin`).
	Rejoined string `json:"rejoined,omitempty"`
}

// ErrRoleBackwards means a role change that would undo a promotion: a
// promoted agent never becomes a standby of the old master again by itself.
var ErrRoleBackwards = errors.New("checkpoint: a promotion cannot be undone")

// stepOrder ranks the steps for the never-backwards check.
var stepOrder = map[string]int{"": 0, StepStarted: 1, StepStreamEnd: 2, StepDrained: 3, StepFenced: 4, StepWritable: 5, StepDone: 6}

// LoadRole returns the stored role (RoleStandby, epoch 0, when none).
func (s *Store) LoadRole() (Role, error) {
	r := Role{Role: RoleStandby}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		if b == nil {
			return nil
		}
		if v := b.Get(keyRole); v != nil {
			return json.Unmarshal(v, &r)
		}
		return nil
	})
	if err != nil {
		return Role{}, fmt.Errorf("checkpoint: role: %w", err)
	}
	return r, nil
}

// SaveRole records r. Within one epoch a promotion only moves forward
// (standby → promoting → master, its steps in order); a new epoch must be
// the next one. Anything else is ErrRoleBackwards.
func (s *Store) SaveRole(r Role) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		old := Role{Role: RoleStandby}
		if v := b.Get(keyRole); v != nil {
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("checkpoint: stored role: %w", err)
			}
		}
		switch {
		case r.Epoch < old.Epoch:
			return fmt.Errorf("%w: epoch %d is older than the stored %d", ErrRoleBackwards, r.Epoch, old.Epoch)
		case r.Epoch > old.Epoch+1:
			return fmt.Errorf("%w: epoch %d skips from %d", ErrRoleBackwards, r.Epoch, old.Epoch)
		case r.Epoch == old.Epoch && old.Role == RoleMaster && r.Role != RoleMaster:
			return fmt.Errorf("%w: epoch %d is promoted; role %s refused", ErrRoleBackwards, r.Epoch, r.Role)
		case r.Epoch == old.Epoch && old.Role == RolePromoting && r.Role == RoleStandby:
			return fmt.Errorf("%w: the promotion of epoch %d has started; it can only finish", ErrRoleBackwards, r.Epoch)
		case r.Epoch == old.Epoch && stepOrder[r.Step] < stepOrder[old.Step]:
			return fmt.Errorf("%w: step %s comes before the recorded %s", ErrRoleBackwards, r.Step, old.Step)
		}
		v, _ := json.Marshal(r)
		return b.Put(keyRole, v)
	})
}
