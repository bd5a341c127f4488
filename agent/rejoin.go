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
	"github.com/hotstandby/hotstandby/verify"
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
	oldDB  *sql.DB   // the pool old came from, for the data check
	newDB  *sql.DB   // the new master, as the agent's [standby] user
	oldID  uint32    // the old master's own server_id
	// oldVersion is the old master's @@version.
	oldVersion string
	// checkedState is the old master's gtid_binlog_state that the errant
	// check passed, after the fence.
	checkedState string
}

// rejoinStep, when set (tests only), is called at each named step of a
// rejoin: "fenced", "errant-checked", "changed-master", "hole-started",
// "hole-filled", "caught-up".
var rejoinStep func(step string)

func (s *rejoinSession) step(name string) {
	if rejoinStep != nil {
		rejoinStep(name)
	}
}

// rejoin does the work of opRejoin once the role is checked. by is who
// asked, for the audit log.
//
// The order is what makes it safe: the old master is fenced (read_only=ON
// read back, every client connection killed) before its GTID history is
// compared with the new master's, so nothing a client writes can land
// between the check and the CHANGE MASTER (whose MASTER_DEMOTE_TO_SLAVE
// would absorb it into gtid_slave_pos unreported); a write that still gets
// in (a user with READ_ONLY ADMIN) moves the gtid_binlog_state, which is
// read again after the CHANGE MASTER and before START SLAVE, and refuses.
// "Caught up" then means the data: no (domain, server) history of the new
// master is missing on the old one, nothing is on the old one that the new
// one lacks, and verify finds every table equal.
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
	if err := s.openOld(ctx, role); err != nil {
		return "", s.refuse(err)
	}
	if err := s.checkCanVerify(ctx); err != nil {
		return "", s.refuse(err)
	}
	if dryRun {
		// A dry run changes nothing, so it does not fence: its answer is
		// true of this moment only.
		if err := s.checkErrant(ctx, role); err != nil {
			return "", s.refuse(err)
		}
		hole, err := s.ownHole(ctx)
		if err != nil {
			return "", s.refuse(err)
		}
		more := ""
		if len(hole) > 0 {
			more = fmt.Sprintf("; it lacks %s of its own transactions that the new master holds (truncated by its crash recovery), which rejoin will replicate back", failover.DescribeErrant(hole))
		}
		return fmt.Sprintf("dry run: the old master %s holds nothing the new master %s lacks and can rejoin it as a replica%s; nothing changed (a rejoin fences it first and checks again)", a.cfg.Master.Addr(), a.cfg.Standby.Addr(), more), nil
	}
	if err := s.fence(ctx); err != nil {
		return "", s.refuse(err)
	}
	s.step("fenced")
	if err := s.checkErrant(ctx, role); err != nil {
		return "", s.refuse(err)
	}
	s.step("errant-checked")
	start := time.Now()
	res, err := s.replicate(ctx)
	if err != nil {
		if errors.Is(err, failover.ErrRejoinRefused) {
			return "", err
		}
		text := fmt.Sprintf("rejoin of %s to %s failed: %s", a.cfg.Master.Addr(), t.addr(), failover.Scrub(err.Error(), t.password))
		a.auditBy("rejoin", by, text)
		return "", fmt.Errorf("rejoin: %s", failover.Scrub(err.Error(), t.password))
	}
	if err := s.verifyReadOnly(ctx); err != nil {
		return "", fmt.Errorf("rejoin: %w", err)
	}
	s.step("caught-up")
	check, err := s.checkCaughtUp(ctx, res.pos, res.newState, time.Until(start.Add(t.catchUp)))
	if err != nil {
		text := fmt.Sprintf("rejoin of %s to %s: it replicates (read_only=ON) and reached %s, but it is not caught up: %v", a.cfg.Master.Addr(), t.addr(), res.pos, err)
		a.auditBy("rejoin", by, text)
		s.log.Error("rejoined old master does not hold the new master's data", "err", err)
		return "", errors.New(text)
	}
	now := time.Now()
	role.Rejoined = fmt.Sprintf("%s at %s (caught up with %s)", a.cfg.Master.Addr(), now.UTC().Format(time.RFC3339), res.pos)
	role.UpdatedAt = now
	if err := a.store.SaveRole(role); err != nil {
		return "", fmt.Errorf("rejoin: record it in the role store: %w", err)
	}
	restored := ""
	if len(res.hole) > 0 {
		restored = fmt.Sprintf("; restored %s, its own transactions that its crash recovery had truncated, by replicating them under the temporary server_id %d (server_id %d again now)",
			failover.DescribeErrant(res.hole), res.tempID, s.oldID)
	}
	text := fmt.Sprintf("rejoined: old master %s (server_id %d) replicates from the new master %s as %s (MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1), read_only=ON, caught up with %s in %s%s; verified: %s",
		a.cfg.Master.Addr(), s.oldID, t.addr(), t.user, res.pos, now.Sub(start).Round(time.Millisecond), restored, check)
	a.auditBy("rejoin", by, text)
	s.log.Warn("old master rejoined as a replica of the new master", "old_master", a.cfg.Master.Addr(), "new_master", t.addr(), "gtid", res.pos, "verified", check)
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
	if s.oldDB != nil {
		s.oldDB.Close()
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

// openOld connects to the old master as the agent's [master] user. Its own
// server_id is the one the promotion recorded; a server_id that a rejoin
// lends it (TempServerIDs) and that a rejoin which died left there is given
// back here, replication stopped first.
func (s *rejoinSession) openOld(ctx context.Context, role checkpoint.Role) error {
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
			"(MariaDB 10.11.9+ then rolls back and truncates from its binlog the transactions InnoDB had not committed: those no replica acknowledged, and some the standby did, which rejoin brings back from the new master; a normal start commits them all for good), then run rejoin again",
			s.a.cfg.Master.Addr(), err)
	}
	s.old, s.oldDB = conn, db
	var version string
	var cur uint32
	if err := conn.QueryRowContext(ctx, "SELECT @@server_id, @@version").Scan(&cur, &version); err != nil {
		return fmt.Errorf("the old master %s: %v", s.a.cfg.Master.Addr(), err)
	}
	s.oldID = cur
	if own := role.OldMaster.ServerID; own != 0 && cur != own {
		if !failover.IsTempServerID(cur, own) {
			return fmt.Errorf("the server at %s has server_id %d, but the promotion recorded the old master's as %d: [master] does not point at the old master", s.a.cfg.Master.Addr(), cur, own)
		}
		s.log.Warn("the old master still has the temporary server_id of a rejoin that did not finish: stopping its replication and giving its own back", "server_id", cur, "own", own)
		if _, err := conn.ExecContext(ctx, "STOP SLAVE"); err != nil {
			return fmt.Errorf("the old master %s has the temporary server_id %d of an unfinished rejoin; STOP SLAVE: %v", s.a.cfg.Master.Addr(), cur, err)
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("SET GLOBAL server_id = %d", own)); err != nil {
			return fmt.Errorf("the old master %s has the temporary server_id %d of an unfinished rejoin and cannot get %d back (%v): SET GLOBAL server_id = %d there", s.a.cfg.Master.Addr(), cur, own, err, own)
		}
		s.oldID = own
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

// checkCanVerify makes sure both users may read every table, for the data
// check that ends a rejoin.
func (s *rejoinSession) checkCanVerify(ctx context.Context) error {
	if err := verify.CheckCanRead(ctx, s.newDB, "new master ([standby] user)"); err != nil {
		return fmt.Errorf("the rejoin compares the data of both servers at the end: %v", err)
	}
	if err := verify.CheckCanRead(ctx, s.oldDB, "old master ([master] user)"); err != nil {
		return fmt.Errorf("the rejoin compares the data of both servers at the end: %v", err)
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
	s.checkedState = oldText
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

// fence makes the old master read-only and ends every client session on
// it before anything is checked (failover.FenceOldMaster: read_only=ON,
// every client connection killed, read_only read back), then opens this
// session's connection again (the fence killed it too). Only then is the
// GTID history compared, so the comparison sees everything a client of the
// old master will ever have committed there; a user who bypasses read_only
// is caught by the second look after CHANGE MASTER.
func (s *rejoinSession) fence(ctx context.Context) error {
	old := s.a.cfg.Master.Addr()
	res := failover.FenceOldMaster(ctx, s.a.cfg.MasterDSN(), 0, s.log)
	if !res.Fenced() {
		return fmt.Errorf("the old master %s must be fenced before its GTIDs are checked, and it was not (%s): GRANT READ_ONLY ADMIN, CONNECTION ADMIN and PROCESS to %s there", old, res.Summary(), s.a.cfg.Master.User)
	}
	s.old.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := s.oldDB.Conn(cctx)
	if err != nil {
		s.old = nil
		return fmt.Errorf("the old master %s is fenced (%s) but does not answer again: %v", old, res.Summary(), err)
	}
	s.old = conn
	if err := s.verifyReadOnly(ctx); err != nil {
		return err
	}
	s.log.Info("old master fenced before the GTID check", "old_master", old, "fence", res.Summary())
	return nil
}

func (s *rejoinSession) verifyReadOnly(ctx context.Context) error {
	var ro int
	if err := s.old.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil || ro == 0 {
		return fmt.Errorf("the old master %s: read_only reads back %d (%v): it may take client writes", s.a.cfg.Master.Addr(), ro, err)
	}
	return nil
}

// replicated is what replicate did.
type replicated struct {
	pos      string                 // the new master's gtid_binlog_pos the old one reached
	newState []binlog.GTID          // the new master's gtid_binlog_state at that moment
	hole     []failover.ErrantRange // the old master's own transactions it got back
	tempID   uint32                 // the server_id it had meanwhile (0: none)
}

// ownHole returns the old master's own transactions that the new master
// holds and the old one lacks (see failover.OwnHole).
func (s *rejoinSession) ownHole(ctx context.Context) ([]failover.ErrantRange, error) {
	oldState, _, err := gtidState(ctx, s.old)
	if err != nil {
		return nil, fmt.Errorf("the old master %s: read gtid_binlog_state: %v", s.a.cfg.Master.Addr(), err)
	}
	newState, _, err := gtidState(ctx, s.newDB)
	if err != nil {
		return nil, fmt.Errorf("the new master %s: read gtid_binlog_state: %v", s.a.cfg.Standby.Addr(), err)
	}
	return failover.OwnHole(newState, oldState, s.oldID), nil
}

// replicate points the old master at the new one and waits until it has
// replicated everything the new master had when it started: its IO and SQL
// threads run, and gtid_slave_pos reached the new master's gtid_binlog_pos.
//
// When the new master holds transactions of the old master's own server_id
// that the old master lacks (its crash recovery truncated them: they were
// acknowledged by the standby, and possibly OK'd, but not committed in
// InnoDB), its IO thread would drop them as its own and move gtid_slave_pos
// past them. So for that stretch the old master gets a temporary server_id
// that no server in either history, no replica of the new master and
// neither server uses; it replicates until its gtid_binlog_state holds them
// (the SQL thread applied and binlogged them with their own server_id and
// GTID, which log_slave_updates keeps), then replication stops, its own
// server_id is given back, and replication starts again. This is safe
// because the old master is fenced meanwhile (read_only, clients killed):
// the only writer is its SQL thread, which binlogs each event with the
// event's server_id, never the server's; a write by a user who bypasses
// read_only would carry the temporary id and is caught by the errant check
// after catch-up. A rejoin that dies meanwhile leaves the temporary id,
// which the next rejoin recognises and gives back (openOld); a restart
// reads the option file's.
func (s *rejoinSession) replicate(ctx context.Context) (replicated, error) {
	var res replicated
	t := s.target
	old := s.a.cfg.Master.Addr()
	if st, err := replica.ReadSlaveStatus(ctx, s.old); err != nil {
		return res, fmt.Errorf("the old master %s: SHOW SLAVE STATUS: %v", old, err)
	} else if len(st) > 0 {
		s.log.Warn("the old master has a replication configuration; replacing it", "old_master", old, "master_host", st["Master_Host"], "master_port", st["Master_Port"])
		if _, err := s.old.ExecContext(ctx, "STOP SLAVE"); err != nil {
			return res, fmt.Errorf("the old master %s: STOP SLAVE: %v", old, err)
		}
	}
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1",
		failover.SQLString(t.host), t.port, failover.SQLString(t.user), failover.SQLString(t.password))
	if _, err := s.old.ExecContext(ctx, change); err != nil {
		return res, fmt.Errorf("the old master %s: CHANGE MASTER TO %s (MASTER_USE_GTID=slave_pos, MASTER_DEMOTE_TO_SLAVE=1): %s; GRANT REPLICATION SLAVE ADMIN to %s there if it is missing",
			old, t.addr(), failover.Scrub(err.Error(), t.password), s.a.cfg.Master.User)
	}
	s.step("changed-master")
	// The errant check passed on checkedState, after the fence. A write
	// that got in since (by a user with READ_ONLY ADMIN) would be taken
	// into gtid_slave_pos by MASTER_DEMOTE_TO_SLAVE and hidden: refuse.
	_, now, err := gtidState(ctx, s.old)
	if err != nil {
		return res, fmt.Errorf("the old master %s: read gtid_binlog_state: %v", old, err)
	}
	if now != s.checkedState {
		_, _ = s.old.ExecContext(ctx, "RESET SLAVE ALL")
		return res, fmt.Errorf("%w: the old master %s took writes while it was fenced (by a user with READ_ONLY ADMIN or SUPER): its gtid_binlog_state went from %s to %s after the errant check; its replication configuration is reset; find who writes there, then inspect the new GTIDs and rebuild it or run rejoin again",
			failover.ErrRejoinRefused, old, s.checkedState, now)
	}
	// A replica has no semi-sync replicas of its own: with the semi-sync
	// master on, each replicated commit would wait out its timeout.
	if _, err := s.old.ExecContext(ctx, "SET GLOBAL rpl_semi_sync_master_enabled = OFF"); err != nil {
		return res, fmt.Errorf("the old master %s: SET GLOBAL rpl_semi_sync_master_enabled = OFF: %v", old, err)
	}
	deadline := time.Now().Add(t.catchUp)
	hole, err := s.ownHole(ctx)
	if err != nil {
		return res, err
	}
	if len(hole) > 0 {
		var oldPos string
		if err := s.old.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&oldPos); err != nil {
			return res, fmt.Errorf("the old master %s: read gtid_binlog_pos: %v", old, err)
		}
		pos, err := failover.ParseGTIDState(oldPos)
		if err != nil {
			return res, fmt.Errorf("the old master %s: gtid_binlog_pos %q: %v", old, oldPos, err)
		}
		if out := failover.HoleUnreachable(pos, hole); len(out) > 0 {
			_, _ = s.old.ExecContext(ctx, "RESET SLAVE ALL")
			return res, fmt.Errorf("%w: the old master %s lacks %s of its own transactions that the new master holds, and replication from its position %s cannot bring them back (they are behind it: it already replicated past them, as a rejoin before this version did); it is read-only and does not replicate: rebuild it from the new master",
				failover.ErrRejoinRefused, old, failover.DescribeErrant(out), oldPos)
		}
		tempID, err := s.fillHole(ctx, hole, deadline)
		if err != nil {
			return res, err
		}
		res.hole, res.tempID = hole, tempID
	} else if _, err := s.old.ExecContext(ctx, "START SLAVE"); err != nil {
		return res, fmt.Errorf("the old master %s: START SLAVE: %s", old, failover.Scrub(err.Error(), t.password))
	}
	if err := s.newDB.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&res.pos); err != nil {
		return res, fmt.Errorf("the new master %s: read gtid_binlog_pos: %v", s.a.cfg.Standby.Addr(), err)
	}
	if res.newState, _, err = gtidState(ctx, s.newDB); err != nil {
		return res, fmt.Errorf("the new master %s: read gtid_binlog_state: %v", s.a.cfg.Standby.Addr(), err)
	}
	for {
		st, err := s.slaveRunning(ctx)
		if err != nil {
			return res, err
		}
		if st["Slave_IO_Running"] == "Yes" && st["Slave_SQL_Running"] == "Yes" {
			var done sql.NullInt64
			if err := s.old.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 0.5)", res.pos).Scan(&done); err != nil {
				return res, fmt.Errorf("the old master %s: MASTER_GTID_WAIT(%s): %v", old, res.pos, err)
			}
			if done.Valid && done.Int64 == 0 {
				return res, nil
			}
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("the old master %s replicates from %s (IO %s, SQL %s) but has not reached %s after %s (gtid_slave_pos %s): it stays a read-only replica; check it with SHOW SLAVE STATUS",
				old, t.addr(), st["Slave_IO_Running"], st["Slave_SQL_Running"], res.pos, t.catchUp, st["Gtid_Slave_Pos"])
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return res, err
		}
	}
}

