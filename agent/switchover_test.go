package agent

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/control"
	"github.com/hotstandby/hotstandby/failover"
	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/sandbox"
)

// appWriters commits rows as an application user (no READ_ONLY ADMIN, so
// read_only binds it) from n clients, each at most 10 commits/s, until ctx
// ends, retrying after errors, and returns every id whose INSERT returned
// OK.
func appWriters(ctx context.Context, t *testing.T, s *sandbox.Server, clients int, committed *atomic.Int64) (ids func() []int64) {
	t.Helper()
	must(t, s.CreateUser(context.Background(), "app", "app-secret", "SELECT, INSERT"))
	db, err := sql.Open("mysql", "app:app-secret@tcp("+s.Addr()+")/test?timeout=2s")
	must(t, err)
	// Refused (read_only) or killed: not committed as far as the client
	// knows; it tries again with the next id. At most 10 commits/s per
	// client: a load the applier keeps up with on a shared 2-core machine
	// under -race, so that the switchover's catch-up converges.
	return writers(ctx, db, clients, committed, writerOptions{payload: "client", retry: true, pause: 100 * time.Millisecond})
}

// writableSampler reads @@read_only of the standby, then of the master,
// until ctx ends. The order makes each sample sound: the master is frozen
// before the standby becomes writable, so a writable standby read first
// and a writable master read after it would be two writers at once.
type writableSampler struct {
	samples, both atomic.Int64
	frozen        atomic.Int64 // samples inside the switchover: both read-only
	sawStandbyRO  atomic.Bool
	sawStandbyRW  atomic.Bool
	done          chan struct{}
}

func sampleWritable(ctx context.Context, master, standby *sandbox.Server) *writableSampler {
	w := &writableSampler{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			s, err1 := standby.QueryString(ctx, "SELECT @@GLOBAL.read_only")
			m, err2 := master.QueryString(ctx, "SELECT @@GLOBAL.read_only")
			if err1 != nil || err2 != nil {
				continue
			}
			w.samples.Add(1)
			if s == "1" {
				w.sawStandbyRO.Store(true)
			} else {
				w.sawStandbyRW.Store(true)
			}
			if s == "0" && m == "0" {
				w.both.Add(1)
			}
			if s == "1" && m == "1" {
				w.frozen.Add(1)
			}
		}
	}()
	return w
}

var downtimeRE = regexp.MustCompile(`write downtime ([0-9.]+[a-zµ]+)`)

// TestSwitchoverUnderLoad: 16 clients write to the master; switchover
// --rejoin: every id whose INSERT returned OK is on the new master, the
// downtime is printed and positive, the old master is read-only and
// replicates from the new one, and no sample ever saw both writable.
func TestSwitchoverUnderLoad(t *testing.T) {
	f := newFailoverEnv(t, `mode = "auto"`)
	f.grantRejoin(f.master)
	ctx := context.Background()
	load, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var committed atomic.Int64
	ids := appWriters(load, t, f.master, 16, &committed)
	harness.WaitFor(t, "the clients to commit", 60*time.Second, func() bool { return committed.Load() >= 200 })
	sampling, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	sampler := sampleWritable(sampling, f.master, f.standby)
	harness.WaitFor(t, "a first sample of both servers", 30*time.Second, func() bool { return sampler.samples.Load() > 0 })

	msg, err := f.p.a.opSwitchover(ctx, operator, control.Request{Op: "switchover", Rejoin: true, Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatalf("switchover: %v", err)
	}
	t.Log(msg)
	before := committed.Load()
	harness.WaitFor(t, "the clients to be refused for a while", 30*time.Second, func() bool { return sampler.samples.Load() > 10 })
	stopLoad()
	ok := ids()
	stopSampling()
	<-sampler.done

	if missing := missingIDs(t, f.standby, ok); len(missing) > 0 {
		t.Fatalf("%d of %d OK'd ids are not on the new master, e.g. %v", len(missing), len(ok), missing[:min(5, len(missing))])
	}
	if int64(len(ok)) != before {
		t.Fatalf("%d inserts returned OK after the switchover, on the frozen old master", int64(len(ok))-before)
	}
	m := downtimeRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no write downtime in %q", msg)
	}
	if d, err := time.ParseDuration(m[1]); err != nil || d <= 0 {
		t.Fatalf("write downtime %q (%v): want a positive duration", m[1], err)
	}
	if n := sampler.both.Load(); n > 0 || !sampler.sawStandbyRO.Load() || !sampler.sawStandbyRW.Load() {
		t.Fatalf("%d of %d samples saw both servers writable (standby seen read-only %v, writable %v)",
			n, sampler.samples.Load(), sampler.sawStandbyRO.Load(), sampler.sawStandbyRW.Load())
	}
	r := f.report()
	audit := strings.Join(r.Audit, "\n")
	if r.Role != checkpoint.RoleMaster || !strings.Contains(audit, "switched over") || !strings.Contains(audit, "write downtime") {
		t.Fatalf("role %s, audit:\n%s\nwant the switchover recorded with its downtime", r.Role, audit)
	}
	if role, _ := f.p.a.store.LoadRole(); role.Forced {
		t.Fatalf("the switchover's promotion is recorded as forced: %+v", role)
	}
	f.checkRejoined(f.master)
	t.Logf("%d commits OK'd, all on the new master; %d samples (%d inside the switchover, both read-only), none with two writers; %s",
		len(ok), sampler.samples.Load(), sampler.frozen.Load(), m[0])
}

