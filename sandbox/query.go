package sandbox

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// driverConfig returns the go-sql-driver configuration for root over the unix
// socket, with database db selected (none if empty).
func (s *Server) driverConfig(db string) *mysql.Config {
	mc := mysql.NewConfig()
	mc.User = "root"
	mc.Net = "unix"
	mc.Addr = s.paths.socket
	mc.DBName = db
	mc.InterpolateParams = true
	mc.MultiStatements = true
	mc.Timeout = 5 * time.Second
	return mc
}

// RootDSN returns a go-sql-driver DSN that connects as root, which has no
// password, over the unix socket, with database db selected (none if empty),
// interpolateParams=true and multiStatements=true.
func (s *Server) RootDSN(db string) string {
	return s.driverConfig(db).FormatDSN()
}

// DB returns a pool of root connections over the unix socket, opened on first
// use. Stop, Kill and a failed start close it; the next call to DB opens a
// new pool, so do not keep the result across them. Driver error messages go
// to Config.Log.
func (s *Server) DB() *sql.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		mc := s.driverConfig("")
		mc.Logger = driverLogger{s.cfg.Log}
		connector, err := mysql.NewConnector(mc)
		if err != nil {
			connector = failingConnector{err}
		}
		s.db = sql.OpenDB(connector)
	}
	return s.db
}

// Exec runs query, which may hold several statements, as root.
func (s *Server) Exec(ctx context.Context, query string, args ...any) error {
	if _, err := s.DB().ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("sandbox: %s: exec %s: %w", s.Addr(), abbrev(query), err)
	}
	return nil
}

// QueryString runs query as root and returns the first column of the first
// row as a string; NULL reads as "". No row is an error wrapping sql.ErrNoRows.
func (s *Server) QueryString(ctx context.Context, query string, args ...any) (string, error) {
	rows, err := s.DB().QueryContext(ctx, query, args...)
	if err != nil {
		return "", fmt.Errorf("sandbox: %s: query %s: %w", s.Addr(), abbrev(query), err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("sandbox: %s: query %s: %w", s.Addr(), abbrev(query), err)
		}
		return "", fmt.Errorf("sandbox: %s: query %s: %w", s.Addr(), abbrev(query), sql.ErrNoRows)
	}
	cols, err := rows.Columns()
	if err != nil {
		return "", fmt.Errorf("sandbox: %s: query %s: %w", s.Addr(), abbrev(query), err)
	}
	dest := make([]any, len(cols))
	var first sql.NullString
	dest[0] = &first
	for i := 1; i < len(dest); i++ {
		dest[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(dest...); err != nil {
		return "", fmt.Errorf("sandbox: %s: query %s: %w", s.Addr(), abbrev(query), err)
	}
	return first.String, nil
}

// Status returns the value of the global status variable name, as
// SHOW GLOBAL STATUS shows it. The name is matched exactly, not as a LIKE
// pattern, and case-insensitively. An unknown name yields ErrUnknownStatus.
func (s *Server) Status(ctx context.Context, name string) (string, error) {
	var varName, value string
	err := s.DB().QueryRowContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name = ?", name).Scan(&varName, &value)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sandbox: %s: status %s: %w", s.Addr(), name, ErrUnknownStatus)
	}
	if err != nil {
		return "", fmt.Errorf("sandbox: %s: status %s: %w", s.Addr(), name, err)
	}
	return value, nil
}

// CreateUser creates (or replaces) user@'127.0.0.1' and user@'localhost'
// identified by password and grants them privs ON *.*, for example
// "REPLICATION SLAVE, REPLICATION CLIENT". privs is SQL and must come from
// the program, not from outside. The statements run with sql_log_bin=0, so a
// replica does not replay them. The password travels only inside the
// protocol, never on a command line.
func (s *Server) CreateUser(ctx context.Context, user, password, privs string) error {
	if user == "" || strings.TrimSpace(privs) == "" {
		return fmt.Errorf("sandbox: %s: create user %q: user and privileges must not be empty", s.Addr(), user)
	}
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		return fmt.Errorf("sandbox: %s: create user %q: %w", s.Addr(), user, err)
	}
	defer conn.Close()
	stmts := [][]any{{"SET SESSION sql_log_bin=0"}}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		stmts = append(stmts,
			[]any{"CREATE OR REPLACE USER ?@? IDENTIFIED BY ?", user, host, password},
			[]any{"GRANT " + privs + " ON *.* TO ?@?", user, host})
	}
	stmts = append(stmts, []any{"SET SESSION sql_log_bin=1"})
	for _, st := range stmts {
		if _, err := conn.ExecContext(ctx, st[0].(string), st[1:]...); err != nil {
			// Discard the connection: it may still have sql_log_bin=0.
			conn.Raw(func(any) error { return driver.ErrBadConn })
			return fmt.Errorf("sandbox: %s: create user %q: %w", s.Addr(), user, err)
		}
	}
	return nil
}

// abbrev shortens a query for an error message.
func abbrev(query string) string {
	const limit = 120
	query = strings.Join(strings.Fields(query), " ")
	if len(query) > limit {
		query = query[:limit] + "..."
	}
	return fmt.Sprintf("%q", query)
}

// driverLogger sends go-sql-driver's messages to Config.Log, or drops them.
type driverLogger struct {
	log func(format string, args ...any)
}

// Print implements mysql.Logger.
func (l driverLogger) Print(v ...any) {
	if l.log != nil {
		l.log("mysql driver: %s", fmt.Sprint(v...))
	}
}

// failingConnector is a driver.Connector whose connections all fail with err.
// It stands in for a connector that could not be configured.
type failingConnector struct{ err error }

func (c failingConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c failingConnector) Driver() driver.Driver                        { return &mysql.MySQLDriver{} }
