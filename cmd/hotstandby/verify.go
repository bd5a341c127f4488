package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/verify"
)

// cmdVerify compares every table of the master and the standby in
// consistent snapshots at the same GTID position:
//
//	hotstandby verify --config FILE [--timeout 30s]
//
// It prints one line per table and returns nil if all are equal, an error
// "verify: N of M tables differ" (exit 1) if not.
func cmdVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the standby to reach the master's GTID position")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		return err
	}
	if *timeout < 0 {
		return usageError{fmt.Errorf("verify: --timeout %v is negative", *timeout)}
	}
	masterDSN, standbyDSN, err := verifyDSNs(cfg)
	if err != nil {
		return usageError{err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = runVerify(ctx, masterDSN, standbyDSN, *timeout, stdout)
	return err
}

// verifyDSNs is the one place where verify reads connection settings from
// the config: the [master] and [standby] sections, through the config's DSN
// methods. The DSNs hold passwords: never print them.
func verifyDSNs(cfg agent.Config) (masterDSN, standbyDSN string, err error) {
	if !cfg.Standby.Enabled() {
		return "", "", errors.New("verify: the config has no [standby] section: set standby.host")
	}
	return cfg.MasterDSN(), cfg.StandbyDSN(), nil
}

// runVerify compares master and standby in snapshots at the same GTID
// position, waiting up to timeout for the standby to get there, and writes
// the report to stdout. If tables differ it returns false and an error
// "verify: N of M tables differ".
func runVerify(ctx context.Context, masterDSN, standbyDSN string, timeout time.Duration, stdout io.Writer) (equal bool, err error) {
	master, err := openDSN(masterDSN)
	if err != nil {
		return false, fmt.Errorf("verify: master: %w", err)
	}
	defer master.Close()
	standby, err := openDSN(standbyDSN)
	if err != nil {
		return false, fmt.Errorf("verify: standby: %w", err)
	}
	defer standby.Close()
	if err := verify.CheckCanRead(ctx, master, "master"); err != nil {
		return false, err
	}
	if err := verify.CheckCanRead(ctx, standby, "standby"); err != nil {
		return false, err
	}
	rep, err := verify.Compare(ctx, master, standby, verify.Options{Consistent: true, Timeout: timeout})
	if err != nil {
		return false, err
	}
	rep.WriteText(stdout)
	if !rep.Equal {
		return false, fmt.Errorf("verify: %d of %d tables differ", rep.Differing(), len(rep.Tables))
	}
	return true, nil
}

// openDSN opens a pool for a go-sql-driver DSN without going through the
// driver registry. Its errors do not contain the DSN.
func openDSN(dsn string) (*sql.DB, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}
