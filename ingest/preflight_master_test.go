package ingest

import (
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

// TestCheckMasterNoSemiSyncPlugin: a master without a semi-sync master
// (MySQL or an old MariaDB without the plugin; MariaDB 10.11 has it built
// in, so no real server shows this) is named with the INSTALL that fixes
// it, instead of passing in silence.
func TestCheckMasterNoSemiSyncPlugin(t *testing.T) {
	m := masterFacts{addr: "10.0.0.1:3306", vars: map[string]string{"log_bin": "ON", "binlog_format": "ROW"}}
	fs := checkMaster(binlog.Identity{ServerID: 1}, m, 9001, true)
	if len(fs) != 1 || fs[0].Fatal || !strings.Contains(fs[0].Text, "master 10.0.0.1:3306: no semi-sync master") ||
		!strings.Contains(fs[0].Text, "INSTALL SONAME 'semisync_master'") {
		t.Fatalf("findings %+v, want one warning naming INSTALL SONAME", fs)
	}
	if fs := checkMaster(binlog.Identity{ServerID: 1}, m, 9001, false); len(fs) != 0 {
		t.Fatalf("semi-sync off in the agent: findings %+v, want none", fs)
	}
}

// TestHasGrant: a privilege counts only by its exact name or ALL.
func TestHasGrant(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  bool
	}{
		{"exact", []string{"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `repl`@`%` IDENTIFIED BY PASSWORD '*X'"}, true},
		{"all", []string{"GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"}, true},
		{"admin only", []string{"GRANT REPLICATION SLAVE ADMIN ON *.* TO `repl`@`%`"}, false},
		{"on one schema", []string{"GRANT ALL PRIVILEGES ON `db`.* TO `repl`@`%`"}, false},
		{"none", []string{"GRANT USAGE ON *.* TO `repl`@`%`"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := hasGrant(tc.lines, "REPLICATION SLAVE"); got != tc.want {
				t.Fatalf("hasGrant = %v, want %v", got, tc.want)
			}
		})
	}
}
