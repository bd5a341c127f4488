package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unitWith returns a copy of the unit whose ExecStart names an executable
// that exists here (verify checks it; the package test checks that the
// binary is installed at /usr/bin/hotstandby).
func unitCopy(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("systemd-analyze not installed on CI (.ci/run installs systemd)")
		}
		t.Skip("systemd-analyze not installed (Debian: apt-get install systemd)")
	}
	unit, err := os.ReadFile("hotstandby.service")
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/hotstandby run --config /etc/hotstandby/hotstandby.toml\n") {
		t.Fatal("ExecStart is not /usr/bin/hotstandby run --config /etc/hotstandby/hotstandby.toml")
	}
	path := filepath.Join(t.TempDir(), "hotstandby.service")
	if err := os.WriteFile(path, []byte(strings.Replace(string(unit), "/usr/bin/hotstandby", self, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The unit passes `systemd-analyze verify` with nothing to say, and holds
// what the daemon's promises rely on.
func TestUnitVerifies(t *testing.T) {
	path := unitCopy(t)
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	unit, _ := os.ReadFile("hotstandby.service")
	for _, want := range []string{
		"Type=notify", "WatchdogSec=20s", "Restart=on-failure", "RestartPreventExitStatus=1",
		"User=hotstandby", "ProtectSystem=strict", "ReadWritePaths=/var/lib/hotstandby", "NoNewPrivileges=yes",
		"PrivateTmp=yes", "CapabilityBoundingSet=\n", "ProtectHome=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
	} {
		if !strings.Contains(string(unit), "\n"+want) {
			t.Errorf("the unit has no %q", strings.TrimSpace(want))
		}
	}
	// Exit 2 (a config error, or a Go runtime panic) must stay restartable.
	if regexp.MustCompile(`(?m)^RestartPreventExitStatus=.*\b2\b`).Match(unit) {
		t.Error("RestartPreventExitStatus names 2: a Go panic (exit 2) would not be restarted")
	}
}

// systemd-analyze security: the exposure score (0 best, 10 worst).
func TestUnitSecurityExposure(t *testing.T) {
	path := unitCopy(t)
	out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for hotstandby\.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security --offline=true: exposure %.1f %s", score, m[2])
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "✗") {
			t.Log(strings.Join(strings.Fields(line), " "))
		}
	}
	if score > 2.0 {
		t.Errorf("exposure %.1f: the hardening regressed (it was 1.2)", score)
	}
}
