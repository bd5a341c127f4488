package failover

import (
	"strings"
	"testing"
)

// TestWitnessGetsNoSecrets: the witness runs without the daemon's
// HOTSTANDBY_ variables (the passwords among them), as the hooks do; the
// rest of the environment (PATH) it keeps.
func TestWitnessGetsNoSecrets(t *testing.T) {
	t.Setenv("HOTSTANDBY_MASTER_PASSWORD", "Sup3rS3cret")
	t.Setenv("HOTSTANDBY_STANDBY_PASSWORD", "St4ndbyS3cret")
	cfg := testDetectConfig()
	// Exit 0 (agree) only when no HOTSTANDBY_ variable reached it; print
	// what did.
	cfg.Witness = []string{"sh", "-c", `env | grep '^HOTSTANDBY_' | tr '\n' ' '; test -n "$PATH" || exit 2; env | grep -q '^HOTSTANDBY_' && exit 1; echo clean; exit 0`}
	s := &fakeStream{}
	s.set(true, "connection reset")
	r := startDetector(t, cfg, newFakeProber(always(refused)), s)
	waitFor(t, "the witness to answer", func() bool { return r.d.View().Witness != "" })
	if w := r.d.View().Witness; !strings.Contains(w, "witness agreed (exit 0): clean") || strings.Contains(w, "S3cret") {
		t.Fatalf("witness answer %q: want it run without the HOTSTANDBY_ variables", w)
	}
}
