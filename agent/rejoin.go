package agent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/replica"
)

// RejoinConfig is the [rejoin] section: how the old master, turned into a
// replica of the new one by `hotstandby rejoin`, reaches and logs in to the
// new master. Every field is optional.
type RejoinConfig struct {
	// User and PasswordFile are the replication user the old master logs
	// in to the new one with; default: the [master] user and password (a
	// user the old master had, present on the new one through the
	// replicated grants). The user needs REPLICATION SLAVE.
	User         string `toml:"user"`
	PasswordFile string `toml:"password_file"`
	// Host and Port are the new master as the old master reaches it;
	// default: the [standby] host and port.
	Host string `toml:"host"`
	Port int    `toml:"port"`
	// CatchUpTimeout bounds the wait for the old master to replicate
	// everything the new one has (default 5m).
	CatchUpTimeout Duration `toml:"catch_up_timeout"`
}

// Validate checks the section's values.
func (r RejoinConfig) Validate() error {
	if r.Port < 0 || r.Port > 65535 {
		return fmt.Errorf("rejoin.port = %d: want 1-65535", r.Port)
	}
	if r.PasswordFile != "" && r.User == "" {
		return errors.New("rejoin.password_file is set without rejoin.user: name the user it belongs to")
	}
	if r.CatchUpTimeout.Duration < 0 {
		return fmt.Errorf("rejoin.catch_up_timeout = %s: want a positive duration", r.CatchUpTimeout)
	}
	return nil
}

// rejoinTarget is the resolved [rejoin] section.
type rejoinTarget struct {
	host     string
	port     int
	user     string
	password string // never printed
	// passwordSource says where the password came from, for errors.
	passwordSource string
	catchUp        time.Duration
}

func (t rejoinTarget) addr() string { return net.JoinHostPort(t.host, strconv.Itoa(t.port)) }

// rejoinTarget resolves the [rejoin] section with its defaults; it reads
// the password file now, so a changed file takes effect without a restart.
func (c Config) rejoinTarget() (rejoinTarget, error) {
	r := c.Rejoin
	t := rejoinTarget{host: r.Host, port: r.Port, user: r.User, password: c.password, catchUp: r.CatchUpTimeout.Duration}
	if t.host == "" {
		t.host = c.Standby.Host
	}
	if t.port == 0 {
		t.port = c.Standby.Port
	}
	if t.catchUp == 0 {
		t.catchUp = 5 * time.Minute
	}
	if t.user == "" {
		t.user, t.passwordSource = c.Master.User, "the [master] password"
		return t, nil
	}
	file := r.PasswordFile
	if file != "" && !filepath.IsAbs(file) && c.path != "" {
		file = filepath.Join(filepath.Dir(c.path), file)
	}
	pw, err := resolvePassword("rejoin", "", file, "")
	if err != nil {
		return t, err
	}
	t.password, t.passwordSource = pw, "rejoin.password_file "+file
	return t, nil
}

// opRejoin is the control op "rejoin": turn the recovered old master into a
// replica of the promoted standby, after checking that it holds nothing the
// new master lacks. With DryRun it checks everything and changes nothing.
func (a *Agent) opRejoin(ctx context.Context, p control.Peer, req control.Request) (string, error) {
	if a.failover == nil {
		return "", errors.New("rejoin: no standby: the agent has no [standby] section")
	}
	end, err := a.roleOps.begin("rejoin", p.String())
	if err != nil {
		return "", err
	}
	defer end()
	role, err := a.store.LoadRole()
	if err != nil {
		return "", err
	}
	if role.Role != checkpoint.RoleMaster {
		if role.Role == checkpoint.RolePromoting {
			return "", fmt.Errorf("%w: the promotion of epoch %d has not finished (step %s): finish it with `hotstandby promote` first", failover.ErrRejoinRefused, role.Epoch, role.Step)
		}
		return "", fmt.Errorf("%w: this agent's standby was never promoted (role %s): the master %s is still the master; rejoin only follows a promotion or switchover", failover.ErrRejoinRefused, role.Role, a.cfg.Master.Addr())
	}
	return a.rejoin(ctx, role, p.String(), req.DryRun)
}

