package applier

import (
	"context"
	"database/sql"
	"encoding/base64"
	"testing"

	_ "github.com/go-sql-driver/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// TestBinlogStatementEndsTheQuery checks on a real server what the
// applier's round trips are built on: statements before a BINLOG statement
// in one multi-statement query are fine (the applier sends the COMMIT of one
// transaction and the next one up to its BINLOG statement together), but a
// BINLOG statement's OK packet does not carry "more results" (MariaDB 10.11),
// so statements after it run on the server while their answers stay unread:
// the next command on the connection is out of sync. If this test starts to
// fail at that point, the server fixed it, and several transactions could
// share one round trip.
func TestBinlogStatementEndsTheQuery(t *testing.T) {
	master := startServer(t, 1)
	standby := startServer(t, 2)
	mustExec(t, master, "CREATE DATABASE d")
	mustExec(t, master, "CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(10))")
	for _, q := range []string{"INSERT INTO d.t VALUES (1, 'one')", "INSERT INTO d.t VALUES (2, 'two')", "INSERT INTO d.t VALUES (3, 'three')"} {
		mustExec(t, master, q)
	}
	rl := copyRelay(t, master)
	mustExec(t, standby, "SET SESSION sql_log_bin=0; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(10))")

	// Each insert's table map and rows event, base64, as one BINLOG text.
	var fde []byte
	var inserts []string
	var cur []byte
	err := relay.Scan(rl.dir, func(ev relay.Event) error {
		fde = ev.FDE
		switch {
		case ev.Header.Type == binlog.TableMapEvent:
			cur = append(cur[:0], ev.Raw...)
		case binlog.IsRowsEvent(ev.Header.Type):
			cur = append(cur, ev.Raw...)
			inserts = append(inserts, base64.StdEncoding.EncodeToString(cur))
		}
		return nil
	})
	if err != nil || len(inserts) != 3 {
		t.Fatalf("scan: %v, %d row statements, want 3", err, len(inserts))
	}
	db, err := sql.Open("mysql", standbyDSN(standby)+"?multiStatements=true")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	setGTID := func(seq string) string {
		return "SET SESSION gtid_domain_id = 0, SESSION server_id = 1, SESSION gtid_seq_no = " + seq + "; BEGIN; "
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"SET SESSION pseudo_slave_mode = 1; BINLOG '" + base64.StdEncoding.EncodeToString(fde) + "'",
		setGTID("100") + "BINLOG '" + inserts[0] + "'",
		"COMMIT; " + setGTID("101") + "BINLOG '" + inserts[1] + "'",
		"COMMIT",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s...: %v", q, err)
		}
	}
	var n int
	var pos string
	if err := conn.QueryRowContext(ctx, "SELECT (SELECT COUNT(*) FROM d.t), @@gtid_binlog_pos").Scan(&n, &pos); err != nil {
		t.Fatalf("the next query on the connection: %v", err)
	}
	if n != 2 || pos != "0-1-101" {
		t.Fatalf("after two transactions: %d rows, gtid_binlog_pos %q; want 2, 0-1-101", n, pos)
	}

	// A statement after the BINLOG statement: its answer is left unread.
	conn2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := conn2.ExecContext(ctx, "SET SESSION pseudo_slave_mode = 1; BINLOG '"+base64.StdEncoding.EncodeToString(fde)+"'"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn2.ExecContext(ctx, setGTID("102")+"BINLOG '"+inserts[2]+"'; COMMIT; SET @after = 1"); err != nil {
		t.Fatalf("a transaction with its COMMIT after the BINLOG statement: %v", err)
	}
	var after sql.NullInt64
	if err := conn2.QueryRowContext(ctx, "SELECT @after").Scan(&after); err == nil {
		t.Fatalf("the command after a query with statements after its BINLOG statement worked (@after = %v): "+
			"the server now sends \"more results\" after BINLOG, and transactions could share a round trip", after)
	} else {
		t.Logf("as expected, the next command is out of step: %v", err)
	}
}
