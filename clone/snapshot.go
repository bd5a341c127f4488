package clone

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
)

// snapshot is the consistent point every worker reads at.
type snapshot struct {
	pos       binlog.Position // binlog_snapshot_file:position and BINLOG_GTID_POS of it
	gtidState string          // @@gtid_binlog_state at the snapshot
	blocked   time.Duration   // how long commits waited (BLOCK_COMMIT issued to END returned)
	// blockCommitWait is the part of blocked that BLOCK_COMMIT itself took:
	// it waits for the commits in flight (their fsyncs) to finish.
	blockCommitWait time.Duration
	conns           []*sql.Conn // one per worker, each in its snapshot transaction
}

// masterSession is set on every master connection: values in the bytes the
// master stores (no character set conversion), TIMESTAMP in UTC, and
// generous network timeouts (a worker may read slowly while the standby
// writes).
var masterSession = []string{
	"SET NAMES binary",
	"SET SESSION time_zone = '+00:00'",
	"SET SESSION net_write_timeout = 3600, net_read_timeout = 3600, max_statement_time = 0",
	"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
}

func setup(ctx context.Context, c *sql.Conn, stmts []string) error {
	for _, q := range stmts {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// discard closes a connection without returning it to the pool (its
// session state is ours).
func discard(c *sql.Conn) {
	if c == nil {
		return
	}
	_ = c.Raw(func(any) error { return driver.ErrBadConn })
	c.Close()
}

// checkMaster refuses a master that is not MariaDB or has no binary log.
func checkMaster(ctx context.Context, c *sql.Conn, addr string) error {
	var version string
	var logBin int
	if err := c.QueryRowContext(ctx, "SELECT VERSION(), @@log_bin").Scan(&version, &logBin); err != nil {
		return fmt.Errorf("master %s: %w", addr, err)
	}
	if !strings.Contains(strings.ToLower(version), "mariadb") {
		return fmt.Errorf("%w: master %s is %s (flavor mysql: LOCK INSTANCE FOR BACKUP and performance_schema.log_status are not implemented)", ErrNotMariaDB, addr, version)
	}
	if logBin != 1 {
		return fmt.Errorf("master %s has log_bin=OFF: the clone needs the binary log to know where the snapshot is; start it with log_bin", addr)
	}
	return nil
}

// privilegeError turns an access-denied error into one line that says which
// privilege is missing and how to grant it.
func privilegeError(err error, user, addr, what, privilege string) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == 1227 || me.Number == 1044 || me.Number == 1142 || me.Number == 1045) {
		return fmt.Errorf("%w: the master user %s on %s cannot run %s (%s): GRANT %s ON *.* TO %s",
			ErrPrivileges, user, addr, what, me.Message, privilege, user)
	}
	return fmt.Errorf("master %s: %s: %w", addr, what, err)
}