// rejoinSession holds the connections of one rejoin.
type rejoinSession struct {
	a      *Agent
	log    *slog.Logger
	target rejoinTarget
	old    *sql.Conn // the old master, as the agent's [master] user
	newDB  *sql.DB   // the new master, as the agent's [standby] user
	oldID  uint32    // the old master's server_id
	// oldVersion is the old master's @@version.
	oldVersion string
}

// rejoin does the work of opRejoin once the role is checked. by is who
// asked, for the audit log.
func (a *Agent) rejoin(ctx context.Context, role checkpoint.Role, by string, dryRun bool) (string, error) {
	t, err := a.cfg.rejoinTarget()
	if err != nil {
		return "", fmt.Errorf("%w: %v", failover.ErrRejoinRefused, err)
	}
	s := &rejoinSession{a: a, log: a.log.With("component", "rejoin"), target: t}
	defer s.close()
	if err := s.openNew(ctx); err != nil {
		return "", s.refuse(err)
	}
	if err := s.checkReplicationUser(ctx); err != nil {
		return "", s.refuse(err)
	}
	if err := s.openOld(ctx); err != nil {
		return "", s.refuse(err)
	}
	if err := s.checkErrant(ctx, role); err != nil {
		return "", s.refuse(err)
	}
	if dryRun {
		return fmt.Sprintf("dry run: the old master %s holds nothing the new master %s lacks and can rejoin it as a replica; nothing changed", a.cfg.Master.Addr(), a.cfg.Standby.Addr()), nil
	}
	if err := s.setReadOnly(ctx); err != nil {
		return "", s.refuse(err)
	}
	start := time.Now()
	pos, err := s.replicate(ctx)
	if err != nil {
		text := fmt.Sprintf("rejoin of %s to %s failed: %v", a.cfg.Master.Addr(), t.addr(), err)
		a.auditBy("rejoin", by, text)
		return "", fmt.Errorf("rejoin: %w", err)
	}
	if err := s.verifyReadOnly(ctx); err != nil {
		return "", fmt.Errorf("rejoin: %w", err)
	}
	now := time.Now()
	role.Rejoined = fmt.Sprintf("%s at %s (caught up with %s)", a.cfg.Master.Addr(), now.UTC().Format(time.RFC3339), pos)
	role.UpdatedAt = now
	if err := a.store.SaveRole(role); err != nil {
		return "", fmt.Errorf("rejoin: record it in the role store: %w", err)
	}
	text := fmt.Sprintf("rejoined: old master %s (server_id %d) replicates from the new master %s as %s (MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1), read_only=ON, caught up with %s in %s",
		a.cfg.Master.Addr(), s.oldID, t.addr(), t.user, pos, now.Sub(start).Round(time.Millisecond))
	a.auditBy("rejoin", by, text)
	s.log.Warn("old master rejoined as a replica of the new master", "old_master", a.cfg.Master.Addr(), "new_master", t.addr(), "gtid", pos)
	return text, nil
}

func (a *Agent) auditBy(kind, by, text string) {
	if err := a.store.AuditBy(kind, by, text, time.Now()); err != nil {
		a.log.Error("audit log not written", "err", err, "text", text)
	}
}

// refuse wraps a failed precondition, with no secret in it.
func (s *rejoinSession) refuse(err error) error {
	msg := failover.Scrub(failover.Scrub(err.Error(), s.target.password), s.a.cfg.password)
	return fmt.Errorf("%w: %s", failover.ErrRejoinRefused, msg)
}

func (s *rejoinSession) close() {
	if s.old != nil {
		s.old.Close()
	}
	if s.newDB != nil {
		s.newDB.Close()
	}
}

