package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopDir stops a detached server that another process started in dir,
// through its pid file: SIGTERM, then SIGKILL if it has not exited when ctx
// ends. A directory with no running server is not an error.
func StopDir(ctx context.Context, dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "mariadbd.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox: stop server in %s: %w", dir, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("sandbox: stop server in %s: bad pid file %q", dir, b)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("sandbox: stop server %d in %s: %w", pid, dir, err)
	}
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		select {
		case <-ctx.Done():
			syscall.Kill(pid, syscall.SIGKILL)
			return fmt.Errorf("sandbox: server %d in %s did not stop in time; killed", pid, dir)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