// slaveRunning reads SHOW SLAVE STATUS and fails if a thread stopped with
// an error.
func (s *rejoinSession) slaveRunning(ctx context.Context) (map[string]string, error) {
	old := s.a.cfg.Master.Addr()
	st, err := replica.ReadSlaveStatus(ctx, s.old)
	if err != nil {
		return nil, fmt.Errorf("the old master %s: SHOW SLAVE STATUS: %v", old, err)
	}
	if e := st["Last_IO_Error"] + st["Last_SQL_Error"]; e != "" && (st["Slave_IO_Running"] != "Yes" || st["Slave_SQL_Running"] != "Yes") {
		return nil, fmt.Errorf("the old master %s stopped replicating from %s: IO %s, SQL %s: %s",
			old, s.target.addr(), st["Slave_IO_Running"], st["Slave_SQL_Running"], failover.Scrub(e, s.target.password))
	}
	return st, nil
}

// fillHole replicates the old master's own lost transactions under a
// temporary server_id (see replicate) and returns that id. It leaves
// replication running with the old master's own server_id back, or, on an
// error, stopped with its own server_id back.
func (s *rejoinSession) fillHole(ctx context.Context, hole []failover.ErrantRange, deadline time.Time) (uint32, error) {
	old := s.a.cfg.Master.Addr()
	used, err := s.usedServerIDs(ctx)
	if err != nil {
		return 0, err
	}
	tempID, ok := failover.PickTempServerID(s.oldID, used)
	if !ok {
		return 0, fmt.Errorf("the old master %s lacks %s of its own transactions, but every temporary server_id a rejoin may lend it is in use", old, failover.DescribeErrant(hole))
	}
	s.log.Warn("the old master lacks its own transactions that the new master holds (truncated by its crash recovery): replicating them under a temporary server_id",
		"missing", failover.DescribeErrant(hole), "server_id", s.oldID, "temporary", tempID)
	// Whatever happens next, the old master gets its own server_id back;
	// replication is stopped first, so that nothing is received or
	// applied under the wrong one.
	restored := false
	restore := func() error {
		if restored {
			return nil
		}
		if _, err := s.old.ExecContext(context.WithoutCancel(ctx), "STOP SLAVE"); err != nil {
			return fmt.Errorf("the old master %s: STOP SLAVE: %v", old, err)
		}
		if _, err := s.old.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("SET GLOBAL server_id = %d", s.oldID)); err != nil {
			return fmt.Errorf("the old master %s keeps the temporary server_id %d (%v): SET GLOBAL server_id = %d there (a rejoin does it too)", old, tempID, err, s.oldID)
		}
		restored = true
		return nil
	}
	defer func() {
		if err := restore(); err != nil {
			s.log.Error("could not give the old master its own server_id back", "err", err)
		}
	}()
	if _, err := s.old.ExecContext(ctx, fmt.Sprintf("SET GLOBAL server_id = %d", tempID)); err != nil {
		return 0, fmt.Errorf("the old master %s lacks %s of its own transactions, which it can only replicate under another server_id, and SET GLOBAL server_id failed (%v): GRANT REPLICATION MASTER ADMIN to %s there", old, failover.DescribeErrant(hole), err, s.a.cfg.Master.User)
	}
	if _, err := s.old.ExecContext(ctx, "START SLAVE"); err != nil {
		return 0, fmt.Errorf("the old master %s: START SLAVE: %s", old, failover.Scrub(err.Error(), s.target.password))
	}
	s.step("hole-started")
	for {
		st, err := s.slaveRunning(ctx)
		if err != nil {
			return 0, err
		}
		oldState, _, err := gtidState(ctx, s.old)
		if err != nil {
			return 0, fmt.Errorf("the old master %s: read gtid_binlog_state: %v", old, err)
		}
		if failover.HoleFilled(oldState, hole) {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the old master %s has not got back %s of its own transactions from %s after %s (IO %s, SQL %s, gtid_binlog_state %s): its replication is stopped, read-only",
				old, failover.DescribeErrant(hole), s.target.addr(), s.target.catchUp, st["Slave_IO_Running"], st["Slave_SQL_Running"], failover.FormatGTIDs(oldState))
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return 0, err
		}
	}
	s.step("hole-filled")
	if err := restore(); err != nil {
		return 0, err
	}
	if _, err := s.old.ExecContext(ctx, "START SLAVE"); err != nil {
		return 0, fmt.Errorf("the old master %s: START SLAVE: %s", old, failover.Scrub(err.Error(), s.target.password))
	}
	return tempID, nil
}