// TestSwitchoverBadInput: a switchover with the master down is refused and
// says to use promote; one whose standby cannot catch up within --timeout
// is refused before the master is frozen: the master stays writable, the
// standby read-only and the agent a standby. (The undo after a freeze is
// TestSwitchoverUndoneOnTimeout in package failover.)
func TestSwitchoverBadInput(t *testing.T) {
	var hold atomic.Bool
	release := make(chan struct{})
	hooks := ingest.Hooks{Sync: func(file *os.File) error {
		if hold.Load() {
			<-release
		}
		return file.Sync()
	}}
	f := newFailoverEnvWith(t, `mode = "manual"`, failoverSetup{hooks: hooks})
	f.grantRejoin(f.master)
	ctx := context.Background()

	// The agent's relay log cannot become durable: the standby never
	// reaches the master's last GTID.
	f.exec("SET GLOBAL rpl_semi_sync_master_timeout = 200")
	hold.Store(true)
	f.exec("INSERT INTO test.t (c, payload) VALUES (1, 'not durable on the agent')") // waits 200 ms for the ACK, then async
	_, err := f.p.a.opSwitchover(ctx, operator, control.Request{Op: "switchover", Timeout: time.Second})
	if !errors.Is(err, failover.ErrRefused) || !strings.Contains(err.Error(), "did not catch up") || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("switchover with a standby that cannot catch up: %v; want refused before anything changed", err)
	}
	t.Logf("refused: %v", err)
	if ro, _ := f.master.QueryString(ctx, "SELECT @@read_only"); ro != "0" {
		t.Fatalf("read_only=%s on the master after the aborted switchover", ro)
	}
	if ro, _ := f.standby.QueryString(ctx, "SELECT @@read_only"); ro != "1" {
		t.Fatalf("read_only=%s on the standby after the aborted switchover", ro)
	}
	if r := f.report(); r.Role != checkpoint.RoleStandby {
		t.Fatalf("role %s after the aborted switchover", r.Role)
	}
	hold.Store(false)
	close(release)

	must(t, f.master.Kill())
	_, err = f.p.a.opSwitchover(ctx, operator, control.Request{Op: "switchover"})
	if !errors.Is(err, failover.ErrRefused) || !strings.Contains(err.Error(), "hotstandby promote") || strings.Contains(err.Error(), f.password) {
		t.Fatalf("switchover with the master down: %v; want refused saying to use promote", err)
	}
	t.Logf("refused: %v", err)
	// The same through the command line and the daemon's control socket.
	out, err := exec.Command(hsBinary, "switchover", "--config", f.cfgPath, "--rejoin").CombinedOutput()
	if text := strings.TrimSpace(string(out)); err == nil || !strings.Contains(text, "use `hotstandby promote`") || strings.Contains(text, f.password) {
		t.Fatalf("hotstandby switchover with the master down: %v, output %q; want exit 1 saying to use promote", err, text)
	}
	if r := f.report(); r.Role != checkpoint.RoleStandby {
		t.Fatalf("role %s after a refused switchover", r.Role)
	}
}
