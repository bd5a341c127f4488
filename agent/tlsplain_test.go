package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
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

// TestTLSPreferredEncryptedStandbyReplicaMode: the same with a standby that
// offers TLS: the connection is encrypted and status says so (the question
// asked on each connection does not mistake it for a plain one).
func TestTLSPreferredEncryptedStandbyReplicaMode(t *testing.T) {
	e := newEnv(t)
	c := newTLSCerts(t)
	ctx := context.Background()
	standby, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(e.dir, "s"), ServerID: 2, Log: t.Logf,
		TLS: &sandbox.TLSConfig{CA: c.ca.File, Cert: c.standby.Cert, Key: c.standby.Key}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Stop(context.Background()) })
	must(t, standby.CreateUser(ctx, "applier", e.password, "ALL PRIVILEGES"))
	cfg := strings.Replace(readFile(t, e.cfgPath), `start = "current"`, `start = "file:mysql-bin.000001:4"`, 1)
	cfg += fmt.Sprintf(`
[standby]
host = "127.0.0.1"
port = %d
user = "applier"
password_file = %q
mode = "replica"
parallel_threads = 4
`, standby.Port(), filepath.Join(e.dir, "master.pw"))
	writeFile(t, e.cfgPath, cfg)
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (1)")
	e.waitApplied(standby, 60*time.Second)
	rep, err := status.Get(ctx, e.config().StatusSource())
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range rep.TLS {
		if r.Connection == "standby applier" {
			found = true
			if r.Mode != "preferred" || !r.Seen || !r.Encrypted || r.Version == "" {
				t.Fatalf("standby connection as status reports it: %+v; want preferred, seen, encrypted", r)
			}
		}
	}
	if !found {
		t.Fatalf("status names no standby applier connection: %+v", rep.TLS)
	}
	must(t, p.stop())
}