// usedServerIDs lists the server_ids a temporary one must not be: both
// servers', the agent's, every server in either GTID history, and every
// replica registered with the new master (a second dump with the same
// server_id makes the master end the first).
func (s *rejoinSession) usedServerIDs(ctx context.Context) (map[uint32]bool, error) {
	used := map[uint32]bool{s.oldID: true, s.a.cfg.ServerID: true}
	var newID uint32
	if err := s.newDB.QueryRowContext(ctx, "SELECT @@server_id").Scan(&newID); err != nil {
		return nil, fmt.Errorf("the new master %s: %v", s.a.cfg.Standby.Addr(), err)
	}
	used[newID] = true
	for _, q := range []interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}{s.old, s.newDB} {
		state, _, err := gtidState(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, g := range state {
			used[g.Server] = true
		}
	}
	hosts, err := replica.QueryRows(ctx, s.newDB, "SHOW SLAVE HOSTS")
	if err != nil {
		return nil, fmt.Errorf("the new master %s: SHOW SLAVE HOSTS: %v", s.a.cfg.Standby.Addr(), err)
	}
	for _, h := range hosts {
		if id, err := strconv.ParseUint(h["Server_id"], 10, 32); err == nil {
			used[uint32(id)] = true
		}
	}
	return used, nil
}