// openNew connects to the new master (the promoted standby) and checks it
// is writable: a rejoin points the old master at the master of the
// current epoch only.
func (s *rejoinSession) openNew(ctx context.Context) error {
	db, err := sql.Open("mysql", s.a.cfg.StandbyDSN())
	if err != nil {
		return err
	}
	s.newDB = db
	var ro int
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.QueryRowContext(qctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return fmt.Errorf("the new master %s does not answer: %v", s.a.cfg.Standby.Addr(), err)
	}
	if ro != 0 {
		return fmt.Errorf("the new master %s is read_only: it is not the master (finish the promotion first)", s.a.cfg.Standby.Addr())
	}
	return nil
}

// checkReplicationUser logs in to the new master as the rejoin user, the way
// the old master's IO thread will, and checks it may replicate.
func (s *rejoinSession) checkReplicationUser(ctx context.Context) error {
	t := s.target
	m := mysql.NewConfig()
	m.User, m.Passwd, m.Net, m.Addr = t.user, t.password, "tcp", t.addr()
	m.Timeout, m.ReadTimeout = 5*time.Second, 10*time.Second
	db, err := sql.Open("mysql", m.FormatDSN())
	if err != nil {
		return fmt.Errorf("rejoin user %s: %v", t.user, err)
	}
	defer db.Close()
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := db.QueryContext(qctx, "SHOW GRANTS")
	if err != nil {
		return fmt.Errorf("the replication user %s cannot log in to the new master %s (%v): check its password (%s), or create the user there, or set [rejoin] user and password_file", t.user, t.addr(), err, t.passwordSource)
	}
	defer rows.Close()
	var grants []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return err
		}
		grants = append(grants, g)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if !failover.ReplicationPrivileged(grants) {
		return fmt.Errorf("the replication user %s on the new master %s lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO it, or set [rejoin] user", t.user, t.addr())
	}
	return nil
}

// openOld connects to the old master as the agent's [master] user.
func (s *rejoinSession) openOld(ctx context.Context) error {
	m, err := mysql.ParseDSN(s.a.cfg.MasterDSN())
	if err != nil {
		return err
	}
	m.Timeout, m.ReadTimeout, m.WriteTimeout = 5*time.Second, time.Minute, time.Minute
	connector, err := mysql.NewConnector(m)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := db.Conn(cctx)
	if err != nil {
		db.Close()
		return fmt.Errorf("the old master %s is unreachable (%v): start it, and if it crashed start it the first time with --init-rpl-role=SLAVE "+
			"(MariaDB 10.11.9+ then rolls back and truncates from its binlog the transactions no replica acknowledged; a normal start commits them for good), then run rejoin again",
			s.a.cfg.Master.Addr(), err)
	}
	s.old = conn
	var version string
	if err := conn.QueryRowContext(ctx, "SELECT @@server_id, @@version").Scan(&s.oldID, &version); err != nil {
		return fmt.Errorf("the old master %s: %v", s.a.cfg.Master.Addr(), err)
	}
	var newID uint32
	if err := s.newDB.QueryRowContext(ctx, "SELECT @@server_id").Scan(&newID); err != nil {
		return fmt.Errorf("the new master %s: %v", s.a.cfg.Standby.Addr(), err)
	}
	if newID == s.oldID {
		return fmt.Errorf("the old master %s and the new master %s have the same server_id %d: [master] points at the new master, or the servers share an id", s.a.cfg.Master.Addr(), s.a.cfg.Standby.Addr(), newID)
	}
	s.oldVersion = version
	if !atLeastVersion(version, 10, 10, 0) {
		return fmt.Errorf("the old master %s runs MariaDB %s: MASTER_DEMOTE_TO_SLAVE needs 10.10 or later", s.a.cfg.Master.Addr(), version)
	}
	return nil
}

// initRplRoleOption names the startup option that makes crash recovery
// truncate the unacknowledged tail on this version: --init-rpl-role=SLAVE
// since MDEV-33465 (10.11.9; 10.10 is end of life), before it
// rpl_semi_sync_slave_enabled=ON (MDEV-21117).
func initRplRoleOption(version string) string {
	if strings.HasPrefix(version, "10.10.") || (strings.HasPrefix(version, "10.11.") && !atLeastVersion(version, 10, 11, 9)) {
		return "--rpl-semi-sync-slave-enabled=ON (MariaDB " + version + " predates --init-rpl-role, MDEV-33465)"
	}
	return "--init-rpl-role=SLAVE"
}

