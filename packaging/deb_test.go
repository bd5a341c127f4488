package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/packaging"
)

// `make deb`'s script builds a package with the binary, the unit, the
// conffile, the man page and the maintainer scripts, and the binary in it
// says which commit it was built from.
func TestDebPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package")
	}
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Skip("dpkg-deb not installed")
	}
	out := t.TempDir()
	b, err := exec.Command("bash", "mkdeb.sh", out).CombinedOutput()
	if err != nil {
		t.Fatalf("mkdeb.sh: %v\n%s", err, b)
	}
	deb := strings.TrimSpace(string(b))
	list, err := exec.Command("dpkg-deb", "-c", deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb -c: %v\n%s", err, list)
	}
	for path, mode := range map[string]string{
		"./usr/bin/hotstandby":                                "-rwxr-xr-x root/root",
		"./lib/systemd/system/hotstandby.service":             "-rw-r--r-- root/root",
		"./etc/hotstandby/hotstandby.toml":                    "-rw------- root/root", // hotstandby-owned by postinst
		"./usr/share/man/man8/hotstandby.8.gz":                "-rw-r--r-- root/root",
		"./usr/share/doc/hotstandby/examples/keepalived.conf": "-rw-r--r-- root/root",
		"./usr/share/doc/hotstandby/examples/hotstandby.toml": "-rw-r--r-- root/root",
	} {
		found := false
		for _, line := range strings.Split(string(list), "\n") {
			if f := strings.Fields(line); len(f) >= 6 && f[5] == path {
				found = true
				if got := f[0] + " " + f[1]; got != mode {
					t.Errorf("%s: %s, want %s", path, got, mode)
				}
			}
		}
		if !found {
			t.Errorf("%s is not in the package:\n%s", path, list)
		}
	}
	dir := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-R", deb, dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -R: %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "DEBIAN/conffiles")); string(b) != "/etc/hotstandby/hotstandby.toml\n" {
		t.Errorf("conffiles: %q", b)
	}
	for _, s := range []string{"postinst", "postrm", "prerm"} {
		if fi, err := os.Stat(filepath.Join(dir, "DEBIAN", s)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("DEBIAN/%s: %v", s, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/hotstandby/hotstandby.toml")); string(b) != packaging.ExampleConfig {
		t.Error("the installed configuration is not the example `config example` prints")
	}
	bin := filepath.Join(dir, "usr/bin/hotstandby")
	ver, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("hotstandby version: %v\n%s", err, ver)
	}
	t.Logf("%s\n%s", filepath.Base(deb), ver)
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if !strings.Contains(string(ver), "revision   "+strings.TrimSpace(string(head))) {
			t.Errorf("the packaged binary does not name HEAD %s:\n%s", head, ver)
		}
	}
	if ex, _ := exec.Command(bin, "config", "example").Output(); string(ex) != packaging.ExampleConfig {
		t.Error("config example of the packaged binary differs from hotstandby.toml")
	}
	if b, err := exec.Command("ldd", bin).CombinedOutput(); err == nil || !strings.Contains(string(b), "not a dynamic executable") {
		t.Logf("ldd: %s", b) // static (CGO_ENABLED=0): no libc dependency to declare
		t.Error("the packaged binary is not static")
	}
}