// checkCaughtUp checks that the rejoined old master holds the new master's
// data, not only its GTID position: the new master's history of the old
// master's server_id at pos is all on the old master, the old one holds
// nothing the new one lacks, and verify finds every table equal in
// snapshots at one GTID position (waiting up to timeout, at least 30s, for
// the two to meet). It returns verify's summary.
func (s *rejoinSession) checkCaughtUp(ctx context.Context, pos string, newAtPos []binlog.GTID, timeout time.Duration) (string, error) {
	oldState, _, err := gtidState(ctx, s.old)
	if err != nil {
		return "", fmt.Errorf("read gtid_binlog_state: %v", err)
	}
	// Its own server_id's history is the one native replication can skip
	// (see replicate). Others that differ (a transaction written on the
	// standby before it was one) are the data check's to judge.
	if missing := failover.OwnHole(newAtPos, oldState, s.oldID); len(missing) > 0 {
		return "", fmt.Errorf("its binlog lacks %s of its own server_id that the new master had at %s (gtid_slave_pos went past them): rebuild it from the new master", failover.DescribeErrant(missing), pos)
	}
	newState, _, err := gtidState(ctx, s.newDB)
	if err != nil {
		return "", fmt.Errorf("the new master: read gtid_binlog_state: %v", err)
	}
	if errant := failover.ErrantRanges(oldState, newState); len(errant) > 0 {
		return "", fmt.Errorf("it holds %s that the new master lacks (written on it during the rejoin by a user who bypasses read_only): inspect them, then rebuild it from the new master", failover.DescribeErrant(errant))
	}
	timeout = max(timeout, 30*time.Second)
	// The new master may be taking writes: for each of its snapshots the
	// old master's replication is stopped at that snapshot's position, so
	// the two meet; it is started again whatever the comparison says.
	stopAt := func(ctx context.Context, pos string) error {
		if _, err := s.old.ExecContext(ctx, "STOP SLAVE"); err != nil {
			return err
		}
		_, err := s.old.ExecContext(ctx, "START SLAVE UNTIL master_gtid_pos = "+failover.SQLString(pos))
		return err
	}
	rep, err := verify.Compare(ctx, s.newDB, s.oldDB, verify.Options{Consistent: true, Timeout: timeout, StopStandbyAt: stopAt})
	if _, rerr := s.old.ExecContext(context.WithoutCancel(ctx), "STOP SLAVE"); rerr != nil && err == nil {
		err = fmt.Errorf("STOP SLAVE after the comparison: %v", rerr)
	}
	if _, rerr := s.old.ExecContext(context.WithoutCancel(ctx), "START SLAVE"); rerr != nil && err == nil {
		err = fmt.Errorf("START SLAVE after the comparison: %s", failover.Scrub(rerr.Error(), s.target.password))
	}
	if err != nil {
		return "", fmt.Errorf("its data could not be compared with the new master's: %v", err)
	}
	if !rep.Equal {
		var diffs []string
		for _, tr := range rep.Tables {
			if !tr.Equal {
				diffs = append(diffs, fmt.Sprintf("%s: %s", tr.Name(), strings.Join(tr.Diffs, ", ")))
			}
		}
		return "", fmt.Errorf("its data differs from the new master's at %s in %d of %d tables (verify: master = the new master, standby = the old one): %s; rebuild it from the new master",
			rep.MasterGTID, rep.Differing(), len(rep.Tables), strings.Join(diffs, "; "))
	}
	return fmt.Sprintf("all %d tables equal at %s", len(rep.Tables), rep.MasterGTID), nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