// atLeastVersion compares a MariaDB @@version ("10.11.19-MariaDB-0+deb12u1")
// with major.minor.patch.
func atLeastVersion(version string, major, minor, patch int) bool {
	num, _, _ := strings.Cut(version, "-")
	parts := strings.Split(num, ".")
	want := []int{major, minor, patch}
	for i := range want {
		if i >= len(parts) {
			return false
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return false
		}
		if n != want[i] {
			return n > want[i]
		}
	}
	return true
}

// gtidState reads @@gtid_binlog_state on a connection.
func gtidState(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) ([]binlog.GTID, string, error) {
	var s string
	if err := q.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_state").Scan(&s); err != nil {
		return nil, "", err
	}
	g, err := failover.ParseGTIDState(s)
	return g, s, err
}

// checkErrant compares the servers' GTID histories: anything the old master
// has and the new one lacks refuses the rejoin, with the list, and says
// whether it is the unacknowledged tail of its death.
func (s *rejoinSession) checkErrant(ctx context.Context, role checkpoint.Role) error {
	oldState, oldText, err := gtidState(ctx, s.old)
	if err != nil {
		return fmt.Errorf("the old master %s: read gtid_binlog_state: %v", s.a.cfg.Master.Addr(), err)
	}
	newState, newText, err := gtidState(ctx, s.newDB)
	if err != nil {
		return fmt.Errorf("the new master %s: read gtid_binlog_state: %v", s.a.cfg.Standby.Addr(), err)
	}
	ranges := failover.ErrantRanges(oldState, newState)
	if len(ranges) == 0 {
		s.log.Info("the old master holds nothing the new master lacks", "old_state", oldText, "new_state", newText)
		return nil
	}
	facts, err := s.scanBinlog(ctx, ranges)
	unread := ""
	if err != nil {
		s.log.Warn("could not list the errant transactions from the old master's binlog; reporting ranges", "err", err)
		unread = fmt.Sprintf(" (its binlog could not be read to tell: %v; GRANT BINLOG MONITOR to %s there)", err, s.a.cfg.Master.User)
	}
	list := failover.DescribeErrant(ranges)
	where := fmt.Sprintf("the old master %s (gtid_binlog_state %s) has transactions the new master %s (gtid_binlog_state %s) lacks: %s",
		s.a.cfg.Master.Addr(), oldText, s.a.cfg.Standby.Addr(), newText, list)
	tail, why := failover.TailVerdict(role, ranges, facts)
	if !tail {
		return fmt.Errorf("%s; they are errant (%s%s): replicating would diverge; inspect them (mariadb-binlog on the old master), then rebuild the old master from the new one or discard its data", where, why, unread)
	}
	// The tail is in a binlog file the old master no longer writes: it has
	// started since it died, and that start ran crash recovery. Had it
	// been started with --init-rpl-role=SLAVE, recovery would have removed
	// them; a normal start committed them, and MariaDB truncates only at
	// the first recovery of the crashed binlog.
	return fmt.Errorf("%s; they are the unacknowledged AFTER_SYNC tail of its crash (the end of %s: written to its binlog, never acknowledged, never OK'd to a client), "+
		"but it was started since without --init-rpl-role=SLAVE and crash recovery committed them: no restart removes them now (MariaDB truncates the tail only when the first start after the crash has --init-rpl-role=SLAVE); "+
		"restore its files from before that start and start it with %s, or rebuild it from the new master", where, facts.TailFile, initRplRoleOption(s.oldVersion))
}

