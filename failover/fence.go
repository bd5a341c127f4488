package failover

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// DefaultFenceTimeout bounds FenceOldMaster when it is given no timeout.
const DefaultFenceTimeout = 5 * time.Second

// ErrFenceFailed means the old master answered but could not be fenced:
// read_only could not be set or verified, or its clients could not be
// listed or killed. The old master may still take writes; isolate it by
// other means (the stonith hook).
var ErrFenceFailed = errors.New("failover: old master answered but is not fenced")

// errFenceDeadline is the cause of FenceOldMaster's own deadline, told
// apart from the caller's cancellation.
var errFenceDeadline = errors.New("failover: fence timeout")

// MariaDB error numbers the fence tells apart.
const (
	erLockWaitTimeout       = 1205 // ER_LOCK_WAIT_TIMEOUT: SET GLOBAL read_only waited too long
	erNoSuchThread          = 1094 // ER_NO_SUCH_THREAD: the connection ended before KILL
	erUnknownSystemVariable = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE: gtid_binlog_pos on MySQL
)

// fenceSkipCommands are the processlist commands of threads the fence does
// not kill: replication (dump threads serving replicas, the server's own
// replica threads), background daemons, and threads already being killed.
var fenceSkipCommands = []string{
	"Binlog Dump", "Binlog Dump GTID", "Daemon", "Killed",
	"Slave_IO", "Slave_SQL", "Slave_worker",
}

// fenceSkipUsers are the processlist users of server threads: replica and
// background threads, the event scheduler.
var fenceSkipUsers = []string{"system user", "event_scheduler"}

// FenceResult is what FenceOldMaster found and did.
type FenceResult struct {
	// Addr is the old master's address from the DSN (never the password).
	Addr string
	// Reachable reports that the old master answered: it completed a
	// handshake, or refused one with a server error (access denied, too
	// many connections). An old master that answered is alive, and unless
	// ReadOnly is true and Err nil it is not fenced.
	Reachable bool
	// DialErr is why the old master was taken as unreachable: refused, no
	// route, or no handshake within the timeout. Nil when Reachable. Note
	// that a frozen server (a paused VM, SIGSTOP) accepts TCP connections
	// without answering, looks unreachable, and may wake up as a writer.
	DialErr error
	// WasReadOnly reports that read_only was already ON when the fence
	// connected (a second call, or an operator was there first).
	WasReadOnly bool
	// ReadOnly reports that @@global.read_only read back ON after the fence
	// set it.
	ReadOnly bool
	// Killed is how many client connections the fence killed; KilledIDs
	// are their processlist ids.
	Killed    int
	KilledIDs []uint64
	// Duration is the time the fence took.
	Duration time.Duration
	// End is the old master's binlog end as the fence left it: its
	// @@global.gtid_binlog_pos (@@global.gtid_executed on MySQL), read once
	// read_only was verified and its clients killed, so that nothing but
	// a user with READ_ONLY ADMIN writes past it. A promotion stops the
	// stream only once the relay log durably holds it. "" when the fence
	// did not succeed, or the read failed (EndErr).
	End    string
	EndErr error
	// session reports that the fence logged in; readOnlyRead that it read
	// read_only before setting it (WasReadOnly is then known).
	session, readOnlyRead bool
	// Err is nil when the old master is fenced or unreachable. It wraps
	// ErrFenceFailed when the old master answered but is not fenced, or is
	// the caller's context error, or an invalid DSN.
	Err error
}

// Fenced reports that the old master answered and is now read-only with its
// clients killed.
func (r FenceResult) Fenced() bool { return r.Reachable && r.ReadOnly && r.Err == nil }

// MayHaveSetReadOnly reports that the fence found read_only OFF and so may
// have turned it ON: what undoing the fence (a switchover's abort) must set
// back. A fence that found read_only ON, or never read it (it could not
// connect or read it, and then set nothing), changed no read_only.
func (r FenceResult) MayHaveSetReadOnly() bool { return r.readOnlyRead && !r.WasReadOnly }

