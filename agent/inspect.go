package agent

import (
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// AppliedHint is the applied frontier saved in the checkpoint store, nil when
// unknown (never applied, no standby, or the daemon holds the store). In
// replica mode the record holds only the standby's gtid_slave_pos (no relay
// segment): relay.List then judges segments by their GTIDs.
func AppliedHint(cfg Config) *relay.Frontier {
	if !cfg.Standby.Enabled() {
		return nil
	}
	store, err := checkpoint.Open(cfg.CheckpointPath(), true)
	if err != nil {
		return nil // running (locked) or never run
	}
	defer store.Close()
	st, err := store.Load()
	if err != nil || (st.Applied.Segment == 0 && st.Applied.Pos.GTID.IsZero()) {
		return nil
	}
	return &st.Applied
}