// scanBinlog reads the old master's binlog files, newest first, for the
// errant transactions: it fills each range's GTIDs and says where they are.
// It reads back until each range's start is behind it (a file's Gtid_list
// says what came before it), at most 8 files.
func (s *rejoinSession) scanBinlog(ctx context.Context, ranges []failover.ErrantRange) (failover.TailFacts, error) {
	var facts failover.TailFacts
	files, err := s.binaryLogs(ctx)
	if err != nil || len(files) == 0 {
		return facts, err
	}
	facts.LastFile = files[len(files)-1]
	type key struct{ d, s uint32 }
	idx := map[key]int{}
	for i, r := range ranges {
		idx[key{r.Domain, r.Server}] = i
	}
	found := make([][]binlog.GTID, len(ranges))
	inFile := map[string]bool{}
	for i := len(files) - 1; i >= 0 && i >= len(files)-8; i-- {
		f := files[i]
		evs, err := s.binlogEvents(ctx, f)
		if err != nil {
			return facts, err
		}
		fileGTIDs := make([][]binlog.GTID, len(ranges))
		seenErrant, afterErrant, rotates := false, false, false
		behind := true
		for _, ev := range evs {
			switch ev.typ {
			case "Gtid_list":
				list, _ := failover.ParseGTIDList(ev.info)
				have := map[key]uint64{}
				for _, g := range list {
					have[key{g.Domain, g.Server}] = g.Seq
				}
				for _, r := range ranges {
					if have[key{r.Domain, r.Server}] > r.After {
						behind = false // the range began before this file
					}
				}
			case "Gtid":
				g, ok := failover.ParseGTIDInfo(ev.info)
				if !ok {
					continue
				}
				j, errant := idx[key{g.Domain, g.Server}]
				if errant && g.Seq > ranges[j].After {
					fileGTIDs[j] = append(fileGTIDs[j], g)
					seenErrant = true
				} else if seenErrant {
					afterErrant = true
				}
			case "Rotate":
				rotates = true
			}
		}
		for j := range ranges {
			found[j] = append(fileGTIDs[j], found[j]...)
		}
		if seenErrant {
			inFile[f] = true
			facts.TailFile = f
			facts.TailAtEnd = !afterErrant && !rotates
		}
		if behind {
			break
		}
	}
	if len(inFile) != 1 {
		facts.TailFile, facts.TailAtEnd = "", false
	}
	for j := range ranges {
		ranges[j].GTIDs = found[j]
	}
	return facts, nil
}

func (s *rejoinSession) binaryLogs(ctx context.Context) ([]string, error) {
	rows, err := replica.QueryRows(ctx, s.old, "SHOW BINARY LOGS")
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(rows))
	for _, r := range rows {
		files = append(files, r["Log_name"])
	}
	return files, nil
}

type binlogEvent struct{ typ, info string }

func (s *rejoinSession) binlogEvents(ctx context.Context, file string) ([]binlogEvent, error) {
	rows, err := s.old.QueryContext(ctx, "SHOW BINLOG EVENTS IN "+failover.SQLString(file))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var evs []binlogEvent
	for rows.Next() {
		var logName, typ, info string
		var pos, serverID, end uint64
		if err := rows.Scan(&logName, &pos, &typ, &serverID, &end, &info); err != nil {
			return nil, err
		}
		if typ == "Gtid" || typ == "Gtid_list" || typ == "Rotate" {
			evs = append(evs, binlogEvent{typ, info})
		}
	}
	return evs, rows.Err()
}

// setReadOnly makes the old master read-only before it is pointed at the
// new one, and checks it took.
func (s *rejoinSession) setReadOnly(ctx context.Context) error {
	var ro int
	if err := s.old.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return fmt.Errorf("the old master %s: read read_only: %v", s.a.cfg.Master.Addr(), err)
	}
	if ro == 0 {
		s.log.Warn("the old master is writable: setting read_only=ON", "old_master", s.a.cfg.Master.Addr())
		if _, err := s.old.ExecContext(ctx, "SET GLOBAL read_only = ON"); err != nil {
			return fmt.Errorf("the old master %s is writable and the agent's user cannot make it read-only (%v): GRANT READ_ONLY ADMIN to %s there, or set read_only=ON yourself", s.a.cfg.Master.Addr(), err, s.a.cfg.Master.User)
		}
	}
	return s.verifyReadOnly(ctx)
}

