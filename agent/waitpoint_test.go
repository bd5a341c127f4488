package agent

import (
	"context"
	"database/sql"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/status"
)

// TestWaitPointWhatEachLoses shows, on real servers, why the agent asks for
// rpl_semi_sync_master_wait_point=AFTER_SYNC and not AFTER_COMMIT (which
// some tools advise for its lower latency). A commit waits for the agent's
// ACK; the agent is frozen and then killed, so it never receives the
// transaction; the master is killed while the commit still waits.
//
//   - AFTER_COMMIT: the master commits in InnoDB first and waits after. While
//     the committing client still waits, every other client already reads
//     the row; after the failover it is gone from the new master. A read
//     that was served, and perhaps acted upon, is lost.
//   - AFTER_SYNC: the master waits after writing its binlog and before the
//     engine commit. Nobody reads the row before the ACK; the only client
//     that knew of it never got OK. Nothing anyone saw is lost (the rejoin
//     of the old master deals with the unacknowledged tail it still holds).
//
// Both lose no commit that returned OK to its own client: the difference is
// what everybody else saw.
func TestWaitPointWhatEachLoses(t *testing.T) {
	for _, tc := range []struct {
		point      string
		readerSees bool // another client reads the waiting commit's row
	}{
		{point: "AFTER_SYNC", readerSees: false},
		{point: "AFTER_COMMIT", readerSees: true},
	} {
		t.Run(tc.point, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.exec("CREATE TABLE test.w (id INT PRIMARY KEY, v VARCHAR(20))")
			e.exec("SET GLOBAL rpl_semi_sync_master_wait_point = " + tc.point)
			p := e.startProcess()
			e.waitSemiSyncClient()
			e.exec("INSERT INTO test.w VALUES (1, 'acked')")
			want := e.masterPos()
			harness.WaitFor(t, "the agent to hold the first row", 30*time.Second, func() bool {
				rep, err := status.Get(ctx, e.config().StatusSource())
				return err == nil && rep.Received.Pos != nil && rep.Received.File == want.File && *rep.Received.Pos >= want.Pos
			})
			before, err := e.master.QueryString(ctx, "SELECT @@gtid_binlog_pos")
			if err != nil {
				t.Fatal(err)
			}

			// Freeze the agent: it reads nothing more, ACKs nothing more.
			if err := p.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			writer, err := sql.Open("mysql", e.master.RootDSN("test"))
			if err != nil {
				t.Fatal(err)
			}
			defer writer.Close()
			okd := make(chan error, 1)
			go func() {
				_, err := writer.Exec("INSERT INTO test.w VALUES (2, 'waiting')")
				okd <- err
			}()
			harness.WaitFor(t, "the commit to wait for the agent's ACK", 30*time.Second, func() bool {
				return e.status("Rpl_semi_sync_master_wait_sessions") >= 1
			})
			var seen int
			if err := e.master.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM test.w WHERE id = 2").Scan(&seen); err != nil {
				t.Fatal(err)
			}
			if got := seen == 1; got != tc.readerSees {
				t.Fatalf("%s: another client reads the waiting commit's row: %v, want %v", tc.point, got, tc.readerSees)
			}

			// The agent dies without having read it, then the master dies.
			p.kill()
			if err := e.master.Kill(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-okd:
				if err == nil {
					t.Fatalf("%s: the waiting commit returned OK although nobody acknowledged it", tc.point)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the waiting client did not notice the master's death")
			}
			c := e.config()
			st, err := checkpointState(c)
			if err != nil {
				t.Fatal(err)
			}
			w, end, err := relay.Open(relay.DefaultConfig(c.RelayDir()), st.Received)
			if err != nil {
				t.Fatalf("relay recovery: %v", err)
			}
			w.Close()
			recv := end.Pos.GTID
			had, err := binlog.ParseGTIDSet(binlog.MariaDB, before)
			if err != nil {
				t.Fatal(err)
			}
			if !recv.Equal(had) {
				t.Fatalf("the agent's relay log ends at %s, want exactly the state before the frozen commit, %s", recv, had)
			}
			if tc.readerSees {
				t.Logf("%s: a row other clients read (id 2) is on no standby: a failover now loses it", tc.point)
			} else {
				t.Logf("%s: the row nobody acknowledged was never visible; nothing anyone read is lost", tc.point)
			}
		})
	}
}
