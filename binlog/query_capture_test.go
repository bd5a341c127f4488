//go:build capture

package binlog

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/sandbox"
)

// captureStep is one SQL session whose Query events become captures: setup
// runs first (its events are not kept), then stmts, whose Query events are
// cut out of the binary log.
type captureStep struct {
	name     string
	setup    []string
	stmts    []string
	clientOK bool // a statement may fail on the client (its event is the point)
}

// captureSteps are the sessions behind testdata/query. Each step runs on a
// connection of its own, so session settings never leak into the next one.
var captureSteps = []captureStep{
	{name: "create-database", stmts: []string{"CREATE DATABASE hs_cap CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"}},
	{name: "create-table-defaults", setup: []string{"USE hs_cap"},
		stmts: []string{"CREATE TABLE t_default (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB"}},
	{name: "sql-mode-ansi", setup: []string{"USE hs_cap", "SET SESSION sql_mode = 'ANSI_QUOTES,PIPES_AS_CONCAT,NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES'"},
		stmts: []string{`CREATE TABLE "t_ansi" (id INT PRIMARY KEY, "v" VARCHAR(10) DEFAULT ('a' || 'b'))`}},
	{name: "sql-mode-empty", setup: []string{"USE hs_cap", "SET SESSION sql_mode = ''"},
		stmts: []string{"CREATE TABLE t_nomode (d DATE NOT NULL DEFAULT '0000-00-00')"}},
	{name: "time-zone-offset", setup: []string{"USE hs_cap", "SET SESSION time_zone = '+05:30'"},
		stmts: []string{"CREATE TABLE t_tz_offset (ts TIMESTAMP NOT NULL DEFAULT '2024-01-01 12:00:00')"}},
	{name: "time-zone-named", setup: []string{"USE hs_cap", "SET SESSION time_zone = 'Europe/Paris'"},
		stmts: []string{"CREATE TABLE t_tz_named (ts TIMESTAMP NOT NULL DEFAULT '2024-07-01 12:00:00')"}},
	{name: "charset-latin1", setup: []string{"USE hs_cap", "SET NAMES latin1"},
		stmts: []string{"CREATE TABLE t_latin1 (v VARCHAR(10) DEFAULT 'x')"}},
	{name: "collation-unicode-server-latin2", setup: []string{"USE hs_cap", "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", "SET SESSION collation_server = 'latin2_general_ci'"},
		stmts: []string{"CREATE TABLE t_unicode (v VARCHAR(10))"}},
	{name: "collation-database", setup: []string{"USE hs_cap", "SET SESSION collation_database = 'latin1_swedish_ci'"},
		stmts: []string{"CREATE TABLE t_cdb (v VARCHAR(5))"}},
	{name: "lc-time-names", setup: []string{"USE hs_cap", "SET SESSION lc_time_names = 'de_DE'"},
		stmts: []string{"CREATE TABLE t_lc (v VARCHAR(5))"}},
	{name: "auto-increment", setup: []string{"USE hs_cap", "SET SESSION auto_increment_increment = 5, SESSION auto_increment_offset = 2"},
		stmts: []string{"CREATE TABLE t_ai (id INT AUTO_INCREMENT PRIMARY KEY)"}},
	{name: "flags2", setup: []string{"USE hs_cap", "SET SESSION foreign_key_checks = 0, SESSION unique_checks = 0, SESSION sql_auto_is_null = 1"},
		stmts: []string{"CREATE TABLE t_fk (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES t_no_parent (id))"}},
	{name: "no-default-db", stmts: []string{"CREATE TABLE hs_cap.t_nodb (id INT)"}},
	{name: "drop-if-exists-missing", setup: []string{"USE hs_cap"}, stmts: []string{"DROP TABLE IF EXISTS t_missing"}},
	{name: "drop-partial-myisam", setup: []string{"USE hs_cap", "CREATE TABLE m_exists (id INT) ENGINE=MyISAM"},
		stmts: []string{"DROP TABLE m_exists, t_missing"}, clientOK: true},
	{name: "drop-table", setup: []string{"USE hs_cap"}, stmts: []string{"DROP TABLE t_nomode"}},
	{name: "create-user-grant", setup: []string{"USE hs_cap"},
		stmts: []string{"CREATE USER 'app'@'localhost' IDENTIFIED BY 'not-a-secret'", "GRANT SELECT ON hs_cap.* TO 'app'@'localhost'"}},
	{name: "create-role", setup: []string{"USE hs_cap"}, stmts: []string{"CREATE ROLE r_app"}},
	{name: "view-definer-current-user", setup: []string{"USE hs_cap"}, stmts: []string{"CREATE DEFINER = CURRENT_USER VIEW v_one AS SELECT 1 AS one"}},
	{name: "procedure-no-definer", setup: []string{"USE hs_cap"}, stmts: []string{"CREATE PROCEDURE p_one() SELECT 1"}},
	{name: "create-select-now6", setup: []string{"USE hs_cap"}, stmts: []string{"CREATE TABLE t_now AS SELECT NOW(6) AS ts"}},
	{name: "myisam-row-insert", setup: []string{"USE hs_cap", "CREATE TABLE m_rows (id INT PRIMARY KEY) ENGINE=MyISAM"},
		stmts: []string{"INSERT INTO m_rows VALUES (1), (2)"}},
	{name: "statement-now6", setup: []string{"USE hs_cap", "SET SESSION binlog_format = 'STATEMENT'"},
		stmts: []string{"INSERT INTO t_now VALUES (NOW(6))"}},
	{name: "statement-multi-update", setup: []string{"USE hs_cap", "INSERT INTO t_default VALUES (1, 'a'), (2, 'b')", "INSERT INTO t_ai VALUES (1), (2)", "SET SESSION binlog_format = 'STATEMENT'"},
		stmts: []string{"UPDATE t_default a, t_ai b SET a.v = 'x' WHERE a.id = b.id"}},
	{name: "statement-duplicate-key-myisam", setup: []string{"USE hs_cap", "CREATE TABLE m_dup (id INT PRIMARY KEY) ENGINE=MyISAM", "SET SESSION binlog_format = 'STATEMENT'"},
		stmts: []string{"INSERT INTO m_dup VALUES (1), (1)"}, clientOK: true},
	{name: "two-phase-alter", setup: []string{"USE hs_cap", "SET SESSION binlog_alter_two_phase = ON"},
		stmts: []string{"ALTER TABLE t_default ADD COLUMN c2 INT"}},
	{name: "two-phase-alter-rollback", setup: []string{"USE hs_cap", "CREATE TABLE t_dups (a INT)", "INSERT INTO t_dups VALUES (1), (1)", "SET SESSION binlog_alter_two_phase = ON"},
		stmts: []string{"ALTER TABLE t_dups ADD UNIQUE (a)"}, clientOK: true},
	{name: "rename-table", setup: []string{"USE hs_cap"}, stmts: []string{"RENAME TABLE t_latin1 TO t_latin1_renamed"}},
}

