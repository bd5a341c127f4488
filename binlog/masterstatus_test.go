package binlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// busyMaster is a fake master under load: one more transaction commits
// between any two of its answers (the race of two round trips), and it
// answers each query from the state of that moment.
type busyMaster struct {
	flavor  Flavor
	commits int // transactions committed so far (GTID 0-1-commits, MySQL uuid:1-commits)
	every   int // a commit lands after every `every` queries (1: always)
	queries int
}

const busyUUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"

func (m *busyMaster) end(n int) uint64 { return 4 + 100*uint64(n) }

func (m *busyMaster) gtidAt(n int) string {
	if m.flavor == MySQL {
		if n == 0 {
			return ""
		}
		return fmt.Sprintf("%s:1-%d", busyUUID, n)
	}
	return fmt.Sprintf("0-1-%d", n)
}

func (m *busyMaster) Query(q string) ([][]string, error) {
	defer func() {
		m.queries++
		if m.every > 0 && m.queries%m.every == 0 {
			m.commits++
		}
	}()
	pos := strconv.FormatUint(m.end(m.commits), 10)
	switch {
	case q == "SHOW MASTER STATUS" && m.flavor == MariaDB:
		return [][]string{{"mysql-bin.000001", pos, "", ""}}, nil
	case q == "SHOW BINARY LOG STATUS" || q == "SHOW MASTER STATUS":
		return [][]string{{"mysql-bin.000001", pos, "", "", m.gtidAt(m.commits)}}, nil
	case q == "SELECT @@gtid_binlog_pos", q == "SELECT @@GLOBAL.gtid_binlog_pos", q == "SELECT @@gtid_executed":
		return [][]string{{m.gtidAt(m.commits)}}, nil
	case strings.HasPrefix(q, "SELECT IFNULL(BINLOG_GTID_POS('mysql-bin.000001', "):
		at, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(q, "SELECT IFNULL(BINLOG_GTID_POS('mysql-bin.000001', "), "), 'NULL')"), 10, 64)
		for n := 0; n <= m.commits; n++ {
			if m.end(n) == at {
				return [][]string{{m.gtidAt(n)}}, nil
			}
		}
		return [][]string{{"NULL"}}, nil
	}
	return nil, errors.New("busyMaster: unexpected query " + q)
}

// commitsAt returns how many transactions the binlog holds up to pos.
func (m *busyMaster) commitsAt(t *testing.T, pos uint64) int {
	t.Helper()
	for n := 0; n <= m.commits; n++ {
		if m.end(n) == pos {
			return n
		}
	}
	t.Fatalf("position %d is no transaction boundary", pos)
	return 0
}

// TestMasterStatusExactUnderLoad: the GTID state MasterStatus returns is the
// master's at the file position it returns, however many transactions
// commit between its round trips. A first start takes this pair as the
// relay log's base: a GTID set newer than the position claims transactions
// the relay never receives (the continuity check then refuses it as "the
// master was rebuilt").
func TestMasterStatusExactUnderLoad(t *testing.T) {
	for _, tt := range []struct {
		name   string
		flavor Flavor
		every  int
	}{
		{"mariadb, a commit between every two round trips", MariaDB, 1},
		{"mariadb, a commit after every second round trip", MariaDB, 2},
		{"mariadb, a commit after every third round trip", MariaDB, 3},
		{"mariadb, idle", MariaDB, 0},
		{"mysql, a commit between every two round trips", MySQL, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for start := 0; start < 5; start++ {
				m := &busyMaster{flavor: tt.flavor, every: tt.every, commits: 10, queries: start}
				p, err := masterStatus(m, tt.flavor)
				if err != nil {
					t.Fatal(err)
				}
				want := m.gtidAt(m.commitsAt(t, p.FilePos.Pos))
				if p.GTID.String() != want {
					t.Fatalf("MasterStatus = %s with GTID state %s; the master's state at that position is %s", p.FilePos, p.GTID, want)
				}
			}
		})
	}
}

// nullMaster is a busy master whose BINLOG_GTID_POS answers NULL (the file
// was purged between the two statements).
type nullMaster struct{ busyMaster }

func (m *nullMaster) Query(q string) ([][]string, error) {
	if strings.Contains(q, "BINLOG_GTID_POS") {
		return [][]string{{"NULL"}}, nil
	}
	return m.busyMaster.Query(q)
}

// TestMasterStatusNullIsAnError: a NULL from BINLOG_GTID_POS is a
// retryable error, never an empty GTID state (which would make the relay's
// base claim nothing of the master's history).
func TestMasterStatusNullIsAnError(t *testing.T) {
	m := &nullMaster{busyMaster{flavor: MariaDB, every: 1, commits: 10}}
	p, err := masterStatus(m, MariaDB)
	var se *SourceError
	if !errors.As(err, &se) || se.Permanent {
		t.Fatalf("masterStatus = %s, %v; want a retryable SourceError", p, err)
	}
}
