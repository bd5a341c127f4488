package applier

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/relay"
	"github.com/hotstandby/hotstandby/sandbox"
)

// The tests in this file and its siblings run the applier in process
// against real MariaDB servers: a "master" whose binary log becomes the
// relay log (its closed binlog files copied as relay segments, which are
// binlog files byte for byte), and a fresh standby.

// startServer starts a sandbox server in a temporary directory and stops it
// when the test ends.
func startServer(t testing.TB, id uint32, extra ...string) *sandbox.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("needs MariaDB")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := sandbox.EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := sandbox.Start(ctx, sandbox.Config{Dir: t.TempDir(), ServerID: id, Extra: extra, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func mustExec(t testing.TB, s *sandbox.Server, q string) {
	t.Helper()
	if err := s.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func queryString(t testing.TB, s *sandbox.Server, q string) string {
	t.Helper()
	v, err := s.QueryString(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// txnEnd is where one transaction of the relay log ends.
type txnEnd struct {
	gtid binlog.GTID
	at   relay.Frontier // the frontier after its last event
}

// relayLog is a master's binary log turned into a relay log.
type relayLog struct {
	dir  string
	end  relay.Frontier // the end of the last segment: everything durable
	txns []txnEnd
}

// copyRelay rotates the master's binary log and copies every closed binlog
// file into a new relay directory as a segment; it lists the transactions
// and where each ends.
func copyRelay(t testing.TB, master *sandbox.Server) relayLog {
	t.Helper()
	mustExec(t, master, "FLUSH BINARY LOGS")
	logs, err := harness.BinaryLogs(master)
	if err != nil {
		t.Fatal(err)
	}
	rl := relayLog{dir: t.TempDir()}
	for i, l := range logs[:len(logs)-1] { // the last one is open
		src := filepath.Join(filepath.Dir(master.BinlogBase()), l.Name)
		dst := filepath.Join(rl.dir, fmt.Sprintf("relay-%06d.%s", i+1, l.Name))
		copyFile(t, src, dst)
		info, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		rl.end = relay.Frontier{Segment: uint64(i + 1), Offset: info.Size(),
			Pos: binlog.Position{FilePos: binlog.FilePos{File: l.Name, Pos: uint64(info.Size())}}}
	}
	tr := binlog.NewTxnTracker(binlog.NewGTIDSet(binlog.MariaDB))
	var cur binlog.GTID
	err = relay.Scan(rl.dir, func(ev relay.Event) error {
		if ev.Header.Type == binlog.MariaGTIDEvent {
			if cur, _, _, err = binlog.MariaGTID(ev.Raw, ev.Header); err != nil {
				return err
			}
		}
		boundary, err := tr.Feed(ev.Raw, ev.Checksummed)
		if err != nil {
			return err
		}
		if boundary && cur.Seq != 0 {
			rl.txns = append(rl.txns, txnEnd{gtid: cur, at: relay.Frontier{Segment: ev.Segment.Seq, Offset: ev.Offset + int64(ev.Header.Size)}})
			cur = binlog.GTID{}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// fixedSource is a Source whose durable frontier the test sets.
type fixedSource struct {
	mu sync.Mutex // mu guards f
	f  relay.Frontier
	ch chan struct{}
}

func newFixedSource(f relay.Frontier) *fixedSource {
	return &fixedSource{f: f, ch: make(chan struct{}, 1)}
}

func (s *fixedSource) Durable() relay.Frontier {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f
}

func (s *fixedSource) Changed() <-chan struct{} { return s.ch }

func (s *fixedSource) set(f relay.Frontier) {
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

// standbyDSN is the DSN of the standby's root user over TCP.
func standbyDSN(s *sandbox.Server) string {
	return "root@tcp(" + s.Addr() + ")/"
}

// runApplier starts an Applier on the relay log and stops it when the test
// ends; the returned function stops it earlier.
func runApplier(t testing.TB, cfg Config, src Source) (*Applier, func()) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	a := New(cfg, src)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("applier Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitCaughtUp waits until the applier has caught up with f, failing the
// test if it stops on an error.
func waitCaughtUp(t testing.TB, a *Applier, f relay.Frontier, d time.Duration) Status {
	t.Helper()
	var st Status
	harness.Poll(t, fmt.Sprintf("the applier to catch up with segment %d offset %d", f.Segment, f.Offset), d, 10*time.Millisecond, func() (bool, error) {
		st = a.Status()
		if st.State == StateError {
			return false, fmt.Errorf("applier stopped: %s", st.LastError)
		}
		return st.CaughtUp.Segment == f.Segment && st.CaughtUp.Offset == f.Offset, nil
	})
	return st
}

// tableDigest returns an order-independent digest of a table's rows.
func tableDigest(t testing.TB, s *sandbox.Server, table string) string {
	t.Helper()
	rows, err := s.DB().QueryContext(context.Background(), "CHECKSUM TABLE "+table+" EXTENDED")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var name string
	var sum sql.NullString
	for rows.Next() {
		if err := rows.Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sum.String
}