func (s *rejoinSession) verifyReadOnly(ctx context.Context) error {
	var ro int
	if err := s.old.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil || ro == 0 {
		return fmt.Errorf("the old master %s: read_only reads back %d (%v): it may take client writes", s.a.cfg.Master.Addr(), ro, err)
	}
	return nil
}

// replicate points the old master at the new one and waits until it has
// replicated everything the new master had when it started: its IO and SQL
// threads run, and gtid_slave_pos reached the new master's gtid_binlog_pos.
// It returns that position.
func (s *rejoinSession) replicate(ctx context.Context) (string, error) {
	t := s.target
	old := s.a.cfg.Master.Addr()
	if st, err := replica.ReadSlaveStatus(ctx, s.old); err != nil {
		return "", fmt.Errorf("the old master %s: SHOW SLAVE STATUS: %v", old, err)
	} else if len(st) > 0 {
		s.log.Warn("the old master has a replication configuration; replacing it", "old_master", old, "master_host", st["Master_Host"], "master_port", st["Master_Port"])
		if _, err := s.old.ExecContext(ctx, "STOP SLAVE"); err != nil {
			return "", fmt.Errorf("the old master %s: STOP SLAVE: %v", old, err)
		}
	}
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1",
		failover.SQLString(t.host), t.port, failover.SQLString(t.user), failover.SQLString(t.password))
	if _, err := s.old.ExecContext(ctx, change); err != nil {
		return "", fmt.Errorf("the old master %s: CHANGE MASTER TO %s (MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1): %s; GRANT REPLICATION SLAVE ADMIN to %s there if it is missing",
			old, t.addr(), failover.Scrub(err.Error(), t.password), s.a.cfg.Master.User)
	}
	// A replica has no semi-sync replicas of its own: with the semi-sync
	// master on, each replicated commit would wait out its timeout.
	if _, err := s.old.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled = OFF"); err != nil {
		return "", fmt.Errorf("the old master %s: SET GLOBAL rpl_semi_sync_master_enabled = OFF: %v", old, err)
	}
	if _, err := s.old.ExecContext(ctx, "START SLAVE"); err != nil {
		return "", fmt.Errorf("the old master %s: START SLAVE: %s", old, failover.Scrub(err.Error(), t.password))
	}
	var pos string
	if err := s.newDB.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&pos); err != nil {
		return "", fmt.Errorf("the new master %s: read gtid_binlog_pos: %v", s.a.cfg.Standby.Addr(), err)
	}
	deadline := time.Now().Add(t.catchUp)
	for {
		st, err := replica.ReadSlaveStatus(ctx, s.old)
		if err != nil {
			return "", fmt.Errorf("the old master %s: SHOW SLAVE STATUS: %v", old, err)
		}
		if e := st["Last_IO_Error"] + st["Last_SQL_Error"]; e != "" && (st["Slave_IO_Running"] != "Yes" || st["Slave_SQL_Running"] != "Yes") {
			return "", fmt.Errorf("the old master %s stopped replicating from %s: IO %s, SQL %s: %s",
				old, t.addr(), st["Slave_IO_Running"], st["Slave_SQL_Running"], failover.Scrub(e, t.password))
		}
		if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
			var done sql.NullInt64
			if err := s.old.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 0.5)", pos).Scan(&done); err != nil {
				return "", fmt.Errorf("the old master %s: MASTER_GTID_WAIT(%s): %v", old, pos, err)
			}
			if done.Valid && done.Int64 == 0 {
				return pos, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the old master %s replicates from %s (IO %s, SQL %s) but has not reached %s after %s (gtid_slave_pos %s): it stays a read-only replica; check it with SHOW SLAVE STATUS",
				old, t.addr(), st["Slave_IO_Running"], st["Slave_SQL_Running"], pos, t.catchUp, st["Gtid_Slave_Pos"])
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
