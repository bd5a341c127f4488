package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket and key names.
var (
	bucketFrontiers = []byte("frontiers")
	bucketMaster    = []byte("master")
	bucketAudit     = []byte("audit")
	keyReceived     = []byte("received")
	keyAcked        = []byte("acked")
	keyApplied      = []byte("applied")
	keyIdentity     = []byte("identity")
)

// State is everything the store holds but the audit log.
type State struct {
	// Received is the end of the last whole transaction durable in the relay
	// log (as of the last checkpoint), with its place in the relay log.
	Received relay.Frontier
	// Acked is the last position sent in a semi-sync ACK (as of the last
	// checkpoint).
	Acked binlog.FilePos
	// Applied mirrors the standby's applied frontier (the standby's own GTID
	// state is the truth) with its place in the relay log.
	Applied relay.Frontier
	// Identity is the master the positions belong to; nil before the first
	// connection.
	Identity *binlog.Identity
	// UpdatedAt is when the frontiers were last written.
	UpdatedAt time.Time
}

// Store is the bbolt-backed checkpoint store.
type Store struct {
	db *bolt.DB
}

// Open opens (creating 0600, in a 0700 directory) the store at path. With
// readOnly it takes a shared lock and fails fast with ErrLocked if the
// daemon holds the file.
func Open(path string, readOnly bool) (*Store, error) {
	if !readOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("checkpoint: create dir for %s: %w", path, err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 500 * time.Millisecond, ReadOnly: readOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("checkpoint: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if !readOnly {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketFrontiers, bucketMaster, bucketAudit} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("checkpoint: init %s: %w", path, err)
		}
	}
	return s, nil
}

// Close closes the store.
func (s *Store) Close() error { return s.db.Close() }

type frontierJSON struct {
	Segment  uint64 `json:"segment"`
	Offset   int64  `json:"offset"`
	Position string `json:"position"`
	Updated  int64  `json:"updated_unix_nano"`
}

// Load reads the stored state. A new store gives the zero State.
func (s *Store) Load() (State, error) {
	var st State
	err := s.db.View(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bucketFrontiers)
		if fb == nil {
			return nil
		}
		var err error
		if st.Received, st.UpdatedAt, err = getFrontierTx(fb, keyReceived); err != nil {
			return err
		}
		if v := fb.Get(keyAcked); v != nil {
			p, err := binlog.ParseFilePos(string(v))
			if err != nil {
				return fmt.Errorf("acked frontier: %w", err)
			}
			st.Acked = p
		}
		if st.Applied, _, err = getFrontierTx(fb, keyApplied); err != nil {
			return err
		}
		if v := tx.Bucket(bucketMaster).Get(keyIdentity); v != nil {
			var id binlog.Identity
			if err := json.Unmarshal(v, &id); err != nil {
				return fmt.Errorf("master identity: %w", err)
			}
			st.Identity = &id
		}
		return nil
	})
	if err != nil {
		return State{}, fmt.Errorf("checkpoint: load: %w", err)
	}
	return st, nil
}

// SaveFrontiers records the received frontier and the acked position in one
// transaction. Either may be zero (left as it is). Neither may move
// backwards.
func (s *Store) SaveFrontiers(received relay.Frontier, acked binlog.FilePos, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bucketFrontiers)
		old, err := loadFilePosTx(fb)
		if err != nil {
			return err
		}
		if !received.Pos.FilePos.IsZero() || !received.Pos.GTID.IsZero() {
			// A GTID start has no file position yet; once one is stored,
			// it may not move backwards.
			if !old.received.IsZero() {
				if err := notBackwards("received", old.received, received.Pos.FilePos); err != nil {
					return err
				}
			}
			if err := putFrontierTx(fb, keyReceived, received, now); err != nil {
				return err
			}
		}
		if !acked.IsZero() {
			if err := notBackwards("acked", old.acked, acked); err != nil {
				return err
			}
			if err := fb.Put(keyAcked, []byte(acked.String())); err != nil {
				return err
			}
		}
		return nil
	})
}

