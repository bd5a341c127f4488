package replica

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/hotstandby/hotstandby/applier"
)

// ioRetry is how long an IO thread stopped on an error stays stopped before
// the watcher starts it again.
const ioRetry = 2 * time.Second

// Replica controls the standby's own replication from the source.
type Replica struct {
	cfg Config
	log *slog.Logger
	db  *sql.DB

	// ctl is held by Run's configure and watch steps, Drain and Skip:
	// one of them at a time changes the standby's replication.
	ctl sync.Mutex
	// configured is set once this process configured the standby (under ctl).
	configured bool
	// lastFindings is the text of the findings last logged (under ctl).
	lastFindings string
	// ioRetryAt is when an IO thread stopped on an error is started again
	// (zero: not stopped; under ctl).
	ioRetryAt time.Time

	mu sync.Mutex // mu guards the fields below
	st Status
}

// New returns a Replica; it opens no connection yet.
func New(cfg Config) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	var db *sql.DB
	var err error
	if cfg.Connector != nil {
		db = sql.OpenDB(cfg.Connector)
	} else if db, err = sql.Open("mysql", cfg.DSN); err != nil {
		return nil, fmt.Errorf("replica: standby DSN: %w", err)
	}
	db.SetMaxOpenConns(3)
	r := &Replica{cfg: cfg, log: cfg.Logger.With("component", "replica"), db: db}
	r.st = Status{State: StateConnecting, Source: cfg.Source.Addr(), ParallelThreads: cfg.ParallelThreads, BehindSeconds: -1}
	return r, nil
}

// Status returns a copy of the live state.
func (r *Replica) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Findings = append([]string(nil), st.Findings...)
	st.Warnings = append([]string(nil), st.Warnings...)
	return st
}

func (r *Replica) update(f func(*Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.st)
}

// Run configures the standby and watches it until ctx ends or Drain ended
// replication (then it returns ErrDrained). A lost standby is retried.
func (r *Replica) Run(ctx context.Context) error {
	defer r.db.Close()
	for {
		err := r.step(ctx)
		if errors.Is(err, ErrDrained) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			text := r.scrub(err.Error())
			r.update(func(s *Status) {
				if s.LastError != text {
					r.log.Warn("standby replication: "+text, "retry_in", r.cfg.Poll.String())
				}
				s.LastError = text
				if applier.IsConnError(err) {
					s.State, s.Retries = StateConnecting, s.Retries+1
				}
			})
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(r.cfg.Poll):
		}
	}
}

// step is one round of Run: preflight and configure if not yet done, else
// watch.
func (r *Replica) step(ctx context.Context) error {
	r.ctl.Lock()
	defer r.ctl.Unlock()
	if r.Status().State == StateDrained {
		return ErrDrained
	}
	if !r.configured {
		ok, err := r.preflight(ctx)
		if err != nil || !ok {
			return err
		}
		if err := r.configure(ctx); err != nil {
			return err
		}
		r.configured = true
	}
	return r.watch(ctx, true)
}

// preflight checks the standby's settings; false means a fatal finding
// holds (Status.Findings names it).
func (r *Replica) preflight(ctx context.Context) (bool, error) {
	master := uint32(0)
	if r.cfg.MasterServerID != nil {
		master = r.cfg.MasterServerID()
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return false, err
	}
	findings, err := Preflight(ctx, conn, r.standbyAddr(), master, r.cfg.Source.ServerID)
	conn.Close()
	if err != nil {
		return false, err
	}
	var fatal, warn []string
	for _, f := range findings {
		if f.Fatal {
			fatal = append(fatal, f.Text)
		} else {
			warn = append(warn, f.Text)
		}
	}
	if text := strings.Join(append(fatal, warn...), "\n"); text != r.lastFindings {
		for _, l := range fatal {
			r.log.Error("standby preflight: " + l + " (checked again every " + r.cfg.Poll.String() + ")")
		}
		for _, l := range warn {
			r.log.Warn("standby preflight: " + l)
		}
		r.lastFindings = text
	}
	r.update(func(s *Status) {
		s.Findings, s.Warnings, s.LastError = fatal, warn, ""
		if len(fatal) > 0 {
			s.State = StatePreflight
		}
	})
	return len(fatal) == 0, nil
}

