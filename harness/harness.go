package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/sandbox"
)

// Build builds cmd/hotstandby into dir and returns the binary's path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "hotstandby")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/hotstandby/hotstandby/cmd/hotstandby").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building hotstandby: %v\n%s", err, out)
	}
	return bin, nil
}

// RandHex returns n random bytes in hex (passwords, unique names).
func RandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// WaitFor checks cond every 20 ms until it holds; it fails the test after d.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	Poll(t, what, d, 20*time.Millisecond, func() (bool, error) { return cond(), nil })
}

// Poll checks cond every interval until it holds; it fails the test when
// cond returns an error or d passes.
func Poll(t testing.TB, what string, d, interval time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(interval)
	}
}

// MasterPos returns the server's SHOW MASTER STATUS position.
func MasterPos(s *sandbox.Server) (binlog.FilePos, error) {
	rows, err := s.DB().Query("SHOW MASTER STATUS")
	if err != nil {
		return binlog.FilePos{}, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		return binlog.FilePos{}, fmt.Errorf("SHOW MASTER STATUS on %s: no row (log_bin off?)", s.Addr())
	}
	var fp binlog.FilePos
	dest := []any{&fp.File, &fp.Pos}
	for len(dest) < len(cols) {
		dest = append(dest, new(sql.RawBytes))
	}
	if err := rows.Scan(dest...); err != nil {
		return binlog.FilePos{}, err
	}
	return fp, rows.Err()
}

// BinlogFile is one line of SHOW BINARY LOGS.
type BinlogFile struct {
	Name string
	Size int64
}

// BinaryLogs returns SHOW BINARY LOGS.
func BinaryLogs(s *sandbox.Server) ([]BinlogFile, error) {
	rows, err := s.DB().Query("SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []BinlogFile
	for rows.Next() {
		var f BinlogFile
		dest := []any{&f.Name, &f.Size}
		for len(dest) < len(cols) {
			dest = append(dest, new(sql.RawBytes))
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// PurgeBinaryLogsTo purges the server's binlogs before file and waits until
// SHOW BINARY LOGS no longer lists them. MariaDB answers PURGE with OK but
// keeps a file whose commits InnoDB has not yet made durable (its
// Binlog_checkpoint is written asynchronously): under load the PURGE comes
// first and the file stays. MariaDB's own suite retries for this reason
// (mysql-test/include/wait_for_purge.inc); so does this.
func PurgeBinaryLogsTo(t testing.TB, s *sandbox.Server, file string) {
	t.Helper()
	WaitFor(t, "the master to purge its binlogs before "+file, 60*time.Second, func() bool {
		if err := s.Exec(context.Background(), "PURGE BINARY LOGS TO '"+file+"'"); err != nil {
			t.Fatalf("PURGE BINARY LOGS TO %s: %v", file, err)
		}
		logs, err := BinaryLogs(s)
		if err != nil {
			t.Fatal(err)
		}
		return len(logs) > 0 && logs[0].Name == file
	})
}

// StatusInt returns a global status variable of s as an integer.
func StatusInt(s *sandbox.Server, name string) (int64, error) {
	v, err := s.Status(context.Background(), name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("status %s = %q: not a number", name, v)
	}
	return n, nil
}

// PeakRSS returns VmHWM of process pid in KiB.
func PeakRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	var kb int64
	for _, line := range splitLines(string(data)) {
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &kb); err == nil {
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes: a log
// destination for a logger that goroutines share, read by the test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