// takeSnapshot opens one snapshot per worker at the same binlog position.
// readCatalog runs while DDL is blocked (so the catalog is the snapshot's)
// and commits are not.
func takeSnapshot(ctx context.Context, db *sql.DB, coord *sql.Conn, workers int, user, addr string, readCatalog func() error) (snap *snapshot, err error) {
	if _, err := coord.ExecContext(ctx, "BACKUP STAGE START"); err != nil {
		return nil, privilegeError(err, user, addr, "BACKUP STAGE START", "RELOAD")
	}
	ended := false
	end := func() error {
		if ended {
			return nil
		}
		ended = true
		_, err := coord.ExecContext(context.WithoutCancel(ctx), "BACKUP STAGE END")
		return err
	}
	defer func() {
		if eerr := end(); eerr != nil && err == nil {
			err = fmt.Errorf("master %s: BACKUP STAGE END: %w", addr, eerr)
		}
		if err != nil && snap != nil {
			for _, c := range snap.conns {
				discard(c)
			}
			snap = nil
		}
	}()
	if _, err := coord.ExecContext(ctx, "BACKUP STAGE BLOCK_DDL"); err != nil {
		return nil, fmt.Errorf("master %s: BACKUP STAGE BLOCK_DDL: %w", addr, err)
	}
	if err := readCatalog(); err != nil {
		return nil, err
	}
	snap = &snapshot{}
	// Connect and set up the workers before commits are blocked: the
	// block lasts only as long as the snapshots take to open.
	for range workers {
		c, err := db.Conn(ctx)
		if err != nil {
			return snap, fmt.Errorf("master %s: connect: %w", addr, err)
		}
		snap.conns = append(snap.conns, c)
		if err := setup(ctx, c, masterSession); err != nil {
			return snap, fmt.Errorf("master %s: %w", addr, err)
		}
	}
	blockStart := time.Now()
	if _, err := coord.ExecContext(ctx, "BACKUP STAGE BLOCK_COMMIT"); err != nil {
		return snap, fmt.Errorf("master %s: BACKUP STAGE BLOCK_COMMIT: %w", addr, err)
	}
	snap.blockCommitWait = time.Since(blockStart)
	// All snapshots open at once: commits wait only as long as the
	// slowest of them.
	poss := make([]binlog.FilePos, len(snap.conns))
	errs := make([]error, len(snap.conns))
	var wg sync.WaitGroup
	for i, c := range snap.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
				errs[i] = fmt.Errorf("master %s: worker %d: start snapshot: %w", addr, i+1, err)
				return
			}
			if poss[i], errs[i] = snapshotPos(ctx, c); errs[i] != nil {
				errs[i] = fmt.Errorf("master %s: worker %d: %w", addr, i+1, errs[i])
			}
		}()
	}
	var gtidPos string
	gerr := coord.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state, @@GLOBAL.gtid_binlog_pos").Scan(&snap.gtidState, &gtidPos)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return snap, err
	}
	if gerr != nil {
		return snap, fmt.Errorf("master %s: read the GTID state: %w", addr, gerr)
	}
	first := poss[0]
	for i, fp := range poss[1:] {
		if fp != first {
			return snap, fmt.Errorf("%w: worker 1 at %s, worker %d at %s", ErrSnapshotMismatch, first, i+2, fp)
		}
	}
	if err := end(); err != nil {
		return snap, fmt.Errorf("master %s: BACKUP STAGE END: %w", addr, err)
	}
	snap.blocked = time.Since(blockStart)
	// While commits are blocked, gtid_binlog_pos is the snapshot's; the
	// binlog itself confirms it (BINLOG_GTID_POS of the snapshot's file
	// position), outside the block.
	var check string
	if err := coord.QueryRowContext(ctx, "SELECT COALESCE(BINLOG_GTID_POS(?, ?), '')", first.File, first.Pos).Scan(&check); err != nil {
		return snap, fmt.Errorf("master %s: BINLOG_GTID_POS(%s): %w", addr, first, err)
	}
	if check != gtidPos {
		return snap, fmt.Errorf("%w: gtid_binlog_pos was %q while commits were blocked, BINLOG_GTID_POS(%s) is %q", ErrSnapshotMismatch, gtidPos, first, check)
	}
	set, err := binlog.ParseGTIDSet(binlog.MariaDB, gtidPos)
	if err != nil {
		return snap, fmt.Errorf("master %s: gtid_binlog_pos %q: %w", addr, gtidPos, err)
	}
	snap.pos = binlog.Position{FilePos: first, GTID: set}
	return snap, nil
}

// snapshotPos reads the binlog position of the session's consistent
// snapshot.
func snapshotPos(ctx context.Context, c *sql.Conn) (binlog.FilePos, error) {
	var fp binlog.FilePos
	err := eachRow(ctx, c, "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'", func(r *sql.Rows) error {
		var name, value string
		if err := r.Scan(&name, &value); err != nil {
			return err
		}
		switch strings.ToLower(name) {
		case "binlog_snapshot_file":
			fp.File = value
		case "binlog_snapshot_position":
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return fmt.Errorf("binlog_snapshot_position %q: %w", value, err)
			}
			fp.Pos = n
		}
		return nil
	})
	if err != nil {
		return fp, fmt.Errorf("read binlog_snapshot_%%: %w", err)
	}
	if fp.File == "" || fp.Pos < 4 {
		return fp, fmt.Errorf("the snapshot has no binlog position (binlog_snapshot_file %q, position %d)", fp.File, fp.Pos)
	}
	return fp, nil
}
