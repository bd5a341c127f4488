package checkpoint

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	keySemiSyncProof  = []byte("semisync_proof")
	keySemiSyncBreach = []byte("semisync_breach")
)

// SemiSyncProof is the last moment at which the agent proved that every
// commit on the master since the previous proof waited for the agent's ACK:
// the master reported Rpl_semi_sync_master_status=ON with the AFTER_SYNC
// wait point and the agent as its only semi-sync replica
// (Rpl_semi_sync_master_clients=1), and its counters of commits that did
// not wait (Rpl_semi_sync_master_no_tx) and of fallbacks to asynchronous
// replication (Rpl_semi_sync_master_no_times) had not moved since the
// previous sample. A promotion relies on it after a restart.
type SemiSyncProof struct {
	At      time.Time `json:"at"`
	NoTx    uint64    `json:"no_tx"`    // Rpl_semi_sync_master_no_tx at At
	NoTimes uint64    `json:"no_times"` // Rpl_semi_sync_master_no_times at At
	// Timeout is the master's rpl_semi_sync_master_timeout at At: the
	// shortest time after the agent stopped acknowledging at which the
	// master can fall back to asynchronous commits.
	Timeout time.Duration `json:"timeout_ns"`
}

// SemiSyncBreach is the last time the proof failed, and why, in one line a
// person reads ("master fell back to async at 12:03:04, 37 commits without
// ACK"). A breach is never cleared by a later proof: a later proof covers
// only the commits after it.
type SemiSyncBreach struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

// SaveSemiSyncProof records p; a proof older than the stored one is ignored
// (the proof never moves backwards).
func (s *Store) SaveSemiSyncProof(p SemiSyncProof) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		var old SemiSyncProof
		if v := b.Get(keySemiSyncProof); v != nil && json.Unmarshal(v, &old) == nil && old.At.After(p.At) {
			return nil
		}
		v, _ := json.Marshal(p)
		return b.Put(keySemiSyncProof, v)
	})
}

// SaveSemiSyncBreach records the latest breach.
func (s *Store) SaveSemiSyncBreach(b SemiSyncBreach) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		v, _ := json.Marshal(b)
		return tx.Bucket(bucketMaster).Put(keySemiSyncBreach, v)
	})
}

// SemiSync returns the stored proof and breach (nil when there is none).
func (s *Store) SemiSync() (*SemiSyncProof, *SemiSyncBreach, error) {
	var proof *SemiSyncProof
	var breach *SemiSyncBreach
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		if b == nil {
			return nil
		}
		if v := b.Get(keySemiSyncProof); v != nil {
			proof = new(SemiSyncProof)
			if err := json.Unmarshal(v, proof); err != nil {
				return fmt.Errorf("semi-sync proof: %w", err)
			}
		}
		if v := b.Get(keySemiSyncBreach); v != nil {
			breach = new(SemiSyncBreach)
			if err := json.Unmarshal(v, breach); err != nil {
				return fmt.Errorf("semi-sync breach: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint: %w", err)
	}
	return proof, breach, nil
}
