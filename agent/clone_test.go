package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/clone"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/sandbox"
	"github.com/hotstandby/hotstandby/status"
)

// cloneGrants are the master privileges a clone needs: BACKUP STAGE needs
// RELOAD; SHOW VIEW, TRIGGER and SELECT (mysql.proc) read the objects.
// (Binlogged: a pooled connection left with sql_log_bin=0 would hide later
// writes from the binlog.)
const cloneGrants = "GRANT SELECT, RELOAD, SHOW VIEW, TRIGGER, EVENT ON *.* TO 'repl'@'127.0.0.1'"

// cloneFixture fills the master with many tables: every column type of the
// apply tests, a table without a primary key, generated columns, a big
// chunked table, a non-transactional table, a view, a trigger and
// routines.
func (e *testEnv) cloneFixture(bulkTables, bulkRows int) {
	e.t.Helper()
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=100") // no replica yet
	e.exec(cloneGrants)
	for _, q := range []string{
		"CREATE TABLE test.types (id INT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, d DECIMAL(65,30), f DOUBLE, fl FLOAT, b BINARY(8), vb VARBINARY(20), ts TIMESTAMP(6) NULL, dt DATETIME(6), tm TIME(6), y YEAR, bits BIT(64), e ENUM('a','b'), st SET('x','y'), j JSON, g POINT, txt TEXT CHARACTER SET utf8mb4, l VARCHAR(10) CHARACTER SET latin1, v INT AS (id * 2) VIRTUAL, pst INT AS (id + 1) PERSISTENT)",
		"INSERT INTO test.types (id,u,s,d,f,fl,b,vb,ts,dt,tm,y,bits,e,st,j,g,txt,l) VALUES (1, 18446744073709551615, -9223372036854775808, '-12345678901234567890123456789012345.123456789012345678901234567890', 1.7976931348623157e308, 3.14159274, 'ab\\0', 'x\\0\\0', '2038-01-19 03:14:07.999999', '9999-12-31 23:59:59.999999', '-838:59:59.000000', 2155, b'1111111111111111111111111111111111111111111111111111111111111111', 'b', 'x,y', '{\"k\": [1, 2.5, \"s\"]}', POINT(1.5, -2.25), '😀 ünïcode', 'çà')",
		"INSERT INTO test.types (id, u, s, d, f, fl) VALUES (2, 0, 0, 0.100000000000000000000000000000, 0.1, 0.1), (0, 1, 1, 1, 1e-300, 1e-30)",
		"CREATE TABLE test.odd (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, blb LONGBLOB, y YEAR, bin BINARY(16), lt TEXT CHARACTER SET latin1)",
		"SET SESSION sql_mode = ''; INSERT INTO test.odd VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', REPEAT(x'00ff7f80', 1500000), 0, x'00010000', 'Ñandú')",
		"INSERT INTO test.odd VALUES (2, '2024-02-29', '1000-01-01 00:00:00', '1970-01-01 00:00:01', RANDOM_BYTES(1024), 1901, RANDOM_BYTES(16), NULL)",
		"CREATE TABLE test.wide (id BIGINT AUTO_INCREMENT PRIMARY KEY, u BIGINT UNSIGNED, s BIGINT, d DECIMAL(65,30), f DOUBLE, b BINARY(8), vb VARBINARY(20), dt DATETIME(6), tm TIME(6), bits BIT(64), e ENUM('a','b'), st SET('x','y'), j JSON, txt TEXT CHARACTER SET utf8mb4, l VARCHAR(10) CHARACTER SET latin1, v BIGINT AS (id * 2) VIRTUAL, KEY (s), KEY (dt))",
		"INSERT INTO test.wide (u, s, d, f, b, vb, dt, tm, bits, e, st, j, txt, l) SELECT seq * 7919, -seq, seq / 7, seq * 1.5e-3, UNHEX(LPAD(HEX(seq), 4, '0')), x'0000', '2020-01-01' + INTERVAL seq SECOND, '12:00:00', seq, 'a', 'x', JSON_OBJECT('n', seq), REPEAT('ü', seq % 50), 'é' FROM test.seq_1_to_20000",
		"CREATE TABLE test.nopk (a INT, b VARCHAR(10))",
		"INSERT INTO test.nopk SELECT seq % 5, 'dup' FROM test.seq_1_to_3000",
		"CREATE TABLE test.aria (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=Aria",
		"INSERT INTO test.aria SELECT seq, CONCAT('row ', seq) FROM test.seq_1_to_100",
		"CREATE VIEW test.wide_v AS SELECT id, s FROM test.wide WHERE id < 10",
		"CREATE VIEW test.wide_vv AS SELECT id FROM test.wide_v",
		"CREATE TABLE test.audit_rows (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))",
		"CREATE TRIGGER test.odd_ai AFTER INSERT ON test.odd FOR EACH ROW INSERT INTO test.audit_rows (at) VALUES (NOW(6))",
		"CREATE PROCEDURE test.p_count(OUT n INT) SELECT COUNT(*) INTO n FROM test.wide",
		"CREATE FUNCTION test.f_twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
		"CREATE DATABASE bulk",
	} {
		e.exec(q)
	}
	for i := range bulkTables {
		e.exec(fmt.Sprintf("CREATE TABLE bulk.t%02d (id INT PRIMARY KEY, k INT, payload VARCHAR(255), KEY (k))", i))
		e.exec(fmt.Sprintf("INSERT INTO bulk.t%02d SELECT seq, seq %% 97, REPEAT(CHAR(65 + seq %% 26), 200) FROM test.seq_1_to_%d", i, bulkRows))
	}
}

