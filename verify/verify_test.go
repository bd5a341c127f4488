package verify

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/sandbox"
)

// The integration tests share one pair of independent servers (not
// replicating), started on first use and stopped by TestMain. They run one
// after another; each test leaves both servers holding identical data.
var pair struct {
	once            sync.Once
	dir             string
	master, standby *sandbox.Server
	err             error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pair.master != nil {
		pair.master.Stop(context.Background())
	}
	if pair.standby != nil {
		pair.standby.Stop(context.Background())
	}
	if pair.dir != "" {
		os.RemoveAll(pair.dir)
	}
	os.Exit(code)
}

// servers returns the shared pair, starting both servers in parallel.
func servers(t *testing.T) (master, standby *sandbox.Server) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs MariaDB servers")
	}
	pair.once.Do(func() {
		ctx := context.Background()
		if pair.err = sandbox.EnsureInstalled(ctx); pair.err != nil {
			return
		}
		if pair.dir, pair.err = os.MkdirTemp("", "verify"); pair.err != nil {
			return
		}
		var merr, serr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			pair.master, merr = sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(pair.dir, "m"), ServerID: 1})
		}()
		go func() {
			defer wg.Done()
			pair.standby, serr = sandbox.Start(ctx, sandbox.Config{Dir: filepath.Join(pair.dir, "s"), ServerID: 2})
		}()
		wg.Wait()
		pair.err = errors.Join(merr, serr)
	})
	if pair.err != nil {
		t.Fatal(pair.err)
	}
	return pair.master, pair.standby
}

// run executes stmts on s over one connection, in order, with the binary log
// off (so that the servers' GTID positions stay as they were), sql_mode ”
// (zero dates) and time_zone '+00:00'. The connection is discarded afterwards.
func run(t *testing.T, s *sandbox.Server, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Raw(func(any) error { return driver.ErrBadConn })
	setup := []string{"SET SESSION sql_log_bin = 0", "SET SESSION sql_mode = ''", "SET SESSION time_zone = '+00:00'"}
	for _, q := range append(setup, stmts...) {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %s: %v", s.Addr(), q, err)
		}
	}
}

// runBoth executes stmts on both servers.
func runBoth(t *testing.T, m, s *sandbox.Server, stmts ...string) {
	t.Helper()
	run(t, m, stmts...)
	run(t, s, stmts...)
}

