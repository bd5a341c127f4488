package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// CheckCanRead makes sure the user of db may read every table: without
// SELECT, information_schema hides the tables and a comparison would report
// them missing instead of saying what is wrong. side names the server.
func CheckCanRead(ctx context.Context, db *sql.DB, side string) error {
	rows, err := db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return fmt.Errorf("verify: %s: SHOW GRANTS: %w", side, err)
	}
	defer rows.Close()
	var user string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			return fmt.Errorf("verify: %s: SHOW GRANTS: %w", side, err)
		}
		u := strings.ToUpper(g)
		if strings.Contains(u, " ON *.* ") && (strings.Contains(u, "ALL PRIVILEGES") || strings.Contains(u, "SELECT")) {
			return nil
		}
		if i := strings.Index(g, " TO "); i >= 0 && user == "" {
			user = strings.TrimSpace(g[i+4:])
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("verify: %s: SHOW GRANTS: %w", side, err)
	}
	return fmt.Errorf("verify: the %s user %s cannot read all tables: GRANT SELECT ON *.* TO it (verify only reads)", side, user)
}
