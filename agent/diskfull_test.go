package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/status"
)

// TestFullDiskLosesNothing puts the data_dir on a 1 MiB tmpfs. When the relay
// log fills it, the agent says "no space left on device", keeps every event
// it had, and retries; once the space grows it catches up, and the relay log
// equals the master's binlog.
func TestFullDiskLosesNothing(t *testing.T) {
	e := newEnv(t)
	mnt := filepath.Join(e.dir, "agent")
	os.MkdirAll(mnt, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=300") // the stalled replica must not stall the test
	p := e.startProcess()
	e.waitSemiSyncClient()
	ctx := context.Background()
	if _, err := e.load(ctx, 4, 6000); err != nil { // ~2.5 MB of binlog
		t.Fatal(err)
	}
	c := e.config()
	harness.WaitFor(t, "the agent to report the full disk", 30*time.Second, func() bool {
		r, err := status.Get(ctx, c.StatusSource())
		return err == nil && strings.Contains(r.Stream.LastError, "no space left on device")
	})
	// The relay disk's metrics show it, so HotstandbyRelayDiskNearlyFull
	// (packaging/prometheus) fires: its expression is avail/size < 0.10.
	fams := scrape(t, c.Status.Listen)
	size, avail := value(t, fams, "hotstandby_relay_filesystem_size_bytes"), value(t, fams, "hotstandby_relay_filesystem_avail_bytes")
	if size != 1<<20 || !(avail/size < 0.10) {
		t.Errorf("relay filesystem: size %v bytes (the tmpfs has %d), avail %v: the relay-disk alert would not fire", size, 1<<20, avail)
	}
	if used := value(t, fams, "hotstandby_relay_bytes"); !(used > 0 && used <= size) {
		t.Errorf("hotstandby_relay_bytes %v on a full %v-byte disk", used, size)
	}
	// Killed in the middle of a failing write, the relay may end in a torn
	// event; recovery (as at the next start) cuts it, and everything left is
	// the master's, with no gap.
	p.kill()
	recoverRelay(t, c)
	compareRelayPrefix(t, filepath.Join(e.master.Dir(), "binlog"), c.RelayDir())
	log := readFile(t, p.LogPath)
	if !strings.Contains(log, "no space left on device") {
		t.Fatalf("log does not say the disk is full:\n%s", log)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	p.start()
	e.waitSemiSyncClient()
	e.exec("INSERT INTO test.t (c) VALUES (-1)")
	e.waitCaughtUp(func() status.Report { r, _ := status.Get(ctx, c.StatusSource()); return r })
	p.kill()
	recoverRelay(t, c)
	compareRelay(t, filepath.Join(e.master.Dir(), "binlog"), c.RelayDir())
}

func checkpointState(c Config) (checkpoint.State, error) {
	s, err := checkpoint.Open(c.CheckpointPath(), true)
	if err != nil {
		return checkpoint.State{}, err
	}
	defer s.Close()
	return s.Load()
}
