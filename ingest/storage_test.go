package ingest

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

// A relay write that failed for want of space, as the session returns it,
// holds the reconnect; a master's error does not.
func TestLocalStorageError(t *testing.T) {
	full := &binlog.SourceError{Op: "relay log", Err: fmt.Errorf("relay: write segment x: %w",
		&fs.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC})}
	if !localStorageError(full) {
		t.Fatalf("%v: not seen as the relay's storage failing", full)
	}
	reset := &binlog.SourceError{Op: "read", Err: syscall.ECONNRESET}
	if localStorageError(reset) {
		t.Fatalf("%v: seen as a storage failure", reset)
	}
	if err := probeWritable(t.TempDir()); err != nil {
		t.Fatalf("probe of a writable directory: %v", err)
	}
}
