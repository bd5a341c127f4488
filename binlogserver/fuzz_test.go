package binlogserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// The fuzz target's relay log: one small master binlog file (captured with
// the seed sessions, see TestCaptureFuzzSeeds), durable to its end.
const fuzzRelay = "testdata/relay"

var (
	fuzzOnce sync.Once
	fuzzSrv  *Server
	fuzzErr  error
)

// fuzzServer is one server for the whole fuzz process, serving the
// testdata relay log; failed logins are not held back (every session comes
// from the same "address", a pipe).
func fuzzServer(t testing.TB) *Server {
	fuzzOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fuzzrelay")
		if err != nil {
			fuzzErr = err
			return
		}
		var f relay.Frontier
		ents, _ := os.ReadDir(fuzzRelay)
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(fuzzRelay, e.Name()))
			if err != nil {
				fuzzErr = err
				return
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
				fuzzErr = err
				return
			}
			if segs, err := relay.ListSegments(dir); err == nil && len(segs) > 0 {
				last := segs[len(segs)-1]
				f = relay.Frontier{Segment: last.Seq, Offset: int64(len(data)),
					Pos: binlog.Position{FilePos: binlog.FilePos{File: last.MasterFile, Pos: uint64(len(data))}, GTID: binlog.NewGTIDSet(binlog.MariaDB)}}
			}
		}
		fuzzSrv, fuzzErr = New(Config{Listen: "127.0.0.1:0", User: "downstream", Password: "fuzz-password", RelayDir: dir,
			Source: fixedSource{f: f}, ServerID: 900, LoginTimeout: 2 * time.Second,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if fuzzErr == nil {
			fuzzSrv.backoff = 0
			go func() { _ = fuzzSrv.Serve(context.Background()) }()
		}
	})
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzSrv
}

// FuzzServeSession feeds one client session to the server over a net.Pipe:
// the first byte picks the mode, the rest is what the client sends. Mode
// bit 0 clear: the bytes are the whole session, handshake response
// included (the login phase: its caps, framing and auth parsing). Set: the
// harness logs in properly first (the scramble changes per connection),
// then sends the bytes as the command phase (queries, COM_REGISTER_SLAVE,
// COM_BINLOG_DUMP, semi-sync ACKs...). The seeds are real sessions of a
// stock MariaDB replica (semi-sync and not), mariadb-binlog and go-mysql's
// BinlogSyncer, captured against this server.
//
// Every session must end once the client has sent its bytes and closed
// (no hang), and no handler may panic (a recovered panic counts as a
// failure here).
func FuzzServeSession(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		srv := fuzzServer(t)
		panics := srv.panics.Load()
		cli, end := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.handle(context.Background(), end)
			end.Close()
		}()
		defer func() {
			cli.Close()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the session did not end after the client closed")
			}
			if n := srv.panics.Load(); n != panics {
				t.Fatalf("a connection handler panicked (%d)", n-panics)
			}
		}()
		conn := net.Conn(cli)
		if data[0]&1 == 1 {
			c, err := client.ConnectWithDialer(context.Background(), "tcp", "pipe", "downstream", "fuzz-password", "",
				func(context.Context, string, string) (net.Conn, error) { return cli, nil })
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			conn = c.Conn.Conn
		}
		// Read what the server answers until it has been quiet for a
		// moment after the whole input went in (so that the answers to
		// the last commands, and a dump, run before the client closes),
		// or for 2 s at most after it (a dump with a 1 ms heartbeat is
		// never quiet).
		var writtenAt atomic.Int64
		drained := make(chan struct{})
		go func() {
			defer close(drained)
			buf := make([]byte, 64<<10)
			for {
				_ = conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				_, err := conn.Read(buf)
				at := writtenAt.Load()
				if at != 0 && time.Since(time.Unix(0, at)) > 2*time.Second {
					return
				}
				if err == nil {
					continue
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) || at != 0 {
					return
				}
			}
		}()
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = conn.Write(data[1:])
		writtenAt.Store(time.Now().UnixNano())
		<-drained
	})
}