// configure makes the standby a read-only, parallel, GTID replica of the
// source and starts it.
func (r *Replica) configure(ctx context.Context) error {
	src := r.cfg.Source
	change := fmt.Sprintf("CHANGE MASTER TO MASTER_HOST=%s, MASTER_PORT=%d, MASTER_USER=%s, MASTER_PASSWORD=%s, "+
		"MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1", quote(src.Host), src.Port, quote(src.User), quote(src.Password))
	if src.HeartbeatPeriod > 0 {
		change += fmt.Sprintf(", MASTER_HEARTBEAT_PERIOD=%.3f", src.HeartbeatPeriod.Seconds())
	}
	stmts := []struct{ show, sql string }{
		{"STOP SLAVE", "STOP SLAVE"},
		{"SET GLOBAL read_only=ON", "SET GLOBAL read_only=ON"},
		{"SET GLOBAL slave_parallel_mode='optimistic'", "SET GLOBAL slave_parallel_mode='optimistic'"},
		{"", fmt.Sprintf("SET GLOBAL slave_parallel_threads=%d", r.cfg.ParallelThreads)},
		{"CHANGE MASTER TO MASTER_HOST=... MASTER_USE_GTID=slave_pos", change},
		{"START SLAVE", "START SLAVE"},
	}
	for _, s := range stmts {
		if s.sql == "START SLAVE" && !r.Status().StartKnown {
			var start string
			if err := r.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos").Scan(&start); err != nil {
				return fmt.Errorf("standby %s: SELECT @@GLOBAL.gtid_slave_pos: %w", r.standbyAddr(), r.scrubErr(err))
			}
			r.update(func(st *Status) { st.StartApplied, st.StartKnown = start, true })
		}
		if _, err := r.db.ExecContext(ctx, s.sql); err != nil {
			show := s.show
			if show == "" {
				show = s.sql
			}
			return fmt.Errorf("standby %s: %s: %w", r.standbyAddr(), show, r.scrubErr(err))
		}
	}
	r.log.Info("standby configured as a replica", "source", src.Addr(), "parallel_threads", r.cfg.ParallelThreads,
		"slave_parallel_mode", "optimistic", "read_only", true)
	return nil
}

