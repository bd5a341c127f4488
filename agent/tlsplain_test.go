package agent

import (
	"context"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// TestTLSPreferredPlainStandbyReplicaMode: with tls = "preferred" (the
// loopback default) and a standby without TLS, go-sql-driver falls back to
// plain text without a word; in replica mode status still says the truth
// about the agent's standby connection: seen, and NOT encrypted.
func TestTLSPreferredPlainStandbyReplicaMode(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	if v := query(t, standby, "SELECT @@have_ssl"); v == "YES" {
		t.Fatalf("the sandbox standby offers TLS (have_ssl %s): this test needs one without", v)
	}
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.waitApplied(standby, 60*time.Second)
	rep, err := status.Get(context.Background(), e.config().StatusSource())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range rep.TLS {
		if r.Connection != "standby applier" {
			continue
		}
		found = true
		if r.Mode != "preferred" || !r.Seen || r.Encrypted || r.Version != "" {
			t.Fatalf("standby connection as status reports it: %+v; want preferred, seen, not encrypted", r)
		}
	}
	if !found {
		t.Fatalf("status names no standby applier connection: %+v", rep.TLS)
	}
	must(t, p.stop())
}