// TestCaptureQueryEvents regenerates testdata/query from a throw-away
// MariaDB server:
//
//	go test -tags capture -run TestCaptureQueryEvents -count=1 ./binlog
//
// For every step it writes NN-name.sql (the session), and for every Query
// event the step wrote NN-name[-k].hex (the raw event, checksum included)
// and NN-name[-k].mariadb-binlog.txt (how mariadb-binlog prints it).
func TestCaptureQueryEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := sandbox.EnsureInstalled(ctx); err != nil {
		t.Fatal(err)
	}
	srv, err := sandbox.Start(ctx, sandbox.Config{Dir: t.TempDir(), ServerID: 1, Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(context.Background())
	loadTimeZone(t, srv, "Europe/Paris")
	version, err := srv.QueryString(ctx, "SELECT VERSION()")
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join("testdata", "query")
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	var index strings.Builder
	fmt.Fprintf(&index, "# captures from %s (binlog_format=ROW unless the session says otherwise)\n", version)
	for i, step := range captureSteps {
		prefix := fmt.Sprintf("%02d-%s", i+1, step.name)
		file, events, clientErrs := runCaptureStep(ctx, t, srv, step)
		sqlText := sessionSQL(step, clientErrs)
		if err := os.WriteFile(filepath.Join(out, prefix+".sql"), []byte(sqlText), 0o644); err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			t.Errorf("%s: no Query event in the binary log", prefix)
		}
		for k, ev := range events {
			name := prefix
			if len(events) > 1 {
				name = fmt.Sprintf("%s-%d", prefix, k+1)
			}
			writeHex(t, filepath.Join(out, name+".hex"), ev.raw)
			h, _ := ParseHeader(ev.raw)
			text := mariadbBinlog(t, file, h.Start(), uint64(h.LogPos))
			if err := os.WriteFile(filepath.Join(out, name+".mariadb-binlog.txt"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&index, "%s.hex: %s\n", name, strings.Join(strings.Fields(string(QueryText(ev.raw, true))), " "))
		}
	}
	if err := os.WriteFile(filepath.Join(out, "INDEX"), []byte(index.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

type capturedEvent struct{ raw []byte }

// runCaptureStep runs one session and returns the binlog file and the Query
// events its statements wrote.
func runCaptureStep(ctx context.Context, t *testing.T, srv *sandbox.Server, step captureStep) (string, []capturedEvent, []string) {
	conn, err := srv.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Never hand the session back to the pool: its settings would leak
		// into the next step.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	for _, q := range step.setup {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: setup %q: %v", step.name, q, err)
		}
	}
	file, start := masterStatus(ctx, t, conn)
	var clientErrs []string
	for _, q := range step.stmts {
		_, err := conn.ExecContext(ctx, q)
		switch {
		case err != nil && step.clientOK:
			clientErrs = append(clientErrs, fmt.Sprintf("%s -- client got: %v", q, err))
		case err != nil:
			t.Fatalf("%s: %q: %v", step.name, q, err)
		default:
			clientErrs = append(clientErrs, q)
		}
	}
	file2, end := masterStatus(ctx, t, conn)
	if file2 != file {
		t.Fatalf("%s: binary log rotated during the step", step.name)
	}
	path := filepath.Join(filepath.Dir(srv.BinlogBase()), file)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []capturedEvent
	for off := len(Magic); off+HeaderLen <= len(data); {
		h, err := ParseHeader(data[off:])
		if err != nil || h.Size < HeaderLen || off+int(h.Size) > len(data) {
			t.Fatalf("%s: bad event at %d of %s", step.name, off, path)
		}
		ev := data[off : off+int(h.Size)]
		if h.Type == QueryEvent && h.Start() >= start && uint64(h.LogPos) <= end {
			if err := VerifyChecksum(ev); err != nil {
				t.Fatalf("%s: event at %d: %v", step.name, off, err)
			}
			events = append(events, capturedEvent{raw: bytes.Clone(ev)})
		}
		off += int(h.Size)
	}
	return path, events, clientErrs
}

func masterStatus(ctx context.Context, t *testing.T, conn *sql.Conn) (string, uint64) {
	rows, err := conn.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal("SHOW MASTER STATUS: no row (binary log off?)")
	}
	cols, _ := rows.Columns()
	dest := make([]any, len(cols))
	var file string
	var pos uint64
	dest[0], dest[1] = &file, &pos
	for i := 2; i < len(dest); i++ {
		dest[i] = new(sql.RawBytes)
	}
	if err := rows.Scan(dest...); err != nil {
		t.Fatal(err)
	}
	return file, pos
}

// sessionSQL is the .sql file of a step: what ran, in order.
func sessionSQL(step captureStep, stmts []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- capture %s: a fresh root connection over the unix socket, binlog_format=ROW\n", step.name)
	fmt.Fprintf(&b, "-- setup (its events are not captured):\n")
	for _, q := range step.setup {
		fmt.Fprintf(&b, "%s;\n", q)
	}
	fmt.Fprintf(&b, "-- captured (every Query event these wrote):\n")
	for _, q := range stmts {
		fmt.Fprintf(&b, "%s;\n", q)
	}
	return b.String()
}

func writeHex(t *testing.T, path string, raw []byte) {
	var b strings.Builder
	for len(raw) > 0 {
		n := min(len(raw), 32)
		b.WriteString(hex.EncodeToString(raw[:n]))
		b.WriteByte('\n')
		raw = raw[n:]
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mariadbBinlog returns mariadb-binlog's text for the event [start, end)
// of file, without the lines that name the temporary directory.
func mariadbBinlog(t *testing.T, file string, start, end uint64) string {
	out, err := exec.Command("mariadb-binlog", "--start-position="+fmt.Sprint(start), "--stop-position="+fmt.Sprint(end), file).Output()
	if err != nil {
		t.Fatalf("mariadb-binlog: %v", err)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, filepath.Dir(file)) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// loadTimeZone fills the server's time zone tables with one zone, without
// binlogging it.
func loadTimeZone(t *testing.T, srv *sandbox.Server, zone string) {
	sqlText, err := exec.Command("mariadb-tzinfo-to-sql", "/usr/share/zoneinfo/"+zone, zone).Output()
	if err != nil {
		t.Fatalf("mariadb-tzinfo-to-sql: %v", err)
	}
	cmd := exec.Command("mariadb", "--defaults-file="+srv.DefaultsFile(), "--init-command=SET SESSION sql_log_bin=0", "mysql")
	cmd.Stdin = bytes.NewReader(sqlText)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("loading time zone %s: %v: %s", zone, err, out)
	}
}