// runClone runs `hotstandby clone` to its end and returns its output and
// exit code.
func (e *testEnv) runClone(d time.Duration, args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, hsBinary, append([]string{"clone", "--config", e.cfgPath}, args...)...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	if ctx.Err() != nil {
		e.t.Fatalf("clone did not end within %s:\n%s", d, buf.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return buf.String(), ee.ExitCode()
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return buf.String(), 0
}

// storedClone reads the clone's record (nil: none), waiting for the clone
// process to let go of the store.
func storedClone(t *testing.T, c Config) *checkpoint.CloneState {
	t.Helper()
	var cs *checkpoint.CloneState
	harness.Poll(t, "the checkpoint store to be readable", 20*time.Second, 50*time.Millisecond, func() (bool, error) {
		s, err := checkpoint.Open(c.CheckpointPath(), true)
		if errors.Is(err, checkpoint.ErrLocked) {
			return false, nil
		}
		if err != nil {
			return true, nil // no store: no clone
		}
		defer s.Close()
		cs, err = s.LoadClone()
		return err == nil, err
	})
	return cs
}

// compareTables checks that every listed table holds the same rows, byte
// for byte, on both servers.
func compareTables(t *testing.T, master, standby *sandbox.Server, tables map[string]string) {
	t.Helper()
	for table, order := range tables {
		m, s := tableRows(t, master, table, order), tableRows(t, standby, table, order)
		if !reflect.DeepEqual(m, s) {
			n := min(len(m), len(s), 3)
			t.Fatalf("%s differs: master %d rows, standby %d rows; first rows\nmaster  %v\nstandby %v", table, len(m), len(s), m[:n], s[:n])
		}
	}
}

var cloneTables = map[string]string{"test.types": "id", "test.odd": "id", "test.wide": "id", "test.nopk": "a, b", "test.t": "id", "test.aria": "id", "bulk.t00": "id"}

// TestCloneUnderLoadThenRun: a master with many tables is cloned while 8
// clients keep writing; then `hotstandby run` starts from the snapshot by
// itself and catches up: every table is equal (verify, and row by row for
// the types), the standby's gtid_binlog_pos equals the master's, and the
// audit log records the clone with its position.
func TestCloneUnderLoadThenRun(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	e.cloneFixture(12, 3000)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var workErr error
	wg.Add(1)
	go func() { defer wg.Done(); workErr = e.randomWork(ctx, 8) }()
	defer func() { cancel(); wg.Wait() }()
	// Writes are under way before the snapshot.
	before := e.status("Com_insert")
	harness.WaitFor(t, "the clients to write", 20*time.Second, func() bool { return e.status("Com_insert") > before+50 })
	out, code := e.runClone(5*time.Minute, "--workers", "4", "--chunk-rows", "2000")
	if code != 0 {
		t.Fatalf("clone exit %d:\n%s", code, out)
	}
	t.Logf("clone output:\n%s", out)
	for _, want := range []string{"clone complete:", "commits on the master waited", "test.aria uses Aria, which is not transactional", "streams from there"} {
		if !strings.Contains(out, want) {
			t.Fatalf("clone output lacks %q:\n%s", want, out)
		}
	}
	cs := storedClone(t, e.config())
	if cs == nil || cs.State != checkpoint.CloneComplete || cs.Snapshot.FilePos.IsZero() {
		t.Fatalf("clone record %+v: want complete with its snapshot", cs)
	}
	p := e.startProcess()
	e.waitSemiSyncClient()
	// The agent applies while the clients still write.
	harness.WaitFor(t, "the agent to apply past the snapshot", 60*time.Second, func() bool {
		r, err := status.Get(context.Background(), e.config().StatusSource())
		return err == nil && r.Applied != nil && r.Applied.GTID != "" && r.Applied.GTID != cs.Snapshot.GTID.String()
	})
	cancel()
	wg.Wait()
	if workErr != nil {
		t.Fatal(workErr)
	}
	e.waitApplied(standby, 120*time.Second)
	compareTables(t, e.master, standby, cloneTables)
	if out, err := exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("verify after clone and catch-up: %v\n%s", err, out)
	}
	// Views, routines and triggers arrived and work.
	for _, q := range []string{
		"SELECT COUNT(*), COALESCE(SUM(id), 0) FROM test.wide_vv",
		"SELECT test.f_twice(21)",
		"SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'odd_ai'",
		"SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'test'",
	} {
		want, err := e.master.QueryString(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := standby.QueryString(context.Background(), q); err != nil || got != want {
			t.Fatalf("standby: %s = %q (%v), master %q", q, got, err, want)
		}
	}
	rep, err := status.Get(context.Background(), e.config().StatusSource())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Applier == nil || rep.Applier.LastError != "" || len(rep.Applier.Errant) != 0 {
		t.Fatalf("applier after the clone: %+v", rep.Applier)
	}
	audited := false
	for _, line := range rep.Audit {
		audited = audited || (strings.Contains(line, "clone: clone of") && strings.Contains(line, cs.Snapshot.FilePos.String()))
	}
	if !audited {
		t.Fatalf("audit log %q lacks the clone at %s", rep.Audit, cs.Snapshot.FilePos)
	}
	j, _ := json.Marshal(rep.Audit)
	t.Logf("snapshot %s; commits blocked %s; audit %s", cs.Snapshot, cs.BlockedCommits, j)
	p.kill()
}

// cloneConfig is what `hotstandby clone` builds from the agent's config.
func cloneConfig(t *testing.T, c Config, rec clone.Recorder) clone.Config {
	t.Helper()
	cc := clone.DefaultConfig()
	cc.MasterDSN, cc.StandbyDSN = c.MasterDSN(), c.StandbyDSN()
	cc.MasterAddr, cc.StandbyAddr = c.Master.Addr(), c.Standby.Addr()
	cc.Workers, cc.ChunkRows, cc.Recorder = 4, 2000, rec
	cc.SaveEvery, cc.ProgressEvery = 10*time.Millisecond, time.Second
	return cc
}

// trippingRecorder records into the store, and the first time it saves
// progress with rows copied (the copy is under way, not complete) it runs
// trip.
type trippingRecorder struct {
	clone.Recorder
	once sync.Once
	trip func()
}

func (r *trippingRecorder) Save(c checkpoint.CloneState) error {
	err := r.Recorder.Save(c)
	if err == nil && c.State == checkpoint.CloneRunning && c.RowsDone > 0 {
		r.once.Do(r.trip)
	}
	return err
}

// TestCloneHelperProcess is the clone process that TestCloneInterrupted
// kills with SIGKILL: it clones, and once progress with copied rows is in
// the checkpoint store it says so in a marker file and never goes on.
func TestCloneHelperProcess(t *testing.T) {
	path, marker := os.Getenv("HS_CLONE_HELPER_CONFIG"), os.Getenv("HS_CLONE_HELPER_MARKER")
	if path == "" {
		t.Skip("helper process of TestCloneInterrupted")
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := clone.OpenStoreRecorder(c.CheckpointPath(), c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &trippingRecorder{Recorder: store, trip: func() {
		os.WriteFile(marker, []byte("copying"), 0o600)
		select {} // half way, until SIGKILL
	}}
	cl, err := clone.New(cloneConfig(t, c, rec))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Run(context.Background())
	t.Fatalf("the helper clone ended (%v); it should have been killed half way", err)
}

// TestCloneInterrupted: a clone killed with SIGKILL half way, and one whose
// master connections are killed half way, leave a partial copy that `run`
// refuses with a line saying what to do, and `status` shows; a rerun of
// clone (without --replace: the schemas are its own) completes, and the
// agent then catches up to an equal standby.
func TestCloneInterrupted(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	e.cloneFixture(8, 3000)
	c := e.config()
	ctx := context.Background()

	// kill -9 half way.
	marker := filepath.Join(e.dir, "clone-copying")
	helper := exec.Command(os.Args[0], "-test.run=^TestCloneHelperProcess$", "-test.short", "-test.v")
	helper.Env = append(os.Environ(), "HS_CLONE_HELPER_CONFIG="+e.cfgPath, "HS_CLONE_HELPER_MARKER="+marker)
	var hout bytes.Buffer
	helper.Stdout, helper.Stderr = &hout, &hout
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- helper.Wait() }()
	harness.WaitFor(t, "the clone to be half way", 2*time.Minute, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the helper clone exited (%v) before it was killed:\n%s", err, hout.String())
		default:
		}
		_, err := os.Stat(marker)
		return err == nil
	})
	helper.Process.Kill()
	<-exited
	cs := storedClone(t, c)
	if cs == nil || cs.State != checkpoint.CloneRunning || cs.RowsDone == 0 {
		t.Fatalf("record after kill -9: %+v, want running with rows copied", cs)
	}
	e.wantRunRefusesPartialCopy("running")

	// The master's connections lost half way.
	store, err := clone.OpenStoreRecorder(c.CheckpointPath(), c.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &trippingRecorder{Recorder: store, trip: func() { killUserConnections(t, e.master, "repl") }}
	cl, err := clone.New(cloneConfig(t, c, rec))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "from the master") || !strings.Contains(err.Error(), "run hotstandby clone again") {
		t.Fatalf("clone with its master connections killed: %v; want the lost master named and what to do", err)
	}
	if cs := storedClone(t, c); cs == nil || cs.State != checkpoint.CloneFailed || cs.Error == "" {
		t.Fatalf("record after the lost connection: %+v, want failed with the error", cs)
	}
	e.wantRunRefusesPartialCopy("failed")

	// Clients write; a rerun starts over and completes.
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var workErr error
	wg.Add(1)
	go func() { defer wg.Done(); workErr = e.randomWork(wctx, 8) }()
	defer func() { cancel(); wg.Wait() }()
	if out, code := e.runClone(5*time.Minute, "--workers", "3"); code != 0 {
		t.Fatalf("rerun of clone: exit %d:\n%s", code, out)
	}
	p := e.startProcess()
	e.waitSemiSyncClient()
	cancel()
	wg.Wait()
	if workErr != nil {
		t.Fatal(workErr)
	}
	e.waitApplied(standby, 120*time.Second)
	compareTables(t, e.master, standby, cloneTables)
	if out, err := exec.Command(hsBinary, "verify", "--config", e.cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("verify after the rerun: %v\n%s", err, out)
	}
	p.kill()
}

// wantRunRefusesPartialCopy: `run` exits 1 naming the partial copy and
// what to do, and `status` shows the clone.
func (e *testEnv) wantRunRefusesPartialCopy(state string) {
	e.t.Helper()
	out, code := e.runToExit(60 * time.Second)
	if last := lastLine(out); code != 1 || !strings.Contains(last, "partial copy") || !strings.Contains(last, "is "+state) || !strings.Contains(last, "run `hotstandby clone`") {
		e.t.Fatalf("run on a %s clone: exit %d, last line %q; want exit 1 refusing the partial copy", state, code, last)
	}
	st, err := exec.Command(hsBinary, "status", "--config", e.cfgPath).CombinedOutput()
	if err != nil || !strings.Contains(string(st), "clone:") || !strings.Contains(string(st), state+", started") {
		e.t.Fatalf("status on a %s clone: %v\n%s", state, err, st)
	}
}

// killUserConnections kills every connection of user on s.
func killUserConnections(t *testing.T, s *sandbox.Server, user string) {
	rows, err := s.DB().Query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", user)
	if err != nil {
		t.Error(err)
		return
	}
	var ids []int64
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		s.DB().Exec(fmt.Sprintf("KILL CONNECTION %d", id))
	}
}