// Summary returns one line for the log and the audit log:
//
//	fence 10.0.0.1:3306: read_only=ON verified, killed 2 connections in 15ms
//	fence 10.0.0.1:3306: unreachable (dial tcp 10.0.0.1:3306: connect: connection refused) in 2ms
func (r FenceResult) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fence %s: ", r.Addr)
	switch {
	case !r.Reachable && r.Err == nil:
		fmt.Fprintf(&b, "unreachable (%v)", r.DialErr)
	case !r.Reachable:
		fmt.Fprintf(&b, "not attempted: %v", r.Err)
	case !r.session:
		fmt.Fprintf(&b, "answered but refused the fence, NOT FENCED: %s", strings.TrimPrefix(r.Err.Error(), ErrFenceFailed.Error()+": "))
	default:
		switch {
		case r.ReadOnly && r.WasReadOnly:
			b.WriteString("read_only=ON (already) verified")
		case r.ReadOnly:
			b.WriteString("read_only=ON verified")
		default:
			b.WriteString("NOT read-only")
		}
		fmt.Fprintf(&b, ", killed %d %s", r.Killed, plural(r.Killed, "connection", "connections"))
		if r.Err != nil {
			fmt.Fprintf(&b, ", NOT FENCED: %s", strings.TrimPrefix(r.Err.Error(), ErrFenceFailed.Error()+": "))
		}
	}
	fmt.Fprintf(&b, " in %s", formatDuration(r.Duration))
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// FenceOldMaster makes the old master stop taking writes, if it answers:
// it sets read_only=ON, kills every client connection (idle ones too, so
// that no open transaction commits later) and reads read_only back. An old
// master that does not answer is the usual case of a failover and not an
// error: the result says Reachable=false and why.
//
// dsn is a go-sql-driver DSN for a user with READ_ONLY ADMIN (to set
// read_only), CONNECTION ADMIN (to kill other users' connections, and to
// connect past max_connections) and PROCESS (to see them). timeout bounds
// the whole call, connecting included; zero means DefaultFenceTimeout. Log
// lines are tagged component=fence.
//
// The fence is idempotent: a second call finds read_only ON, kills only the
// connections made since, and reports the same. It never kills replication
// threads (dump threads serving replicas, the server's own replica
// threads), the event scheduler, other server threads, or its own
// connection.
//
// Limits: read_only does not bind users with READ_ONLY ADMIN (root, ALL
// PRIVILEGES), who can reconnect and write; it is lost when the server
// restarts unless its configuration file says read_only=ON; and a
// transaction already waiting in its commit for a semi-sync ACK commits on
// the old master when killed. Isolating the old master for good is the
// stonith hook's job.
func FenceOldMaster(ctx context.Context, dsn string, timeout time.Duration, log *slog.Logger) (res FenceResult) {
	start := time.Now()
	if timeout <= 0 {
		timeout = DefaultFenceTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "fence")
	defer func() {
		res.Duration = time.Since(start)
		level := slog.LevelInfo
		if res.Err != nil {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, res.Summary())
	}()

	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's message does not repeat the DSN.
		res.Err = fmt.Errorf("failover: fence: old master DSN: %w", err)
		return res
	}
	res.Addr = mc.Addr
	log = log.With("addr", mc.Addr)
	mc.Timeout, mc.ReadTimeout, mc.WriteTimeout = timeout, timeout, timeout
	mc.Logger = fenceDriverLogger{log}
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		res.Err = fmt.Errorf("failover: fence: old master DSN: %w", err)
		return res
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errFenceDeadline)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		var me *mysql.MySQLError
		switch {
		case errors.As(err, &me):
			res.Reachable = true
			res.Err = fmt.Errorf("%w: connect: %w", ErrFenceFailed, err)
		case ctx.Err() != nil && context.Cause(ctx) != errFenceDeadline:
			res.Err = fmt.Errorf("failover: fence: %w", context.Cause(ctx))
		default:
			res.DialErr = err
		}
		return res
	}
	defer conn.Close()
	res.Reachable, res.session = true, true
	f := fence{conn: conn, log: log, timeout: timeout}
	f.run(ctx, &res)
	return res
}

// fence is one fencing session on one connection to the old master.
type fence struct {
	conn    *sql.Conn
	log     *slog.Logger
	timeout time.Duration
}