// compare runs Compare over fresh pools, so that global variables changed by
// a test apply to its connections.
func compare(t *testing.T, m, s *sandbox.Server, opt Options) (Report, error) {
	t.Helper()
	mdb, err := sql.Open("mysql", m.RootDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer mdb.Close()
	sdb, err := sql.Open("mysql", s.RootDSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Compare(ctx, mdb, sdb, opt)
}

// fixture creates schema vt with every column type, the same on both sides.
var fixture = []string{
	"DROP DATABASE IF EXISTS vt",
	"DROP DATABASE IF EXISTS scratch",
	"CREATE DATABASE vt",
	"CREATE DATABASE scratch", // excluded: where tables go to be missing
	`CREATE TABLE vt.types (
		id INT PRIMARY KEY,
		ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mu MEDIUMINT UNSIGNED, i INT, bi BIGINT, bu BIGINT UNSIGNED,
		dec65 DECIMAL(65,30), dec10 DECIMAL(10,2),
		f FLOAT, d DOUBLE,
		b64 BIT(64), b1 BIT(1),
		y YEAR, dt DATE, tm TIME(6), dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
		c CHAR(10) CHARACTER SET utf8mb4, vc VARCHAR(100) CHARACTER SET utf8mb4,
		lat VARCHAR(20) CHARACTER SET latin1, tx TEXT CHARACTER SET utf8mb4,
		bin BINARY(8), vb VARBINARY(16), bl BLOB,
		e ENUM('red','green','blue'), st SET('a','b','c'),
		j JSON, g GEOMETRY, p POINT,
		gv BIGINT AS (bi DIV 2) VIRTUAL,
		gp VARCHAR(200) AS (CONCAT(vc, '!')) PERSISTENT
	) CHARACTER SET latin1`,
	`INSERT INTO vt.types (id, ti, tu, si, mu, i, bi, bu, dec65, dec10, f, d, b64, b1, y, dt, tm, dtm, ts,
		c, vc, lat, tx, bin, vb, bl, e, st, j, g, p) VALUES
	(1, -128, 0, -32768, 0, -2147483648, -9223372036854775808, 0,
		-99999999999999999999999999999999999.999999999999999999999999999999, -99999999.99,
		-3.4028234e38, -1.7976931348623157e308, 0, 0,
		1901, '0000-00-00', '-838:59:59.000000', '0000-00-00 00:00:00', '0000-00-00 00:00:00',
		'', '', '', '', x'', x'', x'', 'red', '', '{}', POINT(0, 0), POINT(0, 0)),
	(2, 127, 255, 32767, 16777215, 2147483647, 9223372036854775807, 18446744073709551615,
		99999999999999999999999999999999999.999999999999999999999999999999, 99999999.99,
		3.4028234e38, 1.7976931348623157e308, 0xFFFFFFFFFFFFFFFF, 1,
		2155, '9999-12-31', '838:59:59.000000', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999999',
		'ÿ😀', 'emoji 😀 and 中文', _utf8mb4'café', REPEAT('αβγ😀', 1000),
		x'0102000000000000', x'616200', x'00FF11223300FE', 'blue', 'a,c',
		'{"k": [1, 2.50, "x"], "n": null}',
		ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), POINT(1.5, -2.25)),
	(3, 0, 1, 0, 1, 0, 0, 1, 0.000000000000000000000000000001, 1.10,
		1.1, 0.1, b'101', 0,
		2024, '2024-02-29', '-00:00:00.000001', '2024-02-29 12:34:56.000001', '2024-02-29 12:34:56.123456',
		'a', 'a', 'a', 'a', x'00', x'00', x'00', 'green', 'b', '[]', POINT(1, 1), POINT(1, 1)),
	(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
	// No primary key, duplicate rows, duplicate NULL rows.
	"CREATE TABLE vt.nopk (a INT, b VARCHAR(10))",
	"INSERT INTO vt.nopk VALUES (1, 'x'), (1, 'x'), (2, 'y'), (NULL, NULL), (NULL, NULL)",
	// A non-integer primary key: digested whole.
	"CREATE TABLE vt.strpk (k VARCHAR(20) PRIMARY KEY, v INT)",
	"INSERT INTO vt.strpk VALUES ('a', 1), ('b', 2), ('c', 3)",
	// Chunked by an unsigned BIGINT key reaching the type's maximum.
	"CREATE TABLE vt.chunky (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(20))",
	"INSERT INTO vt.chunky SELECT seq, CONCAT('row ', seq) FROM vt.seq_1_to_2500",
	"INSERT INTO vt.chunky VALUES (18446744073709551615, 'max')",
	// A composite key whose first column repeats more than a chunk's rows.
	"CREATE TABLE vt.dupkey (a INT, b INT, PRIMARY KEY (a, b))",
	"INSERT INTO vt.dupkey SELECT 1, seq FROM vt.seq_1_to_1500",
	"INSERT INTO vt.dupkey SELECT 2, seq FROM vt.seq_1_to_10",
	// A system-versioned table: the hidden row_start/row_end differ between
	// the servers, the current rows do not.
	"CREATE TABLE vt.hist (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING",
	"INSERT INTO vt.hist VALUES (1, 10), (2, 20)",
	"UPDATE vt.hist SET v = 11 WHERE id = 1",
	// An empty table.
	"CREATE TABLE vt.empty (id INT PRIMARY KEY)",
}

// testOptions chunk small so that vt.chunky and vt.dupkey have several
// chunks, and skip the schema that holds tables made missing.
var testOptions = Options{ChunkRows: 1000, Exclude: []string{"scratch"}}

func TestCompareFixtureEqual(t *testing.T) {
	m, s := servers(t)
	runBoth(t, m, s, fixture...)
	rep, err := compare(t, m, s, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	rep.WriteText(&buf)
	t.Logf("report:\n%s", buf.String())
	if !rep.Equal {
		t.Fatalf("identical servers compare unequal:\n%s", buf.String())
	}
	wantRows := map[string]int64{"vt.types": 4, "vt.nopk": 5, "vt.strpk": 3, "vt.chunky": 2501, "vt.dupkey": 1510, "vt.hist": 2, "vt.empty": 0}
	for _, tr := range rep.Tables {
		if want, ok := wantRows[tr.Name()]; ok && (tr.MasterRows != want || tr.StandbyRows != want) {
			t.Errorf("%s: rows %d/%d, want %d", tr.Name(), tr.MasterRows, tr.StandbyRows, want)
		}
		delete(wantRows, tr.Name())
		if strings.HasPrefix(tr.Schema, "scratch") || tr.Schema == "mysql" {
			t.Errorf("excluded schema compared: %s", tr.Name())
		}
	}
	if len(wantRows) > 0 {
		t.Errorf("tables not in the report: %v", wantRows)
	}
}

func TestCompareDetects(t *testing.T) {
	m, s := servers(t)
	runBoth(t, m, s, fixture...)
	tests := []struct {
		name      string
		mutate    []string // run on the standby
		undo      []string // run on the standby afterwards
		onMaster  bool     // run mutate and undo on the master instead
		wantEqual bool
		wantTable string // the one table that must differ
		wantDiff  string // a substring of its diffs
	}{
		{name: "identical", wantEqual: true},
		// Integers at their extremes.
		{name: "bigint min", mutate: []string{"UPDATE vt.types SET bi = -9223372036854775807 WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET bi = -9223372036854775808 WHERE id = 1"}, wantTable: "vt.types", wantDiff: "digests differ"},
		{name: "bigint unsigned max", mutate: []string{"UPDATE vt.types SET bu = 18446744073709551614 WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET bu = 18446744073709551615 WHERE id = 2"}, wantTable: "vt.types"},
		{name: "tinyint unsigned", mutate: []string{"UPDATE vt.types SET tu = 254 WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET tu = 255 WHERE id = 2"}, wantTable: "vt.types"},
		// Exact numbers and floating point.
		{name: "decimal(65,30) last digit", mutate: []string{"UPDATE vt.types SET dec65 = 0.000000000000000000000000000002 WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET dec65 = 0.000000000000000000000000000001 WHERE id = 3"}, wantTable: "vt.types"},
		{name: "decimal(10,2) 1.1 is 1.10", mutate: []string{"UPDATE vt.types SET dec10 = 1.1 WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET dec10 = 1.10 WHERE id = 3"}, wantEqual: true},
		{name: "double last bit", mutate: []string{"UPDATE vt.types SET d = 0.10000000000000002e0 WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET d = 0.1e0 WHERE id = 3"}, wantTable: "vt.types"},
		{name: "double max last bit", mutate: []string{"UPDATE vt.types SET d = 1.7976931348623155e308 WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET d = 1.7976931348623157e308 WHERE id = 2"}, wantTable: "vt.types"},
		{name: "float last bit", mutate: []string{"UPDATE vt.types SET f = 1.1000001e0 WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET f = 1.1e0 WHERE id = 3"}, wantTable: "vt.types"},
		{name: "float beyond six digits", mutate: []string{"UPDATE vt.types SET f = 3.4028232e38 WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET f = 3.4028234e38 WHERE id = 2"}, wantTable: "vt.types"},
		{name: "bit(64) top bit", mutate: []string{"UPDATE vt.types SET b64 = 0x7FFFFFFFFFFFFFFF WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET b64 = 0xFFFFFFFFFFFFFFFF WHERE id = 2"}, wantTable: "vt.types"},
		{name: "bit(1)", mutate: []string{"UPDATE vt.types SET b1 = 1 WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET b1 = 0 WHERE id = 1"}, wantTable: "vt.types"},
		// Temporal types.
		{name: "year", mutate: []string{"UPDATE vt.types SET y = 1902 WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET y = 1901 WHERE id = 1"}, wantTable: "vt.types"},
		{name: "zero date", mutate: []string{"UPDATE vt.types SET dt = '0000-01-00' WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET dt = '0000-00-00' WHERE id = 1"}, wantTable: "vt.types"},
		{name: "negative time sign", mutate: []string{"UPDATE vt.types SET tm = '838:59:59' WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET tm = '-838:59:59' WHERE id = 1"}, wantTable: "vt.types"},
		{name: "negative microsecond time", mutate: []string{"UPDATE vt.types SET tm = '00:00:00.000001' WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET tm = '-00:00:00.000001' WHERE id = 3"}, wantTable: "vt.types"},
		{name: "datetime(6) 1 microsecond", mutate: []string{"UPDATE vt.types SET dtm = dtm + INTERVAL 1 MICROSECOND WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET dtm = dtm - INTERVAL 1 MICROSECOND WHERE id = 3"}, wantTable: "vt.types"},
		{name: "timestamp(6) 1 microsecond", mutate: []string{"UPDATE vt.types SET ts = ts + INTERVAL 1 MICROSECOND WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET ts = ts - INTERVAL 1 MICROSECOND WHERE id = 3"}, wantTable: "vt.types"},
		{name: "zero timestamp", mutate: []string{"UPDATE vt.types SET ts = '1970-01-01 00:00:01' WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET ts = '0000-00-00 00:00:00' WHERE id = 1"}, wantTable: "vt.types"},
		{name: "standby in another time zone", mutate: []string{"SET GLOBAL time_zone = '+05:00'"},
			undo: []string{"SET GLOBAL time_zone = 'SYSTEM'"}, wantEqual: true},
		// Strings and binaries.
		{name: "utf8mb4 emoji", mutate: []string{"UPDATE vt.types SET vc = 'emoji 😁 and 中文' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET vc = 'emoji 😀 and 中文' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "latin1 accent", mutate: []string{"UPDATE vt.types SET lat = 'cafe' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET lat = _utf8mb4'café' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "varchar trailing space", mutate: []string{"UPDATE vt.types SET vc = 'a ' WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET vc = 'a' WHERE id = 3"}, wantTable: "vt.types"},
		{name: "char trailing space is padding", mutate: []string{"UPDATE vt.types SET c = 'a ' WHERE id = 3"},
			undo: []string{"UPDATE vt.types SET c = 'a' WHERE id = 3"}, wantEqual: true},
		{name: "standby pads CHAR", mutate: []string{"SET GLOBAL sql_mode = 'PAD_CHAR_TO_FULL_LENGTH'"},
			undo: []string{"SET GLOBAL sql_mode = DEFAULT"}, wantEqual: true},
		{name: "empty string is not NULL", mutate: []string{"UPDATE vt.types SET c = NULL WHERE id = 1"},
			undo: []string{"UPDATE vt.types SET c = '' WHERE id = 1"}, wantTable: "vt.types"},
		{name: "text one character", mutate: []string{"UPDATE vt.types SET tx = CONCAT(REPEAT('αβγ😀', 999), 'αβγ😁') WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET tx = REPEAT('αβγ😀', 1000) WHERE id = 2"}, wantTable: "vt.types"},
		{name: "binary(8) pads with zero bytes", mutate: []string{"UPDATE vt.types SET bin = x'0102' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET bin = x'0102000000000000' WHERE id = 2"}, wantEqual: true},
		{name: "binary(8) byte", mutate: []string{"UPDATE vt.types SET bin = x'0201000000000000' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET bin = x'0102000000000000' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "varbinary trailing zero byte removed", mutate: []string{"UPDATE vt.types SET vb = x'6162' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET vb = x'616200' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "blob one byte", mutate: []string{"UPDATE vt.types SET bl = x'00FF11223301FE' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET bl = x'00FF11223300FE' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "enum", mutate: []string{"UPDATE vt.types SET e = 'green' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET e = 'blue' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "set", mutate: []string{"UPDATE vt.types SET st = 'a,b' WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET st = 'a,c' WHERE id = 2"}, wantTable: "vt.types"},
		{name: "json text 2.50 vs 2.5", mutate: []string{`UPDATE vt.types SET j = '{"k": [1, 2.5, "x"], "n": null}' WHERE id = 2`},
			undo: []string{`UPDATE vt.types SET j = '{"k": [1, 2.50, "x"], "n": null}' WHERE id = 2`}, wantTable: "vt.types"},
		{name: "point", mutate: []string{"UPDATE vt.types SET p = POINT(1.5, -2.2500000001) WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET p = POINT(1.5, -2.25) WHERE id = 2"}, wantTable: "vt.types"},
		{name: "geometry", mutate: []string{"UPDATE vt.types SET g = ST_GeomFromText('POLYGON((0 0,10 0,10 11,0 10,0 0))') WHERE id = 2"},
			undo: []string{"UPDATE vt.types SET g = ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))') WHERE id = 2"}, wantTable: "vt.types"},
		// Rows and tables.
		{name: "duplicate row removed from table without key", mutate: []string{"DELETE FROM vt.nopk WHERE a = 1 LIMIT 1"},
			undo: []string{"INSERT INTO vt.nopk VALUES (1, 'x')"}, wantTable: "vt.nopk", wantDiff: "digests differ (master 5 rows, standby 4 rows)"},
		{name: "duplicate NULL row removed", mutate: []string{"DELETE FROM vt.nopk WHERE a IS NULL LIMIT 1"},
			undo: []string{"INSERT INTO vt.nopk VALUES (NULL, NULL)"}, wantTable: "vt.nopk"},
		{name: "duplicate row changed", mutate: []string{"UPDATE vt.nopk SET b = 'y' WHERE a = 1 LIMIT 1"},
			undo: []string{"UPDATE vt.nopk SET b = 'x' WHERE a = 1"}, wantTable: "vt.nopk", wantDiff: "(master 5 rows, standby 5 rows)"},
		{name: "both duplicates changed alike", mutate: []string{"UPDATE vt.nopk SET a = 3, b = 'z' WHERE a IS NULL"},
			undo: []string{"UPDATE vt.nopk SET a = NULL, b = NULL WHERE a = 3"}, wantTable: "vt.nopk"}, // an XOR of row hashes would miss it
		{name: "string key row", mutate: []string{"UPDATE vt.strpk SET v = 4 WHERE k = 'c'"},
			undo: []string{"UPDATE vt.strpk SET v = 3 WHERE k = 'c'"}, wantTable: "vt.strpk"},
		{name: "row changed in middle chunk", mutate: []string{"UPDATE vt.chunky SET v = 'changed' WHERE id = 1500"},
			undo: []string{"UPDATE vt.chunky SET v = 'row 1500' WHERE id = 1500"}, wantTable: "vt.chunky",
			wantDiff: "chunk id in [1001,2001): digests differ (master 1000 rows, standby 1000 rows)"},
		{name: "extra row on standby above range", mutate: []string{"INSERT INTO vt.chunky VALUES (3000, 'extra')"},
			undo: []string{"DELETE FROM vt.chunky WHERE id = 3000"}, wantTable: "vt.chunky",
			wantDiff: "chunk id >= 2001: digests differ (master 501 rows, standby 502 rows)"},
		{name: "extra row on standby below range", mutate: []string{"INSERT INTO vt.chunky VALUES (0, 'extra')"},
			undo: []string{"DELETE FROM vt.chunky WHERE id = 0"}, wantTable: "vt.chunky",
			wantDiff: "chunk id < 1: digests differ (master 0 rows, standby 1 rows)"},
		{name: "extra row on master", onMaster: true, mutate: []string{"INSERT INTO vt.strpk VALUES ('d', 4)"},
			undo: []string{"DELETE FROM vt.strpk WHERE k = 'd'"}, wantTable: "vt.strpk", wantDiff: "(master 4 rows, standby 3 rows)"},
		{name: "row of max unsigned key", mutate: []string{"UPDATE vt.chunky SET v = 'MAX' WHERE id = 18446744073709551615"},
			undo: []string{"UPDATE vt.chunky SET v = 'max' WHERE id = 18446744073709551615"}, wantTable: "vt.chunky", wantDiff: "chunk id >= 2001"},
		{name: "repeated first key column", mutate: []string{"DELETE FROM vt.dupkey WHERE a = 1 AND b = 700"},
			undo: []string{"INSERT INTO vt.dupkey VALUES (1, 700)"}, wantTable: "vt.dupkey", wantDiff: "chunk a in [1,2)"},
		{name: "versioned table row", mutate: []string{"UPDATE vt.hist SET v = 12 WHERE id = 1"},
			undo: []string{"UPDATE vt.hist SET v = 11 WHERE id = 1"}, wantTable: "vt.hist"},
		{name: "row in empty table", mutate: []string{"INSERT INTO vt.empty VALUES (7)"},
			undo: []string{"DELETE FROM vt.empty"}, wantTable: "vt.empty", wantDiff: "digests differ (master 0 rows, standby 1 rows)"},
		{name: "missing table on standby", mutate: []string{"RENAME TABLE vt.nopk TO scratch.nopk"},
			undo: []string{"RENAME TABLE scratch.nopk TO vt.nopk"}, wantTable: "vt.nopk", wantDiff: "missing on standby"},
		{name: "extra table on standby", mutate: []string{"CREATE TABLE vt.extra (id INT)"},
			undo: []string{"DROP TABLE vt.extra"}, wantTable: "vt.extra", wantDiff: "missing on master"},
		{name: "column type", mutate: []string{"ALTER TABLE vt.strpk MODIFY v BIGINT"},
			undo: []string{"ALTER TABLE vt.strpk MODIFY v INT"}, wantTable: "vt.strpk",
			wantDiff: "columns differ: column 2 is `v` int(11) on master, `v` bigint(20) on standby"},
		{name: "column collation", mutate: []string{"ALTER TABLE vt.strpk MODIFY k VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_bin"},
			undo: []string{"ALTER TABLE vt.strpk MODIFY k VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci"}, wantTable: "vt.strpk",
			wantDiff: "columns differ"},
		{name: "extra column", mutate: []string{"ALTER TABLE vt.strpk ADD COLUMN w INT"},
			undo: []string{"ALTER TABLE vt.strpk DROP COLUMN w"}, wantTable: "vt.strpk",
			wantDiff: "columns differ: standby has 3 columns, master 2; column 3 on standby is `w` int(11)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := s
			if tt.onMaster {
				target = m
			}
			if len(tt.mutate) > 0 {
				run(t, target, tt.mutate...)
			}
			rep, err := compare(t, m, s, testOptions)
			if len(tt.undo) > 0 {
				run(t, target, tt.undo...)
			}
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, tt.wantEqual, tt.wantTable, tt.wantDiff)
			// The undo must restore equality, or the next case would
			// see this one's difference.
			if rep, err := compare(t, m, s, testOptions); err != nil || !rep.Equal {
				t.Fatalf("after undo: equal %v, err %v\n%s", rep.Equal, err, reportText(rep))
			}
		})
	}
}

// checkReport checks that rep is equal, or that exactly table wantTable
// differs with a diff containing wantDiff.
func checkReport(t *testing.T, rep Report, wantEqual bool, wantTable, wantDiff string) {
	t.Helper()
	text := reportText(rep)
	if rep.Equal != wantEqual {
		t.Fatalf("Equal = %v, want %v\n%s", rep.Equal, wantEqual, text)
	}
	if wantEqual {
		return
	}
	if n := rep.Differing(); n != 1 {
		t.Fatalf("%d tables differ, want 1 (%s)\n%s", n, wantTable, text)
	}
	for _, tr := range rep.Tables {
		if tr.Equal {
			continue
		}
		if tr.Name() != wantTable {
			t.Fatalf("%s differs, want %s\n%s", tr.Name(), wantTable, text)
		}
		if !strings.Contains(strings.Join(tr.Diffs, "; "), wantDiff) {
			t.Fatalf("diffs of %s = %q, want one containing %q", tr.Name(), tr.Diffs, wantDiff)
		}
		if !strings.Contains(text, "≠ "+wantTable+": ") {
			t.Fatalf("text report does not name %s:\n%s", wantTable, text)
		}
	}
}

func reportText(rep Report) string {
	var buf bytes.Buffer
	rep.WriteText(&buf)
	return buf.String()
}

// TestCompareRowTooLarge checks that a row whose tokens exceed
// max_allowed_packet fails the comparison instead of being skipped.
func TestCompareRowTooLarge(t *testing.T) {
	m, s := servers(t)
	runBoth(t, m, s,
		"DROP DATABASE IF EXISTS vwide",
		"CREATE DATABASE vwide",
		"CREATE TABLE vwide.t (id INT PRIMARY KEY, v VARCHAR(1000))",
		"INSERT INTO vwide.t VALUES (1, REPEAT('x', 600))")
	defer runBoth(t, m, s, "DROP DATABASE vwide")
	run(t, s, "SET GLOBAL max_allowed_packet = 1024")
	defer run(t, s, "SET GLOBAL max_allowed_packet = DEFAULT")
	_, err := compare(t, m, s, Options{Exclude: []string{"vt", "scratch", "vgtid"}})
	if !errors.Is(err, ErrRowTooLarge) {
		t.Fatalf("Compare() = %v, want ErrRowTooLarge", err)
	}
	if !strings.Contains(err.Error(), "verify: table vwide.t: standby: ") {
		t.Errorf("error %q does not name the table and the side", err)
	}
}

// TestCompareConsistent checks the snapshot mode: equal positions,
// a standby behind that catches up while Compare waits, a standby ahead.
func TestCompareConsistent(t *testing.T) {
	m, s := servers(t)
	runBoth(t, m, s,
		"DROP DATABASE IF EXISTS vgtid",
		"CREATE DATABASE vgtid",
		"CREATE TABLE vgtid.t (id INT PRIMARY KEY, v VARCHAR(10))")
	opt := Options{Consistent: true, Exclude: []string{"vt", "scratch"}}
	mpos0, _ := m.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
	spos0, _ := s.QueryString(context.Background(), "SELECT @@gtid_binlog_pos")
	if mpos0 != spos0 {
		t.Fatalf("servers start at different positions %q and %q", mpos0, spos0)
	}
	seq := seqAfter(t, mpos0)

	t.Run("same position", func(t *testing.T) {
		rep, err := compare(t, m, s, opt)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Equal || rep.MasterGTID != mpos0 || rep.StandbyGTID != mpos0 {
			t.Fatalf("report %+v, want equal at %q", rep, mpos0)
		}
	})

	// A logged transaction with GTID 0-1-seq on the master only.
	gtid := "0-1-" + seq
	logged(t, m, seq, "INSERT INTO vgtid.t VALUES (1, 'a')")
	t.Run("standby behind", func(t *testing.T) {
		opt := opt
		opt.Timeout = 300 * time.Millisecond
		_, err := compare(t, m, s, opt)
		if !errors.Is(err, ErrNotAtSamePosition) {
			t.Fatalf("Compare() = %v, want ErrNotAtSamePosition", err)
		}
		if !strings.Contains(err.Error(), gtid) {
			t.Errorf("error %q does not name the master's position %s", err, gtid)
		}
	})
	t.Run("standby catches up while Compare waits", func(t *testing.T) {
		opt := opt
		opt.Timeout = 20 * time.Second
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(300 * time.Millisecond)
			logged(t, s, seq, "INSERT INTO vgtid.t VALUES (1, 'a')")
		}()
		start := time.Now()
		rep, err := compare(t, m, s, opt)
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if !rep.Equal || rep.MasterGTID != gtid || rep.StandbyGTID != gtid {
			t.Fatalf("report %+v, want equal at %s", rep, gtid)
		}
		if time.Since(start) < 250*time.Millisecond {
			t.Errorf("Compare returned after %v, before the standby caught up", time.Since(start))
		}
	})
	t.Run("standby ahead", func(t *testing.T) {
		next := seqAfter(t, gtid)
		logged(t, s, next, "INSERT INTO vgtid.t VALUES (2, 'b')")
		defer logged(t, m, next, "INSERT INTO vgtid.t VALUES (2, 'b')")
		opt := opt
		opt.Timeout = 200 * time.Millisecond
		_, err := compare(t, m, s, opt)
		if !errors.Is(err, ErrNotAtSamePosition) {
			t.Fatalf("Compare() = %v, want ErrNotAtSamePosition", err)
		}
	})
	t.Run("same position again, data differs", func(t *testing.T) {
		run(t, s, "UPDATE vgtid.t SET v = 'B' WHERE id = 2")
		defer run(t, s, "UPDATE vgtid.t SET v = 'b' WHERE id = 2")
		rep, err := compare(t, m, s, opt)
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep, false, "vgtid.t", "digests differ")
	})
}

// seqAfter returns the sequence number after the domain-0 GTID in pos, as
// text ("1" if pos is empty).
func seqAfter(t *testing.T, pos string) string {
	t.Helper()
	var n uint64
	if pos != "" {
		var err error
		parts := strings.Split(pos, "-")
		if n, err = strconv.ParseUint(parts[len(parts)-1], 10, 64); err != nil || strings.Contains(pos, ",") {
			t.Fatalf("position %q: want one domain-0 GTID", pos)
		}
	}
	return strconv.FormatUint(n+1, 10)
}

// logged runs stmt with the binary log on, as GTID 0-1-seq, on s.
func logged(t *testing.T, s *sandbox.Server, seq, stmt string) {
	t.Helper()
	run(t, s, "SET SESSION sql_log_bin = 1", "SET SESSION gtid_domain_id = 0", "SET SESSION server_id = 1",
		"SET SESSION gtid_seq_no = "+seq, stmt)
}
