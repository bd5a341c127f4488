package sandbox

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Diagnose captures what a person needs to see when a replication client of
// this server is stuck: the processlist (with each thread's state), the
// semi-sync status variables, SHOW SLAVE HOSTS, the end of the error log and
// a backtrace of every mariadbd thread (gdb -batch, when gdb is installed;
// the server pauses for the moment gdb is attached). It never fails: what it
// cannot get, it says so in the text.
func (s *Server) Diagnose(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var b strings.Builder
	fmt.Fprintf(&b, "=== diagnosis of %s (pid %d) at %s ===\n", s.Addr(), s.PID(), time.Now().Format(time.RFC3339Nano))
	for _, q := range []string{
		"SELECT id, user, host, command, time, state, LEFT(COALESCE(info, ''), 120) FROM information_schema.processlist ORDER BY id",
		"SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'",
		"SHOW SLAVE HOSTS",
		"SHOW BINARY LOGS",
	} {
		fmt.Fprintf(&b, "--- %s\n", q)
		b.WriteString(s.queryTable(ctx, q))
	}
	fmt.Fprintf(&b, "--- error log (tail)\n%s\n", s.ErrorLogTail(40))
	if pid := s.PID(); pid > 0 {
		if gdb, err := exec.LookPath("gdb"); err == nil {
			out, err := exec.CommandContext(ctx, gdb, "-batch", "-p", fmt.Sprint(pid), "-ex", "thread apply all bt").CombinedOutput()
			fmt.Fprintf(&b, "--- gdb: thread apply all bt (err %v)\n%s\n", err, out)
		} else {
			b.WriteString("--- gdb not installed: no backtrace\n")
		}
	}
	return b.String()
}

// queryTable runs q and formats its rows, one per line, or the error.
func (s *Server) queryTable(ctx context.Context, q string) string {
	rows, err := s.DB().QueryContext(ctx, q)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	b.WriteString(strings.Join(cols, " | ") + "\n")
	vals := make([]any, len(cols))
	for i := range vals {
		vals[i] = new(nullableString)
	}
	for rows.Next() {
		if err := rows.Scan(vals...); err != nil {
			return b.String() + "error: " + err.Error() + "\n"
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = string(*v.(*nullableString))
		}
		b.WriteString(strings.Join(parts, " | ") + "\n")
	}
	return b.String()
}

// nullableString scans any column, NULL as "NULL".
type nullableString string

func (n *nullableString) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*n = "NULL"
	case []byte:
		*n = nullableString(x)
	default:
		*n = nullableString(fmt.Sprint(x))
	}
	return nil
}