// SaveApplied records the applied frontier mirror. It may not move
// backwards.
func (s *Store) SaveApplied(applied relay.Frontier, now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bucketFrontiers)
		old, _, err := getFrontierTx(fb, keyApplied)
		if err != nil {
			return err
		}
		if !old.Pos.FilePos.IsZero() && !applied.Pos.FilePos.IsZero() {
			if err := notBackwards("applied", old.Pos.FilePos, applied.Pos.FilePos); err != nil {
				return err
			}
		}
		return putFrontierTx(fb, keyApplied, applied, now)
	})
}

// getFrontierTx decodes the frontier stored under key, and when it was
// written; a missing key gives the zero Frontier. The caller holds a
// transaction on fb.
func getFrontierTx(fb *bolt.Bucket, key []byte) (relay.Frontier, time.Time, error) {
	v := fb.Get(key)
	if v == nil {
		return relay.Frontier{}, time.Time{}, nil
	}
	var fj frontierJSON
	if err := json.Unmarshal(v, &fj); err != nil {
		return relay.Frontier{}, time.Time{}, fmt.Errorf("checkpoint: stored %s frontier: %w", key, err)
	}
	pos, err := binlog.DecodePosition(fj.Position)
	if err != nil {
		return relay.Frontier{}, time.Time{}, fmt.Errorf("checkpoint: stored %s frontier: %w", key, err)
	}
	return relay.Frontier{Segment: fj.Segment, Offset: fj.Offset, Pos: pos}, time.Unix(0, fj.Updated), nil
}

// putFrontierTx stores f under key; the caller holds a write transaction.
func putFrontierTx(fb *bolt.Bucket, key []byte, f relay.Frontier, now time.Time) error {
	v, _ := json.Marshal(frontierJSON{Segment: f.Segment, Offset: f.Offset, Position: f.Pos.Encode(), Updated: now.UnixNano()})
	return fb.Put(key, v)
}

type storedPositions struct{ received, acked binlog.FilePos }

// loadFilePosTx reads the stored file positions; the caller holds tx.
func loadFilePosTx(fb *bolt.Bucket) (storedPositions, error) {
	var out storedPositions
	received, _, err := getFrontierTx(fb, keyReceived)
	if err != nil {
		return out, err
	}
	out.received = received.Pos.FilePos
	if v := fb.Get(keyAcked); v != nil {
		p, err := binlog.ParseFilePos(string(v))
		if err != nil {
			return out, err
		}
		out.acked = p
	}
	return out, nil
}

func notBackwards(name string, old, next binlog.FilePos) error {
	ok, err := next.AtLeast(old)
	if err != nil {
		return fmt.Errorf("checkpoint: %s frontier %s vs stored %s: %w", name, next, old, err)
	}
	if !ok {
		return fmt.Errorf("%w: %s %s is before stored %s", ErrBackwards, name, next, old)
	}
	return nil
}

// CheckIdentity stores id on first use and afterwards refuses any other
// master with ErrIdentityChanged.
func (s *Store) CheckIdentity(id binlog.Identity) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMaster)
		if v := b.Get(keyIdentity); v != nil {
			var old binlog.Identity
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("checkpoint: stored master identity: %w", err)
			}
			if old.ServerID != id.ServerID || old.Flavor != id.Flavor || old.ServerUUID != id.ServerUUID {
				return fmt.Errorf("%w: positions belong to %s, the configured master is %s; move the data_dir away to start over", ErrIdentityChanged, old, id)
			}
			return nil
		}
		v, _ := json.Marshal(id)
		return b.Put(keyIdentity, v)
	})
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Kind string    `json:"kind"`
	Text string    `json:"text"`
	// By is who asked, as the kernel identified them on the control socket
	// ("uid 1000 (alice) pid 4242"); "" for entries the daemon wrote on its
	// own, and for entries written before the field existed.
	By string `json:"by,omitempty"`
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(kind, text string, at time.Time) error {
	return s.AuditBy(kind, "", text, at)
}

// AuditBy appends an entry to the audit log on behalf of by (AuditEntry.By).
func (s *Store) AuditBy(kind, by, text string, at time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, _ := b.NextSequence()
		v, _ := json.Marshal(AuditEntry{Seq: seq, At: at, Kind: kind, Text: text, By: by})
		return b.Put(binary.BigEndian.AppendUint64(nil, seq), v)
	})
}

// AuditLog returns the audit log, oldest first.
func (s *Store) AuditLog() ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, v []byte) error {
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	return out, err
}