// watch reads the standby's replication state into Status. With restart,
// a slave that is not running and has no error is started again.
func (r *Replica) watch(ctx context.Context, restart bool) error {
	ss, err := readSlaveStatus(ctx, r.db)
	if err != nil {
		return err
	}
	var applied, mode, binlogState string
	var readOnly bool
	var threads int
	if err := r.db.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_slave_pos, @@GLOBAL.read_only, @@GLOBAL.slave_parallel_threads, "+
		"@@GLOBAL.slave_parallel_mode, @@GLOBAL.gtid_binlog_state").
		Scan(&applied, &readOnly, &threads, &mode, &binlogState); err != nil {
		return err
	}
	if ss == nil { // configuration gone (RESET SLAVE ALL by someone): set it up again
		r.configured = false
		return fmt.Errorf("standby %s: no replication configured (SHOW SLAVE STATUS is empty); configuring it again", r.standbyAddr())
	}
	if restart && (!readOnly || threads != r.cfg.ParallelThreads || mode != "optimistic") {
		// SET GLOBAL does not survive a restart of the standby: configure
		// it again (read_only first of all).
		r.log.Warn("standby settings changed (restarted?): configuring it again", "read_only", readOnly,
			"slave_parallel_threads", threads, "slave_parallel_mode", mode)
		r.configured = false
		return nil
	}
	st := Status{
		Source: r.cfg.Source.Addr(), ParallelThreads: r.cfg.ParallelThreads,
		IORunning: ss["Slave_IO_Running"], SQLRunning: ss["Slave_SQL_Running"],
		LastIOErrno: int(ss.int("Last_IO_Errno")), LastIOError: r.scrub(ss["Last_IO_Error"]),
		LastSQLErrno: int(ss.int("Last_SQL_Errno")), LastSQLError: r.scrub(ss["Last_SQL_Error"]),
		Applied: applied, Received: ss["Gtid_IO_Pos"], BinlogState: binlogState, BehindSeconds: -1, CheckedAt: time.Now(),
	}
	if ss["Seconds_Behind_Master/null"] == "" {
		st.BehindSeconds = ss.int("Seconds_Behind_Master")
	}
	st.BehindTransactions = behind(st.Applied, st.Received)
	if st.SQLRunning == "No" && st.LastSQLErrno != 0 {
		if st.FailedGTID, err = failedGTID(ctx, r.db, ss); err != nil {
			return err
		}
	}
	st.State = StateRunning
	if st.Error() != "" {
		st.State = StateError
	}
	prev := r.Status()
	if e := st.Error(); e != "" && e != prev.Error() {
		hint := "; fix the standby, or skip the transaction explicitly with `hotstandby skip --gtid " + st.FailedGTID + "`"
		if st.SQLRunning != "No" || st.LastSQLErrno == 0 {
			hint = "; the agent configures the standby again when it restarts"
		}
		r.log.Error(e + hint)
	}
	r.update(func(s *Status) {
		st.Findings, st.Warnings, st.Retries = s.Findings, s.Warnings, s.Retries
		st.StartApplied, st.StartKnown = s.StartApplied, s.StartKnown
		*s = st
	})
	if restart && st.IORunning == "No" && st.LastIOErrno != 0 {
		// The source is the agent's own durable relay: whatever stopped
		// the IO thread (the agent restarted, a refused request), asking
		// again costs nothing but the standby's relay log, which the
		// source serves again. The error stays in Status until it works.
		switch {
		case r.ioRetryAt.IsZero():
			r.ioRetryAt = time.Now().Add(ioRetry)
		case time.Now().After(r.ioRetryAt):
			r.ioRetryAt = time.Time{}
			r.log.Warn("starting the standby's IO thread again after its error", "error", st.LastIOError, "errno", st.LastIOErrno)
			if _, err := r.db.ExecContext(ctx, "START SLAVE IO_THREAD"); err != nil {
				return fmt.Errorf("standby %s: START SLAVE IO_THREAD: %w", r.standbyAddr(), r.scrubErr(err))
			}
		}
	} else {
		r.ioRetryAt = time.Time{}
	}
	if restart && st.State == StateRunning && st.IORunning == "No" && st.SQLRunning == "No" {
		r.log.Warn("standby replication is not running (standby restarted, or STOP SLAVE from elsewhere): START SLAVE")
		if _, err := r.db.ExecContext(ctx, "START SLAVE"); err != nil {
			return fmt.Errorf("standby %s: START SLAVE: %w", r.standbyAddr(), r.scrubErr(err))
		}
	}
	return nil
}

// standbyAddr names the standby: host:port or socket from the DSN.
func (r *Replica) standbyAddr() string {
	if c, err := mysql.ParseDSN(r.cfg.DSN); err == nil && c.Addr != "" {
		return c.Addr
	}
	return "(standby)"
}

// scrub removes the source's password from s.
func (r *Replica) scrub(s string) string {
	if pw := r.cfg.Source.Password; pw != "" {
		s = strings.ReplaceAll(s, pw, "<password>")
		s = strings.ReplaceAll(s, quote(pw), "<password>")
	}
	return s
}

// scrubErr is err with the source's password removed from its text; the
// chain stays (Unwrap), so that errors.As finds the server's error code.
func (r *Replica) scrubErr(err error) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{text: r.scrub(err.Error()), err: err}
}

type scrubbedError struct {
	text string
	err  error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

// quote returns s as a single-quoted SQL string literal.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`)
	return "'" + r.Replace(s) + "'"
}
