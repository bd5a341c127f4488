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

// Promotion steps, in order. Each is recorded when it is done. The old
// master is isolated (fenced, shot, or found unreachable) while the stream
// still runs, before anything else changes: its clients' commits keep
// being acknowledged until it stops taking them, and a promotion that
// cannot isolate an old master that answers is aborted with nothing but
// the record undone (AbortPromotion).
const (
	StepStarted = "started" // the decision, with its reason, is recorded; the stream still runs
	// StepIsolated: the old master is fenced (read_only verified, clients
	// killed) or shot by stonith, or answered neither; or an operator's
	// --force went past a fence that failed. The stream still runs.
	StepIsolated      = "isolated"
	StepStreamStopped = "stream-stopped" // the stream is stopped for good, after the isolation
	StepApplied       = "applied"        // every durable transaction is applied, after the isolation
	StepWritable      = "writable"       // the standby is writable, replication config removed
	StepDone          = "done"           // epoch recorded, hooks run
)

// Steps recorded by versions that drained before they fenced (before
// issue 16). Read, never written. A promotion recorded at one of them
// resumes safely: the fence is still to do at StepStreamEnd and
// StepDrained, and is done at StepFenced.
const (
	StepStreamEnd = "stream-end" // the stream stopped; the old master NOT fenced, nothing drained
	StepDrained   = "drained"    // drained; the old master NOT fenced
	StepFenced    = "fenced"     // drained and fenced: as StepApplied
)

// StreamStopped reports whether a promotion recorded at step has stopped
// the stream for good.
func StreamStopped(step string) bool {
	return step != "" && step != StepStarted && step != StepIsolated
}

// Drained reports whether a promotion recorded at step has drained the
// standby: the applier is stopped for good (direct mode), the standby's
// replication is ended (replica mode). Neither may run again.
func Drained(step string) bool {
	switch step {
	case StepApplied, StepWritable, StepDone, StepDrained, StepFenced:
		return true
	}
	return false
}

// Isolated reports whether a promotion recorded at step has isolated the
// old master (or was forced past it).
func Isolated(step string) bool {
	switch step {
	case "", StepStarted, StepStreamEnd, StepDrained:
		return false
	}
	return true
}

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
	// ForceAsked says the request carried --force: it overrides the gate
	// (Forced says whether it had to) and a fence that failed.
	ForceAsked bool `json:"force_asked,omitempty"`
	// Fence is what isolating the old master found and did (one line), once
	// StepIsolated is recorded.
	Fence string `json:"fence,omitempty"`
	// Aborted is the last aborted promotion (in the standby role): its
	// epoch, when, and why (AbortPromotion).
	Aborted string `json:"aborted,omitempty"`
	// Rejoined says which old master rejoined as a replica of this epoch's
	// master, when, and at which GTID (set by `hotstandby rejoin`).
	Rejoined string `json:"rejoined,omitempty"`
}

// ErrRoleBackwards means a role change that would undo a promotion: a
// promoted agent never becomes a standby of the old master again by itself.
var ErrRoleBackwards = errors.New("checkpoint: a promotion cannot be undone")

// stepOrder ranks the steps for the never-backwards check.
// Steps of the older order rank where their resume continues: a stored
// StepStreamEnd goes on to StepStreamStopped, StepDrained and StepFenced to
// StepApplied.
var stepOrder = map[string]int{"": 0, StepStarted: 1, StepIsolated: 2, StepStreamEnd: 2, StepStreamStopped: 3, StepDrained: 3,
	StepApplied: 4, StepFenced: 4, StepWritable: 5, StepDone: 6}

// ErrNotAbortable means AbortPromotion found no promotion it may undo.
var ErrNotAbortable = errors.New("checkpoint: the promotion cannot be aborted")

// AbortPromotion undoes the record of a promotion of epoch that has not
// gone past StepStarted (nothing was changed on the standby, the stream
// runs): the role is the standby of the epoch before again, with why
// recorded in Aborted. Any other stored role is ErrNotAbortable.
func (s *Store) AbortPromotion(epoch uint64, why string, at time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		var old Role
		if v := b.Get(keyRole); v == nil {
			return fmt.Errorf("%w: no promotion is recorded", ErrNotAbortable)
		} else if err := json.Unmarshal(v, &old); err != nil {
			return fmt.Errorf("checkpoint: stored role: %w", err)
		}
		if old.Role != RolePromoting || old.Epoch != epoch || old.Step != StepStarted || epoch == 0 {
			return fmt.Errorf("%w: the stored role is %s of epoch %d at step %q, not the promotion of epoch %d at %s",
				ErrNotAbortable, old.Role, old.Epoch, old.Step, epoch, StepStarted)
		}
		r := Role{Role: RoleStandby, Epoch: epoch - 1, UpdatedAt: at,
			Aborted: fmt.Sprintf("promotion to epoch %d (by %s, %s) aborted at %s: %s", epoch, old.By, old.Reason, at.UTC().Format(time.RFC3339), why)}
		v, _ := json.Marshal(r)
		return b.Put(keyRole, v)
	})
}

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