// TestCloneBadInputs: a master user without RELOAD, and a standby that
// holds data without --replace, are refused with one line that names the
// problem and the fix, before anything is written or recorded; --replace
// then replaces the data.
func TestCloneBadInputs(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandby()
	ctx := context.Background()
	e.exec("SET GLOBAL rpl_semi_sync_master_timeout=100")
	e.exec("GRANT SELECT, SHOW VIEW, TRIGGER ON *.* TO 'repl'@'127.0.0.1'")
	e.exec("INSERT INTO test.t (c) VALUES (1), (2)")
	c := e.config()

	out, code := e.runClone(time.Minute)
	if last := lastLine(out); code != 1 || !strings.Contains(last, "'repl'@'127.0.0.1'") || !strings.Contains(last, "cannot run BACKUP STAGE START") ||
		!strings.Contains(last, "GRANT RELOAD ON *.* TO 'repl'@'127.0.0.1'") {
		t.Fatalf("clone without RELOAD: exit %d, last line %q; want the missing privilege and the GRANT", code, last)
	}
	if cs := storedClone(t, c); cs != nil {
		t.Fatalf("a refused clone left a record: %+v", cs)
	}
	if n, _ := standby.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'test'"); n != "0" {
		t.Fatal("a refused clone wrote to the standby")
	}
	assertNoSecret(t, "clone output", out, e.password)

	e.exec("GRANT RELOAD ON *.* TO 'repl'@'127.0.0.1'")
	must(t, standby.Exec(ctx, "CREATE DATABASE app"))
	must(t, standby.Exec(ctx, "CREATE TABLE app.keep (id INT PRIMARY KEY)"))
	must(t, standby.Exec(ctx, "INSERT INTO app.keep VALUES (1)"))
	out, code = e.runClone(time.Minute)
	if last := lastLine(out); code != 1 || !strings.Contains(last, "standby "+c.Standby.Addr()+" has schema app (1 object)") || !strings.Contains(last, "--replace") {
		t.Fatalf("clone into a standby with data: exit %d, last line %q; want the schema named and --replace", code, last)
	}
	if cs := storedClone(t, c); cs != nil {
		t.Fatalf("a refused clone left a record: %+v", cs)
	}
	if n, err := standby.QueryString(ctx, "SELECT COUNT(*) FROM app.keep"); err != nil || n != "1" {
		t.Fatalf("the standby's data was touched: %q %v", n, err)
	}

	out, code = e.runClone(time.Minute, "--replace")
	if code != 0 {
		t.Fatalf("clone --replace: exit %d\n%s", code, out)
	}
	if n, _ := standby.QueryString(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'app'"); n != "0" {
		t.Fatal("--replace left the standby's schema app")
	}
	compareTables(t, e.master, standby, map[string]string{"test.t": "id"})
	if cs := storedClone(t, c); cs == nil || cs.State != checkpoint.CloneComplete {
		t.Fatalf("record after clone --replace: %+v", cs)
	}
	// A second clone into the same data_dir is refused: the agent streams
	// from the first one's position.
	out, code = e.runClone(time.Minute, "--replace")
	if last := lastLine(out); code != 1 || !strings.Contains(last, "completed") || !strings.Contains(last, "move data_dir away") {
		t.Fatalf("second clone into one data_dir: exit %d, last line %q", code, last)
	}
}