// run checks the fence user's privileges, sets read_only, kills the
// clients and verifies read_only, filling in res. Every problem that leaves
// the old master unfenced goes to res.Err; the fence still does what it can.
func (f fence) run(ctx context.Context, res *FenceResult) {
	var errs fenceErrors
	if err := f.checkPrivileges(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := f.setReadOnly(ctx, res); err != nil {
		errs = append(errs, err)
	}
	if err := f.killClients(ctx, res); err != nil {
		errs = append(errs, err)
	}
	var ro bool
	if err := f.conn.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
		errs = append(errs, fmt.Errorf("read back read_only: %w", err))
	} else if res.ReadOnly = ro; !ro {
		errs = append(errs, errors.New("read_only reads back OFF"))
	}
	if len(errs) > 0 {
		res.Err = fmt.Errorf("%w: %w", ErrFenceFailed, errs)
		return
	}
	res.End, res.EndErr = f.binlogEnd(ctx)
}

// binlogEnd reads the fenced old master's GTID state: gtid_binlog_pos on
// MariaDB, gtid_executed on MySQL.
func (f fence) binlogEnd(ctx context.Context) (string, error) {
	var end string
	err := f.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&end)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == erUnknownSystemVariable {
		err = f.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_executed").Scan(&end)
	}
	if err != nil {
		return "", fmt.Errorf("read the fenced old master's GTID state: %w", err)
	}
	return strings.TrimSpace(end), nil
}

// fenceErrors joins errors on one line, for a one-line Summary.
type fenceErrors []error

func (e fenceErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e fenceErrors) Unwrap() []error { return e }

// fenceNeeds are the global privileges the fence user needs, each with the
// privileges that include it.
var fenceNeeds = [][]string{
	{"READ_ONLY ADMIN"},           // SET GLOBAL read_only (SUPER lost it in 10.11)
	{"PROCESS"},                   // see other users' connections
	{"CONNECTION ADMIN", "SUPER"}, // kill them
}

