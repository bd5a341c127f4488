package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// binaries holds the resolved paths of the MariaDB programs the package runs.
type binaries struct {
	mariadbd  string
	installDB string
}

// findBinaries resolves mariadbd and mariadb-install-db on PATH, falling back
// to the Debian locations, which are not on a non-root user's PATH.
func findBinaries() (binaries, error) {
	mariadbd, err := findBinary("mariadbd", "/usr/sbin/mariadbd")
	if err != nil {
		return binaries{}, err
	}
	installDB, err := findBinary("mariadb-install-db", "/usr/bin/mariadb-install-db")
	if err != nil {
		return binaries{}, err
	}
	return binaries{mariadbd: mariadbd, installDB: installDB}, nil
}

func findBinary(name, fallback string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	if fi, err := os.Stat(fallback); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", fmt.Errorf("sandbox: %s not on PATH nor at %s: %w", name, fallback, ErrNotInstalled)
}

// EnsureInstalled makes sure that mariadbd and mariadb-install-db are
// available. If they are missing it runs
// `apt-get install -y mariadb-server mariadb-client` non-interactively, and
// `apt-get update` followed by a second install only if the first one fails.
// Installing needs root. The packaged service is neither needed nor started.
func EnsureInstalled(ctx context.Context) error {
	if _, err := findBinaries(); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("sandbox: mariadb-server is not installed and installing it needs root: %w", ErrNotInstalled)
	}
	install := []string{"install", "-y", "mariadb-server", "mariadb-client"}
	if err := aptGet(ctx, install...); err != nil {
		if uerr := aptGet(ctx, "update"); uerr != nil {
			return errors.Join(err, uerr)
		}
		if err := aptGet(ctx, install...); err != nil {
			return err
		}
	}
	if _, err := findBinaries(); err != nil {
		return fmt.Errorf("sandbox: apt-get installed mariadb-server but: %w", err)
	}
	return nil
}

// aptGet runs apt-get with args and returns an error carrying the tail of its
// output if it fails.
func aptGet(ctx context.Context, args ...string) error {
	// Wait for the dpkg lock rather than fail when another install runs.
	args = append([]string{"-o", "DPkg::Lock::Timeout=300"}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sandbox: apt-get %v: %w\n%s", args, err, tailLines(out, 20))
	}
	return nil
}