// TestCloneFullStandbyDisk: the standby's datadir fills up during the copy;
// the clone stops with one line naming the standby and the full table,
// nothing is marked complete, run refuses; once there is space, a rerun
// completes.
func TestCloneFullStandbyDisk(t *testing.T) {
	e := newEnv(t)
	mnt := filepath.Join(e.dir, "s")
	os.MkdirAll(mnt, 0o700)
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	standby := e.withStandby()
	e.cloneFixture(8, 3000) // about 16 MiB
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	used := (st.Blocks - st.Bfree) * uint64(st.Bsize)
	// Room for 4 MiB of data: the copy fills the disk half way.
	if out, err := exec.Command("mount", "-o", fmt.Sprintf("remount,size=%d", used+4<<20), mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	c := e.config()
	out, code := e.runClone(2 * time.Minute)
	last := lastLine(out)
	// MariaDB on a full tmpfs answers the COMMIT with error 1180 (errno 1):
	// the line names the table, the standby and where to look.
	if code != 1 || !strings.Contains(last, "to the standby: Error") || !strings.Contains(last, "error log") || !strings.Contains(last, "run hotstandby clone again") {
		t.Fatalf("clone onto a full standby: exit %d, last line %q; want the full standby named and what to do\n%s", code, last, out)
	}
	if cs := storedClone(t, c); cs == nil || cs.State != checkpoint.CloneFailed {
		t.Fatalf("record after the full disk: %+v, want failed", cs)
	}
	e.wantRunRefusesPartialCopy("failed")
	if out, err := exec.Command("mount", "-o", "remount,size=512m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	if out, code := e.runClone(2 * time.Minute); code != 0 {
		t.Fatalf("clone once there is space: exit %d\n%s", code, out)
	}
	compareTables(t, e.master, standby, cloneTables)
	t.Logf("full disk: %s", last)
}
