package agent

import (
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// AppliedHint is the applied frontier saved in the checkpoint store, nil when
// unknown (never applied, no standby, or the daemon holds the store).
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
	if err != nil || st.Applied.Segment == 0 {
		return nil
	}
	return &st.Applied
}
