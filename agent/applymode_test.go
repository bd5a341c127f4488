package agent

import (
	"testing"

	"github.com/hotstandby/hotstandby/applier"
)

// directApplier is the applier of an agent in apply mode direct; the test
// fails in any other mode.
func directApplier(t *testing.T, a *Agent) *applier.Applier {
	t.Helper()
	m, ok := a.mode.(*directMode)
	if !ok {
		t.Fatalf("the agent's apply mode is %T; this test needs apply mode direct (withStandbyMode(ModeDirect))", a.mode)
	}
	return m.ap
}
