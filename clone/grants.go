package clone

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
)

// account is a user with the statements that recreate it.
type account struct {
	user, host string
	stmts      []string // CREATE USER, then GRANTs
}

// readAccounts reads the master's users (not root, not the system
// accounts, not roles) and their grants.
func readAccounts(ctx context.Context, db queryer) ([]account, error) {
	var out []account
	err := eachRow(ctx, db, `SELECT User, Host FROM mysql.user WHERE User NOT IN ('root', 'mariadb.sys', '') AND is_role = 'N' ORDER BY User, Host`,
		func(r *sql.Rows) error {
			var a account
			if err := r.Scan(&a.user, &a.host); err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list users (the master user needs SELECT on mysql.user for --with-grants): %w", err)
	}
	for i := range out {
		a := &out[i]
		name := sqlString(a.user) + "@" + sqlString(a.host)
		row, err := showRow(ctx, db, "SHOW CREATE USER "+name)
		if err != nil {
			return nil, fmt.Errorf("SHOW CREATE USER %s: %w", name, err)
		}
		for _, v := range row {
			a.stmts = append(a.stmts, v)
		}
		err = eachRow(ctx, db, "SHOW GRANTS FOR "+name, func(r *sql.Rows) error {
			var g string
			if err := r.Scan(&g); err != nil {
				return err
			}
			a.stmts = append(a.stmts, g)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("SHOW GRANTS FOR %s: %w", name, err)
		}
	}
	return out, nil
}

// createAccounts creates the accounts the standby does not have yet (an
// existing one is left as it is, and logged).
func createAccounts(ctx context.Context, c *sql.Conn, accounts []account, log *slog.Logger) (int, error) {
	n := 0
	for _, a := range accounts {
		var exists int
		if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = "+sqlString(a.user)+" AND Host = "+sqlString(a.host)).Scan(&exists); err != nil {
			return n, err
		}
		if exists > 0 {
			log.Info("user exists on the standby: left as it is", "user", a.user, "host", a.host)
			continue
		}
		for _, q := range a.stmts {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return n, fmt.Errorf("create user '%s'@'%s' on the standby: %w", a.user, a.host, err)
			}
		}
		n++
	}
	return n, nil
}