// checkPrivileges reports the privileges the fence user lacks. Without
// PROCESS the processlist shows only the user's own connections, and the
// fence would kill nothing without noticing.
func (f fence) checkPrivileges(ctx context.Context) error {
	_, have, err := GlobalPrivileges(ctx, f.conn)
	if err != nil {
		return fmt.Errorf("read the fence user's privileges: %w", err)
	}
	if missing := MissingFencePrivileges(have); len(missing) > 0 {
		return fmt.Errorf("the fence user lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

// MissingFencePrivileges returns the global privileges the fence needs
// that have (GlobalPrivileges) lacks, by their first name: READ_ONLY
// ADMIN, PROCESS, CONNECTION ADMIN.
func MissingFencePrivileges(have []string) []string {
	var missing []string
	for _, need := range fenceNeeds {
		if !slices.ContainsFunc(need, func(p string) bool { return slices.Contains(have, p) }) {
			missing = append(missing, need[0])
		}
	}
	return missing
}

// GlobalPrivileges reads the global privileges granted to the connected
// user directly, not through a role (information_schema.USER_PRIVILEGES),
// and the account as a GRANT names it ('repl'@'10.0.0.%').
func GlobalPrivileges(ctx context.Context, conn *sql.Conn) (account string, privs []string, err error) {
	// One round trip (the fence runs against a deadline); a user without
	// any global privilege still yields its CURRENT_USER() row.
	rows, err := conn.QueryContext(ctx, `SELECT CURRENT_USER(), p.PRIVILEGE_TYPE FROM (SELECT 1) one
LEFT JOIN information_schema.USER_PRIVILEGES p
ON p.GRANTEE = CONCAT("'", LEFT(CURRENT_USER(), LENGTH(CURRENT_USER()) - LENGTH(SUBSTRING_INDEX(CURRENT_USER(), '@', -1)) - 1),
	"'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")`)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	var current string
	for rows.Next() {
		var p sql.NullString
		if err := rows.Scan(&current, &p); err != nil {
			return "", nil, err
		}
		if p.Valid {
			privs = append(privs, p.String)
		}
	}
	if err := rows.Err(); err != nil {
		return "", nil, err
	}
	user, host := current, ""
	if i := strings.LastIndex(current, "@"); i >= 0 {
		user, host = current[:i], current[i+1:]
	}
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	return q(user) + "@" + q(host), privs, nil
}

// setReadOnly sets read_only=ON unless it is already. SET GLOBAL read_only
// takes the global read lock, which waits for running writes and commits;
// it waits at most a quarter of the timeout, and at least a second
// (lock_wait_timeout counts whole seconds, and 0 would be NOWAIT: any
// running write would make it fail at once). When it times out, the fence
// kills the clients in the way and tries again, while the timeout leaves
// room for another wait.
func (f fence) setReadOnly(ctx context.Context, res *FenceResult) error {
	if err := f.conn.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&res.WasReadOnly); err != nil {
		return fmt.Errorf("read read_only: %w", err)
	}
	res.readOnlyRead = true
	if res.WasReadOnly {
		return nil
	}
	wait := max(1, int(f.timeout/4/time.Second))
	if _, err := f.conn.ExecContext(ctx, fmt.Sprintf("SET SESSION lock_wait_timeout = %d", wait)); err != nil {
		return fmt.Errorf("set lock_wait_timeout: %w", err)
	}
	for {
		err := f.execReadOnly(ctx)
		var me *mysql.MySQLError
		if !errors.As(err, &me) || me.Number != erLockWaitTimeout {
			return err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < time.Duration(wait)*time.Second+100*time.Millisecond {
			return err
		}
		f.log.Warn("SET GLOBAL read_only waited too long for running writes; killing the clients and trying again", "lock_wait_timeout", wait)
		if kerr := f.killClients(ctx, res); kerr != nil {
			return kerr
		}
	}
}

func (f fence) execReadOnly(ctx context.Context) error {
	if _, err := f.conn.ExecContext(ctx, "SET GLOBAL read_only = ON"); err != nil {
		return fmt.Errorf("set read_only: %w", err)
	}
	return nil
}

// fenceClient is a processlist row.
type fenceClient struct {
	id                  uint64
	user, host, command string
	seconds             int64
}

// killClients kills every client connection but the fence's own and the
// server's threads, adding what it killed to res.
func (f fence) killClients(ctx context.Context, res *FenceResult) error {
	clients, err := f.listClients(ctx)
	if err != nil {
		return err
	}
	for _, c := range clients {
		if slices.Contains(res.KilledIDs, c.id) {
			continue
		}
		_, err := f.conn.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", c.id))
		var me *mysql.MySQLError
		if errors.As(err, &me) && me.Number == erNoSuchThread {
			continue // it ended by itself
		}
		if err != nil {
			return fmt.Errorf("kill connection %d (%s@%s): %w", c.id, c.user, c.host, err)
		}
		res.Killed++
		res.KilledIDs = append(res.KilledIDs, c.id)
		f.log.Info("killed client connection", "id", c.id, "user", c.user, "host", c.host, "command", c.command, "seconds", c.seconds)
	}
	return nil
}

// listClients returns the connections killClients kills.
func (f fence) listClients(ctx context.Context) ([]fenceClient, error) {
	rows, err := f.conn.QueryContext(ctx,
		"SELECT ID, USER, HOST, COMMAND, TIME FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()")
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	defer rows.Close()
	var clients []fenceClient
	for rows.Next() {
		var c fenceClient
		var user, host sql.NullString
		if err := rows.Scan(&c.id, &user, &host, &c.command, &c.seconds); err != nil {
			return nil, fmt.Errorf("list connections: %w", err)
		}
		c.user, c.host = user.String, host.String
		if !slices.Contains(fenceSkipUsers, c.user) && !slices.Contains(fenceSkipCommands, c.command) {
			clients = append(clients, c)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return clients, nil
}

// fenceDriverLogger sends the MySQL driver's messages to the fence's log
// instead of standard error.
type fenceDriverLogger struct{ log *slog.Logger }

func (l fenceDriverLogger) Print(v ...any) {
	l.log.Debug("mysql driver: " + strings.TrimSpace(fmt.Sprint(v...)))
}
