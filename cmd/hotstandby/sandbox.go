package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hotstandby/hotstandby/sandbox"
)

// cmdSandbox starts or stops a local master and standby for trying the agent.
func cmdSandbox(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return usageError{errors.New("sandbox: want `sandbox up --dir DIR` or `sandbox down --dir DIR`")}
	}
	fs := flag.NewFlagSet("sandbox "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "demo", "directory for the servers, the agent's config and its data")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if args[0] == "down" {
		for _, name := range []string{"master", "standby"} {
			if err := sandbox.StopDir(ctx, filepath.Join(abs, name)); err != nil {
				return err
			}
		}
		fmt.Fprintf(stdout, "sandbox in %s stopped\n", abs)
		return nil
	}
	return sandboxUp(ctx, abs, stdout)
}

func sandboxUp(ctx context.Context, dir string, stdout io.Writer) error {
	if err := sandbox.EnsureInstalled(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	master, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(dir, "master"), ServerID: 1, Master: true, Detached: true,
		Extra: []string{"rpl_semi_sync_master_timeout=10000"}})
	if err != nil {
		return err
	}
	standby, err := sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(dir, "standby"), ServerID: 2, Detached: true})
	if err != nil {
		return err
	}
	pw := make([]byte, 18)
	rand.Read(pw)
	password := hex.EncodeToString(pw)
	pwFile := filepath.Join(dir, "master.pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	// SELECT is for `hotstandby verify`, which reads every table.
	if err := master.CreateUser(ctx, "hotstandby", password, "REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, REPLICATION MASTER ADMIN, SELECT"); err != nil {
		return err
	}
	if err := standby.CreateUser(ctx, "hotstandby", password, "ALL PRIVILEGES"); err != nil {
		return err
	}
	// No semi-sync replica yet: don't make setup wait out the timeout.
	for _, q := range []string{
		"SET GLOBAL rpl_semi_sync_master_timeout=100",
		"CREATE DATABASE IF NOT EXISTS demo",
		"CREATE TABLE IF NOT EXISTS demo.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer VARCHAR(64), amount DECIMAL(12,2), created DATETIME(6))",
		"SET GLOBAL rpl_semi_sync_master_timeout=10000",
	} {
		if err := master.Exec(ctx, q); err != nil {
			return err
		}
	}
	port, err := sandbox.FreePort()
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf(`# hotstandby configuration written by `+"`hotstandby sandbox up`"+`
data_dir = %q
server_id = 101
# The standby starts empty: take the master's whole history.
start = "file:mysql-bin.000001:4"

[master]
host = "127.0.0.1"
port = %d
user = "hotstandby"
password_file = %q

[standby]
host = "127.0.0.1"
port = %d
user = "hotstandby"
password_file = %q

[semisync]
enabled = true

[status]
listen = "127.0.0.1:%d"
`, filepath.Join(dir, "agent"), master.Port(), pwFile, standby.Port(), pwFile, port)
	cfgPath := filepath.Join(dir, "hotstandby.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "master   %s  (mariadb --defaults-file=%s)\n", master.Addr(), master.DefaultsFile())
	fmt.Fprintf(stdout, "standby  %s  (mariadb --defaults-file=%s)\n", standby.Addr(), standby.DefaultsFile())
	fmt.Fprintf(stdout, "config   %s\n", cfgPath)
	return nil
}
