package agent

import (
	"context"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
)

// masterSeq is the sequence number of the master's gtid_binlog_pos in
// domain 0 (the only domain these tests write).
func masterSeq(t *testing.T, e *testEnv) uint64 {
	t.Helper()
	g, err := binlog.ParseGTIDSet(binlog.MariaDB, query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range g.MariaDBGTIDs() {
		if x.Domain == 0 {
			return x.Seq
		}
	}
	return 0
}

// TestReplicaModeTransactionsApplied: in replica mode status's
// applier.transactions_applied counts the transactions the standby applied
// since the daemon started: the whole history for an empty standby; after
// a restart of the agent only the new ones, not the ones applied before.
func TestReplicaModeTransactionsApplied(t *testing.T) {
	e := newEnv(t)
	standby := e.withReplicaStandby()
	p := e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	ctx := context.Background()
	applied := func(what string) uint64 {
		t.Helper()
		rep, err := status.Get(ctx, e.config().StatusSource())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Daemon != "running" || rep.Applier == nil || rep.Applier.Transactions == nil {
			t.Fatalf("%s: status from a %s daemon, applier %+v: no transactions_applied", what, rep.Daemon, rep.Applier)
		}
		return *rep.Applier.Transactions
	}
	for i := range 7 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", i)
	}
	e.waitApplied(standby, 60*time.Second)
	// The standby started empty: it applied the master's whole history.
	if got, want := applied("first run"), masterSeq(t, e); got != want {
		t.Fatalf("first run: transactions_applied %d, want %d (the master's gtid_binlog_pos %s)", got, want,
			query(t, e.master, "SELECT @@GLOBAL.gtid_binlog_pos"))
	}
	must(t, p.stop())

	before := masterSeq(t, e)
	p = e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	for i := range 5 {
		e.exec("INSERT INTO test.t (c) VALUES (?)", 10+i)
	}
	e.waitApplied(standby, 60*time.Second)
	if got, want := applied("second run"), masterSeq(t, e)-before; got != want {
		t.Fatalf("second run: transactions_applied %d, want %d (committed on the master since the agent started)", got, want)
	}
	must(t, p.stop())
	assertSameRows(t, e.master, standby, 12)
}
