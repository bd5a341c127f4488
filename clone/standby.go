package clone

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
)

// ddlSession is set on the standby connection that creates schemas,
// tables, views, routines and triggers.
var ddlSession = []string{
	"SET NAMES utf8mb4",
	"SET SESSION time_zone = '+00:00'",
	"SET SESSION sql_log_bin = 0",
	"SET SESSION foreign_key_checks = 0",
	"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
}

// userSchemas lists the standby's schemas outside the system ones, with
// their number of tables, views and routines.
func userSchemas(ctx context.Context, db queryer) (map[string]int, error) {
	out := map[string]int{}
	err := eachRow(ctx, db, `SELECT s.SCHEMA_NAME,
		(SELECT COUNT(*) FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME) +
		(SELECT COUNT(*) FROM information_schema.ROUTINES r WHERE r.ROUTINE_SCHEMA = s.SCHEMA_NAME)
		FROM information_schema.SCHEMATA s WHERE s.SCHEMA_NAME NOT IN (`+notInSystem()+`)`,
		func(r *sql.Rows) error {
			var name string
			var n int
			if err := r.Scan(&name, &n); err != nil {
				return err
			}
			out[name] = n
			return nil
		})
	return out, err
}

// checkStandbyEmpty refuses a standby whose schemas hold objects, other
// than those an interrupted clone created (owned), unless replace.
func checkStandbyEmpty(schemas map[string]int, owned []string, replace bool, addr string) error {
	var foreign []string
	for name, n := range schemas {
		if n > 0 && !slices.Contains(owned, name) {
			foreign = append(foreign, fmt.Sprintf("%s (%d %s)", name, n, plural(n, "object", "objects")))
		}
	}
	if len(foreign) == 0 || replace {
		return nil
	}
	slices.Sort(foreign)
	return fmt.Errorf("%w: standby %s has schema %s: the clone does not overwrite it; clone into an empty standby, or pass --replace to drop these schemas first",
		ErrStandbyHasData, addr, strings.Join(foreign, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// execIn runs stmts in schema (USE) on the DDL connection.
func execIn(ctx context.Context, c *sql.Conn, schema string, stmts ...string) error {
	if schema != "" {
		if _, err := c.ExecContext(ctx, "USE "+quoteIdent(schema)); err != nil {
			return err
		}
	}
	for _, q := range stmts {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// createObject creates a view, routine or trigger with its own sql_mode.
func createObject(ctx context.Context, c *sql.Conn, o object) error {
	mode := o.sqlMode
	stmts := []string{"SET SESSION sql_mode = '" + strings.ReplaceAll(mode, "'", "''") + "'", o.sql,
		"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'"}
	if o.kind == "view" {
		stmts = []string{o.sql}
	}
	if err := execIn(ctx, c, o.schema, stmts...); err != nil {
		return fmt.Errorf("create %s %s.%s on the standby: %w", o.kind, o.schema, o.name, err)
	}
	return nil
}

// createViews creates views, retrying those that name a view not created
// yet until a round makes no progress.
func createViews(ctx context.Context, c *sql.Conn, views []object) error {
	pending := views
	for len(pending) > 0 {
		var next []object
		var lastErr error
		for _, v := range pending {
			if err := createObject(ctx, c, v); err != nil {
				next, lastErr = append(next, v), err
			}
		}
		if len(next) == len(pending) {
			return lastErr
		}
		pending = next
	}
	return nil
}

// setStandbyGTIDs gives the standby the master's GTID state at the
// snapshot: its binary log is reset (the copy wrote nothing to it) and
// @@gtid_binlog_state set, so the agent's applier continues with the
// master's next transaction; gtid_slave_pos is set to the snapshot's
// position for a native replica.
func setStandbyGTIDs(ctx context.Context, c *sql.Conn, state, pos string) (warn string, err error) {
	if _, err := c.ExecContext(ctx, "RESET MASTER"); err != nil {
		return "", fmt.Errorf("RESET MASTER on the standby: %w", err)
	}
	if state != "" {
		if _, err := c.ExecContext(ctx, "SET GLOBAL gtid_binlog_state = "+sqlString(state)); err != nil {
			return "", fmt.Errorf("SET GLOBAL gtid_binlog_state on the standby: %w", err)
		}
	}
	if _, err := c.ExecContext(ctx, "SET GLOBAL gtid_slave_pos = "+sqlString(pos)); err != nil {
		warn = fmt.Sprintf("gtid_slave_pos not set on the standby (%v): a native replica of the master would need SET GLOBAL gtid_slave_pos = '%s'", err, pos)
	}
	var got string
	if err := c.QueryRowContext(ctx, "SELECT @@GLOBAL.gtid_binlog_pos").Scan(&got); err != nil {
		return warn, err
	}
	if got != pos {
		return warn, fmt.Errorf("the standby's gtid_binlog_pos is %q after setting the snapshot's state, want %q", got, pos)
	}
	return warn, nil
}

// sqlString quotes s as a string literal (NO_BACKSLASH_ESCAPES off).
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", "''").Replace(s) + "'"
}
