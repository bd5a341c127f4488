package binlogserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
)

// These tests serve a relay log made of a real MariaDB server's closed
// binlog files (a binlog file is a valid relay segment: magic, format
// description, the events byte for byte) to real MariaDB replicas, with a
// durable frontier the test moves.

// movingSource is a durable frontier the test sets.
type movingSource struct {
	mu sync.Mutex // mu guards f
	f  relay.Frontier
}

func (s *movingSource) Durable() relay.Frontier {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f
}

func (s *movingSource) set(f relay.Frontier) {
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
}

// watchingSource is a movingSource that wakes the server when it moves
// (a Watcher, as the agent's receiver is): the server does not poll it.
type watchingSource struct {
	movingSource
	n relay.Notifier
}

func (s *watchingSource) DurableWatch() (relay.Frontier, <-chan struct{}) { return s.n.Watch() }

func (s *watchingSource) set(f relay.Frontier) {
	s.movingSource.set(f)
	s.n.Publish(f)
}

// settableSource is the frontier a fixture moves.
type settableSource interface {
	Source
	set(relay.Frontier)
}

// txnEnd is where one committed transaction ends in the source's binlog,
// and the id of the row it inserted.
type txnEnd struct {
	pos binlog.FilePos
	id  int
}

// relayFixture is a source server whose closed binlog files are the relay
// log, a binlog server over it, and the transaction ends in it.
type relayFixture struct {
	t      *testing.T
	dir    string // the test's base directory
	source *sandbox.Server
	relay  string
	files  []string // the master files, in order
	sizes  []int64
	ends   []txnEnd // every insert's commit, in order
	src    settableSource
	srv    *Server
	pw     string
}

// newRelayFixture commits files×perFile single-row inserts on a fresh
// server, in files binlog files, and serves them.
func newRelayFixture(t *testing.T, files, perFile int) *relayFixture {
	t.Helper()
	return newRelayFixtureSource(t, files, perFile, &watchingSource{})
}

