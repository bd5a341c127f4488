package binlogserver

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/sandbox"
)

// newReplicaWith is newReplica with extra my.cnf lines for the replica.
func (f *relayFixture) newReplicaWith(t *testing.T, name string, id uint32, extra []string, change string) *sandbox.Server {
	t.Helper()
	return f.newReplicaAt(t, name, id, extra, f.port(), change)
}

// newReplicaAt is newReplicaWith against another port (a proxy).
func (f *relayFixture) newReplicaAt(t *testing.T, name string, id uint32, extra []string, port int, change string) *sandbox.Server {
	t.Helper()
	r, err := sandbox.Start(context.Background(), sandbox.Config{Dir: filepath.Join(f.dir, name), ServerID: id, Log: t.Logf, Extra: extra})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s error log (tail):\n%s", name, r.ErrorLogTail(20))
		}
		_ = r.Stop(context.Background())
	})
	q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='downstream', MASTER_PASSWORD='%s', "+
		"MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.2, %s", port, f.pw, change)
	for _, q := range []string{q, "START SLAVE"} {
		if err := r.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// TestSemiSyncReplica: a stock MariaDB replica with
// rpl_semi_sync_slave_enabled=ON replicates from the binlog server in
// semi-sync (its Rpl_semi_sync_slave_status is ON), ACKs every transaction,
// and the server counts the ACKs and knows the last position ACKed; a
// replica without semi-sync beside it gets the plain stream and sends no
// ACK. (Before, the semi-sync replica stopped on the first event: "Missing
// magic number for semi-sync packet", error 1593.)
func TestSemiSyncReplica(t *testing.T) {
	f := newRelayFixture(t, 2, 300)
	end := len(f.ends)
	f.durableAt(end)
	start := fmt.Sprintf("MASTER_LOG_FILE='%s', MASTER_LOG_POS=4, MASTER_USE_GTID=no", f.files[0])
	semi := f.newReplicaWith(t, "semi", 2, []string{"rpl_semi_sync_slave_enabled=ON"}, start)
	plain := f.newReplicaWith(t, "plain", 3, nil, start)
	waitRead(t, semi, "the semi-sync replica", f.ends[end-1].pos)
	waitRead(t, plain, "the plain replica", f.ends[end-1].pos)
	if got, want := rowsOf(t, semi), rowsOf(t, f.source); got != want {
		t.Fatalf("semi-sync replica has %s, the source %s", got, want)
	}
	if v, err := semi.Status(context.Background(), "Rpl_semi_sync_slave_status"); err != nil || v != "ON" {
		t.Fatalf("the replica's Rpl_semi_sync_slave_status is %q (%v): it fell back to async", v, err)
	}
	var on, off Replica
	for _, r := range f.srv.Replicas() {
		switch r.ServerID {
		case 2:
			on = r
		case 3:
			off = r
		}
	}
	// Every transaction ends with an ACK request: the 600 inserts and the
	// CREATE DATABASE and CREATE TABLE groups.
	if !on.SemiSync || on.Acks < uint64(end) || on.Acked != f.ends[end-1].pos {
		t.Fatalf("semi-sync replica in the registry: %+v, want semi-sync with >= %d ACKs up to %s", on, end, f.ends[end-1].pos)
	}
	if off.SemiSync || off.Acks != 0 {
		t.Fatalf("plain replica in the registry: %+v", off)
	}
	if st := f.srv.Stats(); st.Acks != on.Acks || st.SemiSyncReplicas != 1 {
		t.Fatalf("stats %+v, want %d ACKs from 1 semi-sync replica", st, on.Acks)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.srv.WaitAcked(ctx, 2, f.ends[end-1].pos); err != nil {
		t.Fatalf("WaitAcked for the last position: %v", err)
	}
}

// syncedEvent is what a BinlogSyncer client saw of one event.
type syncedEvent struct {
	Type    replication.EventType
	LogPos  uint32
	Flags   uint16
	Rotate  string // a Rotate's next file and position
	RawBody string
}

// syncEvents reads events with go-mysql's BinlogSyncer from addr, starting at
// file:4, until the event that ends at until. Heartbeats are left out.
// Before it disconnects it calls after (nil: nothing).
func syncEvents(t *testing.T, port int, user, pw string, semi bool, file string, until binlog.FilePos, after func()) []syncedEvent {
	t.Helper()
	s := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: 4000 + uint32(port%1000), Flavor: mysql.MariaDBFlavor, Host: "127.0.0.1", Port: uint16(port),
		User: user, Password: pw, SemiSyncEnabled: semi, HeartbeatPeriod: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxReconnectAttempts: 1, DisableRetrySync: true,
	})
	defer s.Close()
	st, err := s.StartSync(mysql.Position{Name: file, Pos: 4})
	if err != nil {
		t.Fatalf("BinlogSyncer (semi-sync %v) from port %d: %v", semi, port, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []syncedEvent
	cur := file
	for {
		ev, err := st.GetEvent(ctx)
		if err != nil {
			t.Fatalf("BinlogSyncer (semi-sync %v) from port %d after %d events: %v", semi, port, len(out), err)
		}
		h := ev.Header
		if h.EventType == replication.HEARTBEAT_EVENT {
			continue
		}
		e := syncedEvent{Type: h.EventType, LogPos: h.LogPos, Flags: h.Flags, RawBody: string(ev.RawData[replication.EventHeaderSize:])}
		if r, ok := ev.Event.(*replication.RotateEvent); ok {
			e.Rotate = string(r.NextLogName) + ":" + strconv.FormatUint(r.Position, 10)
			cur = string(r.NextLogName)
		}
		if h.Flags&binlog.FlagArtificial != 0 && len(e.RawBody) >= 4 {
			// An artificial event carries the server's own server_id
			// (by design not the master's): its CRC32 differs.
			e.RawBody = e.RawBody[:len(e.RawBody)-4]
		}
		if h.EventType == replication.FORMAT_DESCRIPTION_EVENT {
			e.RawBody = "" // created and the in-use flag differ by design (log_pos 0 from both)
		}
		out = append(out, e)
		if cur == until.File && uint64(h.LogPos) == until.Pos {
			if after != nil {
				after()
			}
			return out
		}
	}
}

// TestBinlogSyncerClients: go-mysql's BinlogSyncer, the library CDC tools
// are built on, reads from the binlog server exactly the events it reads
// from the master (the rotates naming the same files), without semi-sync
// and with it; with it, it asks for semi-sync (the master is asked
// SHOW VARIABLES WHERE Variable_name IN (...)), gets it, and its ACKs name
// the master's files and reach the end.
func TestBinlogSyncerClients(t *testing.T) {
	f := newRelayFixture(t, 2, 200)
	end := f.ends[len(f.ends)-1].pos
	f.durableAt(len(f.ends))
	if err := f.source.CreateUser(context.Background(), "repl", f.pw, "REPLICATION SLAVE, REPLICATION CLIENT"); err != nil {
		t.Fatal(err)
	}
	fromMaster := syncEvents(t, f.source.Port(), "repl", f.pw, false, f.files[0], end, nil)
	if len(fromMaster) < 400 {
		t.Fatalf("only %d events from the master", len(fromMaster))
	}
	for _, semi := range []bool{false, true} {
		t.Run(fmt.Sprintf("semisync=%v", semi), func(t *testing.T) {
			var ackErr error
			got := syncEvents(t, f.port(), "downstream", f.pw, semi, f.files[0], end, func() {
				if semi {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					ackErr = f.srv.WaitAcked(ctx, 4000+uint32(f.port()%1000), end)
				}
			})
			for i := range min(len(got), len(fromMaster)) {
				if got[i] != fromMaster[i] {
					t.Fatalf("event %d differs:\nmaster: %+v\nagent:  %+v", i, trim(fromMaster[i]), trim(got[i]))
				}
			}
			if len(got) != len(fromMaster) {
				t.Fatalf("%d events from the master, %d from the binlog server", len(fromMaster), len(got))
			}
			if ackErr != nil {
				t.Fatalf("BinlogSyncer's ACKs: %v (stats %+v)", ackErr, f.srv.Stats())
			}
		})
	}
}

func trim(e syncedEvent) syncedEvent {
	if len(e.RawBody) > 40 {
		e.RawBody = fmt.Sprintf("%q...", e.RawBody[:40])
	}
	return e
}

// TestSemiSyncNeverAckedStreamsOn: a client that asks for semi-sync and
// never ACKs still gets every event up to the durable end (the stream
// never waits for an ACK), each with the semi-sync header; exactly the
// event that ends each transaction (the XID of the inserts, the Query of
// the two DDL) asks for an ACK, and the packet after it is numbered 1, as
// a MariaDB master numbers it.
func TestSemiSyncNeverAckedStreamsOn(t *testing.T) {
	f := newRelayFixture(t, 2, 100)
	end := f.ends[len(f.ends)-1].pos
	f.durableAt(len(f.ends))
	c, err := client.Connect(f.srv.Addr(), "downstream", f.pw, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, q := range []string{"SET @master_binlog_checksum= @@global.binlog_checksum", "SET @rpl_semi_sync_slave= 1"} {
		if _, err := c.Execute(q); err != nil {
			t.Fatal(err)
		}
	}
	dump := binary.LittleEndian.AppendUint32([]byte{mysql.COM_BINLOG_DUMP}, 4)
	dump = binary.LittleEndian.AppendUint16(dump, 0)
	dump = binary.LittleEndian.AppendUint32(dump, 77)
	dump = append(dump, f.files[0]...)
	c.ResetSequence()
	if err := c.WritePacket(append(make([]byte, 4), dump...)); err != nil {
		t.Fatal(err)
	}
	_ = c.Conn.Conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	file, acks, groups := f.files[0], 0, 0
	inGroup := false
	for {
		p, err := c.ReadPacket()
		if err != nil {
			t.Fatalf("after %d ACK requests: %v", acks, err)
		}
		if len(p) < 3+19 || p[0] != 0 || p[1] != semiSyncMagic {
			t.Fatalf("packet %x...: no semi-sync header", p[:min(len(p), 8)])
		}
		ev := p[3:]
		h, err := binlog.ParseHeader(ev)
		if err != nil {
			t.Fatal(err)
		}
		ends := false
		switch h.Type {
		case binlog.MariaGTIDEvent:
			inGroup = true
		case binlog.XIDEvent, binlog.QueryEvent:
			// ROW format: BEGIN is in the GTID event, so a Query inside a
			// group is a DDL, the group's only event.
			if inGroup {
				ends, inGroup = true, false
				groups++
			}
		case binlog.RotateEvent:
			if h.Flags&binlog.FlagArtificial != 0 {
				body := ev[binlog.HeaderLen+8 : len(ev)-4]
				file = string(body)
			}
		}
		if ack := p[2] == semiSyncNeedAck; ack != ends {
			t.Fatalf("event type %d ending at %d: ACK request %v, want %v", h.Type, h.LogPos, ack, ends)
		}
		if ends {
			acks++
			c.Sequence = 1 // what the next packet must carry
		}
		if file == end.File && uint64(h.LogPos) == end.Pos {
			break
		}
	}
	if acks != len(f.ends)+2 || acks != groups {
		t.Fatalf("%d ACK requests for %d transactions", acks, groups)
	}
	if st := f.srv.Stats(); st.Acks != 0 || st.SemiSyncReplicas != 1 {
		t.Fatalf("stats %+v: want one semi-sync replica and no ACK", st)
	}
}
