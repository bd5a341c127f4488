package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
)

// sessionSetup makes the tokens independent of the client's and the
// server's settings: TIMESTAMP values render in UTC, CHAR values without
// PAD_CHAR_TO_FULL_LENGTH padding, and expressions in an ASCII-compatible
// connection character set.
var sessionSetup = []string{
	"SET NAMES utf8mb4",
	"SET SESSION time_zone = '+00:00'",
	"SET SESSION sql_mode = ''",
	"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
}

// pollInterval is how often a consistent Compare polls the standby's
// gtid_binlog_pos while it waits for the standby to reach the master.
const pollInterval = 20 * time.Millisecond

// side is one server's connection during a Compare.
type side struct {
	name string // "master" or "standby"
	conn *sql.Conn
	snap bool // a consistent snapshot is open
}

// openSide takes a connection from db and sets it up.
func openSide(ctx context.Context, name string, db *sql.DB) (*side, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("verify: %s: connect: %w", name, err)
	}
	s := &side{name: name, conn: conn}
	for _, q := range sessionSetup {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			s.close()
			return nil, fmt.Errorf("verify: %s: %s: %w", name, q, err)
		}
	}
	return s, nil
}

// close discards the connection rather than return it to the pool with our
// session settings.
func (s *side) close() {
	s.conn.Raw(func(any) error { return driver.ErrBadConn })
	s.conn.Close()
}

// gtidBinlogPos returns the server's current gtid_binlog_pos.
func (s *side) gtidBinlogPos(ctx context.Context) (string, error) {
	var pos string
	if err := s.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return "", fmt.Errorf("verify: %s: read gtid_binlog_pos: %w", s.name, err)
	}
	return pos, nil
}

// beginSnapshot opens a consistent snapshot and returns the GTID position
// it corresponds to: the snapshot's binlog file and offset, mapped with
// BINLOG_GTID_POS. A server without a binary log is at the empty position.
func (s *side) beginSnapshot(ctx context.Context) (string, error) {
	if _, err := s.conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"); err != nil {
		return "", fmt.Errorf("verify: %s: start snapshot: %w", s.name, err)
	}
	s.snap = true
	var file, offset string
	err := eachRow(ctx, s.conn, "SHOW SESSION STATUS WHERE Variable_name IN ('Binlog_snapshot_file', 'Binlog_snapshot_position')", nil,
		func(r *sql.Rows) error {
			var name, value string
			if err := r.Scan(&name, &value); err != nil {
				return err
			}
			if name == "Binlog_snapshot_file" {
				file = value
			} else {
				offset = value
			}
			return nil
		})
	if err != nil {
		return "", fmt.Errorf("verify: %s: read snapshot position: %w", s.name, err)
	}
	if file == "" {
		return "", nil
	}
	var pos sql.NullString
	if err := s.conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", file, offset).Scan(&pos); err != nil {
		return "", fmt.Errorf("verify: %s: BINLOG_GTID_POS(%s, %s): %w", s.name, file, offset, err)
	}
	if !pos.Valid {
		return "", fmt.Errorf("verify: %s: BINLOG_GTID_POS(%s, %s) is NULL: the binlog file is gone", s.name, file, offset)
	}
	return pos.String, nil
}

// endSnapshot ends the snapshot, if one is open.
func (s *side) endSnapshot(ctx context.Context) error {
	if !s.snap {
		return nil
	}
	s.snap = false
	if _, err := s.conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		return fmt.Errorf("verify: %s: end snapshot: %w", s.name, err)
	}
	return nil
}

// position is a parsed MariaDB GTID position.
type position struct {
	text string
	set  binlog.GTIDSet
}

func parsePosition(who, text string) (position, error) {
	set, err := binlog.ParseGTIDSet(binlog.MariaDB, text)
	if err != nil {
		return position{}, fmt.Errorf("verify: %s: %w", who, err)
	}
	return position{text: set.String(), set: set}, nil
}

// ahead reports whether p holds everything q holds and more.
func (p position) ahead(q position) bool {
	ok, err := p.set.Contains(q.set)
	return err == nil && ok && !p.set.Equal(q.set)
}

// syncSnapshots opens consistent snapshots on m and s at the same GTID
// position and returns it. It holds the master's snapshot and polls the
// standby until the standby is at the master's position, retaking the
// master's snapshot when the standby has gone past it, until timeout.
// With stopAt set it is called with each master snapshot's position first.
func syncSnapshots(ctx context.Context, m, s *side, timeout time.Duration, stopAt func(context.Context, string) error) (string, error) {
	deadline := time.Now().Add(timeout)
	var mpos, spos position
	for {
		text, err := m.beginSnapshot(ctx)
		if err != nil {
			return "", err
		}
		if mpos, err = parsePosition("master snapshot", text); err != nil {
			return "", err
		}
		if stopAt != nil {
			if err := stopAt(ctx, text); err != nil {
				return "", fmt.Errorf("verify: stop the standby at %s: %w", text, err)
			}
		}
		for {
			if spos, err = standbyPosition(ctx, s, mpos); err != nil {
				return "", err
			}
			if s.snap {
				return mpos.text, nil
			}
			if spos.ahead(mpos) || !time.Now().Before(deadline) {
				break
			}
			if err := sleep(ctx, pollInterval); err != nil {
				return "", err
			}
		}
		if err := m.endSnapshot(ctx); err != nil {
			return "", err
		}
		if !time.Now().Before(deadline) {
			return "", fmt.Errorf("verify: %w: master at %q, standby at %q (waited %v)",
				ErrNotAtSamePosition, mpos.text, spos.text, timeout)
		}
	}
}

// standbyPosition returns the standby's position. If its gtid_binlog_pos
// equals want it opens a snapshot, which stays open (s.snap) only if the
// snapshot is at want too.
func standbyPosition(ctx context.Context, s *side, want position) (position, error) {
	text, err := s.gtidBinlogPos(ctx)
	if err != nil {
		return position{}, err
	}
	pos, err := parsePosition("standby gtid_binlog_pos", text)
	if err != nil || !pos.set.Equal(want.set) {
		return pos, err
	}
	if text, err = s.beginSnapshot(ctx); err != nil {
		return position{}, err
	}
	if pos, err = parsePosition("standby snapshot", text); err != nil {
		return position{}, err
	}
	if !pos.set.Equal(want.set) {
		return pos, s.endSnapshot(ctx)
	}
	return pos, nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