// newRelayFixtureSource is newRelayFixture with the given source (a
// polled movingSource or a watchingSource).
func newRelayFixtureSource(t *testing.T, files, perFile int, src settableSource) *relayFixture {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test")
	}
	ctx := context.Background()
	base := t.TempDir()
	s := startSandbox(t, base, "source", 1)
	for _, q := range []string{
		"RESET MASTER",
		"CREATE DATABASE test",
		"CREATE TABLE test.t (id INT PRIMARY KEY, payload VARCHAR(300) NOT NULL) ENGINE=InnoDB",
	} {
		if err := s.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f := &relayFixture{t: t, dir: base, source: s, relay: filepath.Join(base, "relay"), src: src, pw: "pw-" + harness.RandHex(8)}
	id := 0
	for range files {
		for range perFile {
			id++
			if err := s.Exec(ctx, "INSERT INTO test.t VALUES (?, ?)", id, strings.Repeat("x", 50+id%200)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Exec(ctx, "FLUSH BINARY LOGS"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(f.relay, 0o700); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= files; i++ {
		name := fmt.Sprintf("mysql-bin.%06d", i)
		data, err := os.ReadFile(fmt.Sprintf("%s.%06d", s.BinlogBase(), i))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.relay, fmt.Sprintf("relay-%06d.%s", i, name)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		f.files, f.sizes = append(f.files, name), append(f.sizes, int64(len(data)))
		f.ends = append(f.ends, xidEnds(t, s, name, len(f.ends))...)
	}
	if len(f.ends) != id {
		t.Fatalf("found %d commits in the binlog, made %d", len(f.ends), id)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := New(Config{Listen: "127.0.0.1:0", User: "downstream", Password: f.pw, RelayDir: f.relay, Source: f.src,
		ServerID: 900, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return f
}

func startSandbox(t *testing.T, base, name string, id uint32) *sandbox.Server {
	t.Helper()
	s, err := sandbox.Start(context.Background(), sandbox.Config{Dir: filepath.Join(base, name), ServerID: id, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// xidEnds lists the end of every Xid event in file; the n-th (from first)
// committed the row with id n+1.
func xidEnds(t *testing.T, s *sandbox.Server, file string, first int) []txnEnd {
	t.Helper()
	rows, err := s.DB().Query("SHOW BINLOG EVENTS IN '" + file + "'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []txnEnd
	for rows.Next() {
		var log, typ, info string
		var pos, sid, end uint64
		if err := rows.Scan(&log, &pos, &typ, &sid, &end, &info); err != nil {
			t.Fatal(err)
		}
		if typ == "Xid" {
			out = append(out, txnEnd{pos: binlog.FilePos{File: file, Pos: end}, id: first + len(out) + 1})
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// durableAt moves the durable frontier to the end of the k-th commit
// (1-based), with the GTID state there.
func (f *relayFixture) durableAt(k int) {
	f.t.Helper()
	e := f.ends[k-1]
	seg := 0
	for i, name := range f.files {
		if name == e.pos.File {
			seg = i + 1
		}
	}
	gtid, err := f.source.QueryString(context.Background(), "SELECT BINLOG_GTID_POS(?, ?)", e.pos.File, e.pos.Pos)
	if err != nil {
		f.t.Fatal(err)
	}
	set, err := binlog.ParseGTIDSet(binlog.MariaDB, gtid)
	if err != nil {
		f.t.Fatal(err)
	}
	f.src.set(relay.Frontier{Segment: uint64(seg), Offset: int64(e.pos.Pos), Pos: binlog.Position{FilePos: e.pos, GTID: set}})
}

func (f *relayFixture) port() int {
	_, p, _ := strings.Cut(f.srv.Addr(), ":")
	n, _ := strconv.Atoi(p)
	return n
}

// newReplica starts a replica that replicates from the binlog server,
// after setup (GTID or file position options of CHANGE MASTER).
func (f *relayFixture) newReplica(t *testing.T, name string, id uint32, before []string, change string) *sandbox.Server {
	t.Helper()
	r := startSandbox(t, f.dir, name, id)
	ctx := context.Background()
	for _, q := range before {
		if err := r.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	q := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='downstream', MASTER_PASSWORD='%s', "+
		"MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.2, %s", f.port(), f.pw, change)
	if err := r.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	if err := r.Exec(ctx, "START SLAVE"); err != nil {
		t.Fatal(err)
	}
	return r
}

// slaveStatus reads SHOW SLAVE STATUS by column name.
func slaveStatus(r *sandbox.Server) (map[string]string, error) {
	rows, err := r.DB().Query("SHOW SLAVE STATUS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, fmt.Errorf("SHOW SLAVE STATUS: no row")
	}
	vals := make([]any, len(cols))
	raw := make([][]byte, len(cols))
	for i := range vals {
		vals[i] = &raw[i]
	}
	if err := rows.Scan(vals...); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for i, c := range cols {
		m[c] = string(raw[i])
	}
	return m, nil
}

// waitRead waits until the replica's IO thread has read up to pos and its
// SQL thread applied it, with no error.
func waitRead(t *testing.T, r *sandbox.Server, what string, pos binlog.FilePos) {
	t.Helper()
	harness.Poll(t, what+" to read and apply up to "+pos.String(), 120*time.Second, 20*time.Millisecond, func() (bool, error) {
		st, err := slaveStatus(r)
		if err != nil {
			return false, err
		}
		if st["Last_IO_Errno"] != "0" || st["Last_SQL_Errno"] != "0" {
			return false, fmt.Errorf("%s stopped: IO %s %q, SQL %q", what, st["Last_IO_Errno"], st["Last_IO_Error"], st["Last_SQL_Error"])
		}
		return st["Master_Log_File"] == pos.File && st["Read_Master_Log_Pos"] == strconv.FormatUint(pos.Pos, 10) &&
			st["Relay_Master_Log_File"] == pos.File && st["Exec_Master_Log_Pos"] == st["Read_Master_Log_Pos"], nil
	})
}

// rowsOf is the count, lowest and highest id of the replica's test.t.
func rowsOf(t *testing.T, r *sandbox.Server) string {
	t.Helper()
	v, err := r.QueryString(context.Background(), "SELECT CONCAT(COUNT(*), ' rows, ids ', COALESCE(MIN(id), 0), '-', COALESCE(MAX(id), 0)) FROM test.t")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func heartbeats(t *testing.T, r *sandbox.Server) int64 {
	t.Helper()
	v, err := r.Status(context.Background(), "Slave_received_heartbeats")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// TestDumpBehindThenCaughtUp: a replica far behind (thousands of events in
// three relay segments) reads in large buffered writes, yet never past the
// durable frontier, which stands in the middle of a segment: it stops
// exactly there, with heartbeats, and holds exactly the durable rows. When
// the frontier moves to the end, it gets every remaining event, across
// segments and master files.
func TestDumpBehindThenCaughtUp(t *testing.T) {
	t.Run("watched", func(t *testing.T) { testDumpBehindThenCaughtUp(t, &watchingSource{}) })
	t.Run("polled", func(t *testing.T) { testDumpBehindThenCaughtUp(t, &movingSource{}) })
}

func testDumpBehindThenCaughtUp(t *testing.T, src settableSource) {
	f := newRelayFixtureSource(t, 3, 700, src)
	cut := 700 + 350 // in the middle of the second file
	f.durableAt(cut)
	r := f.newReplica(t, "r1", 2, nil, fmt.Sprintf("MASTER_LOG_FILE='%s', MASTER_LOG_POS=4, MASTER_USE_GTID=no", f.files[0]))
	waitRead(t, r, "the replica", f.ends[cut-1].pos)
	before := heartbeats(t, r)
	harness.WaitFor(t, "two heartbeats at the durable end", 30*time.Second, func() bool { return heartbeats(t, r) >= before+2 })
	st, err := slaveStatus(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := st["Master_Log_File"] + ":" + st["Read_Master_Log_Pos"]; got != f.ends[cut-1].pos.String() {
		t.Fatalf("the replica read up to %s, past the durable frontier %s", got, f.ends[cut-1].pos)
	}
	if got, want := rowsOf(t, r), fmt.Sprintf("%d rows, ids 1-%d", cut, cut); got != want {
		t.Fatalf("with the durable frontier after commit %d the replica has %s, want %s", cut, got, want)
	}
	last := len(f.ends)
	f.durableAt(last)
	waitRead(t, r, "the replica after the frontier moved", f.ends[last-1].pos)
	if got, want := rowsOf(t, r), fmt.Sprintf("%d rows, ids 1-%d", last, last); got != want {
		t.Fatalf("after the frontier moved to the end the replica has %s, want %s", got, want)
	}
}

// TestDumpFromFilePositionMidSegment: a file-position replica that starts
// in the middle of a relay segment (the binlog server finds the event
// without scanning from the oldest segment) gets exactly the transactions
// after its position; a position that is not the start of an event is
// refused with 1236 naming it.
func TestDumpFromFilePositionMidSegment(t *testing.T) {
	f := newRelayFixture(t, 3, 300)
	last := len(f.ends)
	f.durableAt(last)
	setup := []string{
		"CREATE DATABASE test",
		"CREATE TABLE test.t (id INT PRIMARY KEY, payload VARCHAR(300) NOT NULL) ENGINE=InnoDB",
		"RESET MASTER",
	}
	from := f.ends[300+123-1].pos // in the second file
	// The event after from is found by its offset, without a scan (the
	// segment is the master's file, so offsets are positions).
	if got := fileModeStart(f.relay, from, f.src.Durable()); got.Segment != 2 || got.Offset != int64(from.Pos) {
		t.Fatalf("fileModeStart(%s) = segment %d offset %d, want segment 2 offset %d", from, got.Segment, got.Offset, from.Pos)
	}
	r := f.newReplica(t, "r1", 2, setup, fmt.Sprintf("MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d, MASTER_USE_GTID=no", from.File, from.Pos))
	waitRead(t, r, "the replica", f.ends[last-1].pos)
	if got, want := rowsOf(t, r), fmt.Sprintf("%d rows, ids %d-%d", last-423, 424, last); got != want {
		t.Fatalf("from %s the replica has %s, want %s", from, got, want)
	}

	bad := binlog.FilePos{File: from.File, Pos: from.Pos + 1}
	r2 := f.newReplica(t, "r2", 3, setup, fmt.Sprintf("MASTER_LOG_FILE='%s', MASTER_LOG_POS=%d, MASTER_USE_GTID=no", bad.File, bad.Pos))
	harness.Poll(t, "the replica asking for a position inside an event to be refused", 60*time.Second, 20*time.Millisecond, func() (bool, error) {
		st, err := slaveStatus(r2)
		if err != nil {
			return false, err
		}
		return st["Last_IO_Errno"] == "1236", nil
	})
	st, err := slaveStatus(r2)
	if err != nil {
		t.Fatal(err)
	}
	if want := "position " + bad.String() + " requested by the replica is not the start of an event"; !strings.Contains(st["Last_IO_Error"], want) {
		t.Fatalf("Last_IO_Error %q, want it to say %q", st["Last_IO_Error"], want)
	}
	if got := rowsOf(t, r2); got != "0 rows, ids 0-0" {
		t.Fatalf("the refused replica has %s", got)
	}
}

// gtidAt is the source's GTID state at the end of the k-th commit.
func (f *relayFixture) gtidAt(t *testing.T, k int) string {
	t.Helper()
	e := f.ends[k-1]
	g, err := f.source.QueryString(context.Background(), "SELECT BINLOG_GTID_POS(?, ?)", e.pos.File, e.pos.Pos)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestDumpGTIDStartSkipsSegments: a GTID replica's start is found from the
// Gtid_list that opens each master file's segment, not by a scan from the
// oldest segment: inside a file (the scan starts at that file's segment),
// exactly at a file's start (the state equals the file's Gtid_list), and
// a diverged GTID is still refused (the segment holding its sequence
// number is read).
func TestDumpGTIDStartSkipsSegments(t *testing.T) {
	f := newRelayFixture(t, 3, 300)
	last := len(f.ends)
	f.durableAt(last)
	setup := func(state string) []string {
		return []string{
			"CREATE DATABASE test",
			"CREATE TABLE test.t (id INT PRIMARY KEY, payload VARCHAR(300) NOT NULL) ENGINE=InnoDB",
			"RESET MASTER",
			"SET GLOBAL gtid_slave_pos = '" + state + "'",
		}
	}
	stateOf := func(t *testing.T, s string) map[uint32]binlog.GTID {
		set, err := binlog.ParseGTIDSet(binlog.MariaDB, s)
		if err != nil {
			t.Fatal(err)
		}
		m := map[uint32]binlog.GTID{}
		for _, g := range set.MariaDBGTIDs() {
			m[g.Domain] = g
		}
		return m
	}
	for _, tt := range []struct {
		name    string
		after   int // commits the replica has
		wantSeg uint64
		exact   bool
	}{
		{name: "inside the second file", after: 423, wantSeg: 2},
		{name: "at the third file's start", after: 600, wantSeg: 3, exact: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			state := f.gtidAt(t, tt.after)
			got, exact := gtidModeStart(f.relay, stateOf(t, state), f.src.Durable())
			if got.Segment != tt.wantSeg || exact[0] != tt.exact {
				t.Fatalf("gtidModeStart(%s) = segment %d (exact %v), want segment %d (exact %v)", state, got.Segment, exact, tt.wantSeg, tt.exact)
			}
			r := f.newReplica(t, "r-"+strconv.Itoa(tt.after), uint32(10+tt.after), setup(state), "MASTER_USE_GTID=slave_pos")
			waitRead(t, r, "the replica", f.ends[last-1].pos)
			if got, want := rowsOf(t, r), fmt.Sprintf("%d rows, ids %d-%d", last-tt.after, tt.after+1, last); got != want {
				t.Fatalf("from %s the replica has %s, want %s", state, got, want)
			}
			if got, err := r.QueryString(context.Background(), "SELECT @@gtid_slave_pos"); err != nil || got != f.gtidAt(t, last) {
				t.Fatalf("gtid_slave_pos %q, want %q (%v)", got, f.gtidAt(t, last), err)
			}
		})
	}
	t.Run("diverged", func(t *testing.T) {
		g := stateOf(t, f.gtidAt(t, 450))[0]
		diverged := fmt.Sprintf("%d-%d-%d", g.Domain, g.Server+4, g.Seq)
		r := f.newReplica(t, "r-diverged", 40, setup(diverged), "MASTER_USE_GTID=slave_pos")
		harness.Poll(t, "the diverged replica to be refused", 60*time.Second, 20*time.Millisecond, func() (bool, error) {
			st, err := slaveStatus(r)
			if err != nil {
				return false, err
			}
			return st["Last_IO_Errno"] == "1236", nil
		})
		st, err := slaveStatus(r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "the replica has GTID " + diverged; !strings.Contains(st["Last_IO_Error"], want) || !strings.Contains(st["Last_IO_Error"], "diverged") {
			t.Fatalf("Last_IO_Error %q, want it to say %q and diverged", st["Last_IO_Error"], want)
		}
	})
}
