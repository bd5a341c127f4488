package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/tlsconf"
)

// okSpan is a stretch of time during which a prober saw Check answer OK
// with one epoch: from is read before the first such Check, to after the
// last, so the span covers every instant the member could have ACKed.
type okSpan struct {
	member   string
	epoch    int64
	from, to Instant
}

// prober calls Check in a loop, as an ACK path would before each ACK.
type prober struct {
	member string
	a      *Acknowledger
	stop   chan struct{}
	done   chan struct{}

	mu    sync.Mutex // mu guards the fields below
	spans []okSpan
	open  bool // the last Check was OK (spans' last is still growing)
}

func startProber(t *testing.T, member string, a *Acknowledger) *prober {
	p := &prober{member: member, a: a, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	t.Cleanup(p.halt)
	return p
}

func (p *prober) loop() {
	defer close(p.done)
	for {
		select {
		case <-p.stop:
			return
		default:
		}
		before := bootClock()
		pm := p.a.Check()
		after := bootClock()
		p.mu.Lock()
		switch {
		case pm.OK && p.open && p.spans[len(p.spans)-1].epoch == pm.Epoch:
			p.spans[len(p.spans)-1].to = after
		case pm.OK:
			p.spans = append(p.spans, okSpan{member: p.member, epoch: pm.Epoch, from: before, to: after})
			p.open = true
		default:
			p.open = false
		}
		p.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
}

func (p *prober) halt() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

func (p *prober) seen() []okSpan {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]okSpan(nil), p.spans...)
}

// member is one candidate under test.
type member struct {
	name  string
	cfg   Config
	a     *Acknowledger
	probe *prober
}

// group is the members of one test cluster.
type group struct {
	t       *testing.T
	etcd    *etcdCluster
	name    string
	members []*member
	all     []*member // every member ever started, for the overlap check
	// overlapOK names why this test tolerates overlapping OK spans ("":
	// it does not).
	overlapOK string
}

func newGroup(t *testing.T, ec *etcdCluster) *group {
	g := &group{t: t, etcd: ec, name: "c" + harness.RandHex(4)}
	t.Cleanup(g.checkOverlap)
	return g
}

// standbyNames are the standby members of every test cluster.
var standbyNames = []string{"s0", "s1", "s2"}

// start starts a member named name talking to the given etcd members.
func (g *group) start(name string, role Role, ems ...*etcdMember) *member {
	g.t.Helper()
	return g.startWith(name, role, tlsconf.Settings{}, ems...)
}

// startWith is start with the TLS settings sec.
func (g *group) startWith(name string, role Role, sec tlsconf.Settings, ems ...*etcdMember) *member {
	g.t.Helper()
	if len(ems) == 0 {
		ems = g.etcd.members
	}
	var eps []string
	for _, m := range ems {
		eps = append(eps, m.clientURL)
	}
	cfg := Config{Etcd: eps, Settings: sec, Name: g.name, Member: name, Role: role, Standbys: standbyNames, LeaseTTL: 2 * time.Second}
	a, err := Start(cfg, slog.New(slog.NewTextHandler(testWriter{g.t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		g.t.Fatal(err)
	}
	m := &member{name: name, cfg: cfg, a: a}
	m.probe = startProber(g.t, name, a)
	g.t.Cleanup(func() { m.probe.halt(); a.Close() })
	g.members = append(g.members, m)
	g.all = append(g.all, m)
	return m
}

// testWriter sends the members' logs to t.Log (shown on failure).
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(b))
	return len(b), nil
}

// acknowledger waits until one live member answers OK and returns it.
func (g *group) acknowledger(what string, d time.Duration) *member {
	g.t.Helper()
	var found *member
	harness.WaitFor(g.t, what, d, func() bool {
		for _, m := range g.members {
			if m.a.Check().OK {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// crash stops m as kill -9 would (no resignation, no revoke) and removes it
// from the live members; its prober keeps asking Check.
func (g *group) crash(m *member) Instant {
	at := bootClock()
	m.a.abandon()
	for i, x := range g.members {
		if x == m {
			g.members = append(g.members[:i], g.members[i+1:]...)
			break
		}
	}
	return at
}

// checkOverlap fails the test when two members answered OK at overlapping
// times, or one epoch was answered by two members.
func (g *group) checkOverlap() {
	if g.overlapOK != "" {
		g.t.Logf("overlap not checked: %s", g.overlapOK)
		return
	}
	var spans []okSpan
	for _, m := range g.all {
		m.probe.halt()
		spans = append(spans, m.probe.seen()...)
	}
	byEpoch := map[int64]string{}
	for i, a := range spans {
		if who, ok := byEpoch[a.epoch]; ok && who != a.member {
			g.t.Errorf("epoch %d answered OK by %s and %s", a.epoch, who, a.member)
		}
		byEpoch[a.epoch] = a.member
		for _, b := range spans[i+1:] {
			if a.member != b.member && !a.to.Before(b.from) && !b.to.Before(a.from) {
				g.t.Errorf("two acknowledgers at once: %s (epoch %d) OK from %s to %s, %s (epoch %d) OK from %s to %s",
					a.member, a.epoch, a.from, a.to, b.member, b.epoch, b.from, b.to)
			}
		}
	}
	for _, a := range spans {
		for _, b := range spans {
			if a.epoch < b.epoch && !a.from.Before(b.from) {
				g.t.Errorf("epoch %d (%s) started OK after epoch %d (%s): epochs must grow with time", a.epoch, a.member, b.epoch, b.member)
			}
		}
	}
}

// onlyOne asserts that exactly one live member answers OK, that etcd names
// it, and that the epochs agree.
func (g *group) onlyOne(ack *member) {
	g.t.Helper()
	p := ack.a.Check()
	for _, m := range g.members {
		if m != ack && m.a.Check().OK {
			g.t.Fatalf("%s and %s both answer OK", ack.name, m.name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name, epoch, err := ack.a.Leader(ctx)
	if err != nil {
		g.t.Fatal(err)
	}
	if p.OK && (name != ack.name || epoch != p.Epoch) {
		g.t.Fatalf("etcd names %s (epoch %d) as acknowledger; %s answers OK with epoch %d", name, epoch, ack.name, p.Epoch)
	}
}

// lastTerm is m's last term (fails when it has none).
func lastTerm(t *testing.T, m *member) Term {
	t.Helper()
	ts := m.a.Terms()
	if len(ts) == 0 {
		t.Fatalf("%s has no term", m.name)
	}
	return ts[len(ts)-1]
}

// heldFor waits until m's current term's lease deadline has moved at least
// d past its win: m renewed its lease for d as acknowledger.
func heldFor(t *testing.T, m *member, d time.Duration) {
	t.Helper()
	harness.WaitFor(t, fmt.Sprintf("%s to hold the seat for %s", m.name, d), 60*time.Second, func() bool {
		ts := m.a.Terms()
		return len(ts) > 0 && !ts[len(ts)-1].Ended && ts[len(ts)-1].Until.Sub(ts[len(ts)-1].Won) >= d
	})
}

func TestOneAcknowledgerAmongThree(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	start := bootClock()
	for _, n := range standbyNames {
		g.start(n, RoleStandby)
	}
	ack := g.acknowledger("an acknowledger among 3", 30*time.Second)
	t.Logf("first acknowledger %s after %s", ack.name, bootClock().Sub(start))
	heldFor(t, ack, 3*ack.cfg.ttl())
	g.onlyOne(ack)
	for _, m := range g.members {
		if m != ack {
			if p := m.a.Check(); p.OK || p.Reason == "" {
				t.Errorf("%s: %+v, want not OK with a reason", m.name, p)
			}
			if len(m.a.Terms()) != 0 {
				t.Errorf("%s has terms %+v; it never won", m.name, m.a.Terms())
			}
		}
	}
	guard, _, ok := ack.a.Guard()
	if !ok {
		t.Fatal("the acknowledger has no guard")
	}
	for _, m := range g.members {
		if _, _, ok := m.a.Guard(); ok && m != ack {
			t.Fatalf("the campaigning %s has a guard", m.name)
		}
	}
	// A graceful Close hands the seat over at once (the lease is revoked).
	closed := bootClock()
	ack.a.Close()
	if p := ack.a.Check(); p.OK {
		t.Fatalf("closed acknowledger still answers OK")
	}
	g.members = g.members[:0]
	for _, m := range g.all {
		if m != ack {
			g.members = append(g.members, m)
		}
	}
	next := g.acknowledger("a new acknowledger after a Close", 30*time.Second)
	t.Logf("handover after Close: %s -> %s in %s", ack.name, next.name, lastTerm(t, next).Won.Sub(closed))
	if old, cur := lastTerm(t, ack), lastTerm(t, next); cur.Epoch <= old.Epoch {
		t.Errorf("epoch went from %d to %d: want it to grow", old.Epoch, cur.Epoch)
	}
	g.onlyOne(next)
	// The old term's guard no longer lets a write through; the new one's does.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli := ec.client()
	key := g.name + "/promotion"
	if r, err := cli.Txn(ctx).If(guard).Then(clientv3.OpPut(key, ack.name)).Commit(); err != nil || r.Succeeded {
		t.Fatalf("a write guarded by %s's old term: succeeded %v, err %v; want refused", ack.name, r != nil && r.Succeeded, err)
	}
	ng, _, _ := next.a.Guard()
	if r, err := cli.Txn(ctx).If(ng).Then(clientv3.OpPut(key, next.name)).Commit(); err != nil || !r.Succeeded {
		t.Fatalf("a write guarded by the current term: succeeded %v, err %v", r != nil && r.Succeeded, err)
	}
}

func TestAcknowledgerCrashHandover(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	for _, n := range standbyNames {
		g.start(n, RoleStandby)
	}
	for round := range 2 {
		old := g.acknowledger("an acknowledger", 30*time.Second)
		heldFor(t, old, old.cfg.ttl())
		killed := g.crash(old)
		next := g.acknowledger("a new acknowledger after the old one crashed", 60*time.Second)
		ot, nt := lastTerm(t, old), lastTerm(t, next)
		t.Logf("round %d: %s crashed; it answered OK until %s after; %s won %s after the crash (epoch %d -> %d)",
			round, old.name, ot.Until.Sub(killed), next.name, nt.Won.Sub(killed), ot.Epoch, nt.Epoch)
		if !ot.Until.Before(nt.Won) {
			t.Fatalf("%s could answer OK until %s, but %s won at %s", old.name, ot.Until, next.name, nt.Won)
		}
		if p := old.a.Check(); p.OK {
			t.Fatalf("the crashed %s still answers OK: %+v", old.name, p)
		}
		if nt.Epoch <= ot.Epoch {
			t.Fatalf("epoch went from %d to %d: want it to grow", ot.Epoch, nt.Epoch)
		}
		g.onlyOne(next)
		if round == 0 {
			g.start(old.name, RoleStandby) // the crashed member comes back
		}
	}
}

func TestAcknowledgerPartitionedFromEtcd(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	byMember := map[*member]*etcdMember{}
	for i, n := range standbyNames {
		m := g.start(n, RoleStandby, ec.members[i])
		byMember[m] = ec.members[i]
	}
	old := g.acknowledger("an acknowledger", 30*time.Second)
	heldFor(t, old, old.cfg.ttl())
	em := byMember[old]
	stopped := bootClock()
	ec.stop(em)
	harness.WaitFor(t, old.name+" to stop answering OK", 30*time.Second, func() bool { return !old.a.Check().OK })
	ot := lastTerm(t, old)
	t.Logf("%s's etcd %s stopped; it answered OK until %s after (%s)", old.name, em.name, ot.Until.Sub(stopped), old.a.Check().Reason)
	if limit := stopped.Add(old.cfg.ttl() - old.a.margin); limit.Before(ot.Until) {
		t.Fatalf("%s could answer OK until %s, past the stop + TTL - margin (%s)", old.name, ot.Until, limit)
	}
	var rest []*member
	for _, m := range g.members {
		if m != old {
			rest = append(rest, m)
		}
	}
	others := &group{t: t, etcd: ec, members: rest}
	next := others.acknowledger("a new acknowledger beside the partitioned one", 60*time.Second)
	nt := lastTerm(t, next)
	t.Logf("%s won %s after the stop (epoch %d -> %d)", next.name, nt.Won.Sub(stopped), ot.Epoch, nt.Epoch)
	if !ot.Until.Before(nt.Won) {
		t.Fatalf("%s could answer OK until %s, but %s won at %s", old.name, ot.Until, next.name, nt.Won)
	}
	// While its etcd stays frozen, the partitioned member never answers OK
	// again: watched while the new acknowledger renews its lease for two
	// TTLs more.
	heldFor(t, next, nt.Until.Sub(nt.Won)+2*next.cfg.ttl())
	for _, s := range old.probe.seen() {
		if s.epoch != ot.Epoch || ot.Until.Before(s.to) {
			t.Fatalf("the partitioned %s answered OK again: %+v", old.name, s)
		}
	}
	// Its etcd comes back: it campaigns again and waits its turn.
	ec.cont(em)
	harness.WaitFor(t, old.name+" to campaign again", 60*time.Second, func() bool {
		p := old.a.Check()
		return !p.OK && p.Reason == "not the acknowledger (campaigning)"
	})
	g.onlyOne(next)
}

func TestEtcdLeaderKilledDuringElection(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	for _, n := range standbyNames {
		g.start(n, RoleStandby)
	}
	old := g.acknowledger("an acknowledger", 30*time.Second)
	heldFor(t, old, old.cfg.ttl())
	killed := g.crash(old)
	// The election to replace it runs while etcd loses its raft leader.
	leader := ec.leader()
	leader.proc.Kill()
	t.Logf("killed etcd raft leader %s right after %s crashed", leader.name, old.name)
	next := g.acknowledger("a new acknowledger after the etcd leader died", 60*time.Second)
	ot, nt := lastTerm(t, old), lastTerm(t, next)
	t.Logf("%s won %s after the crash (epoch %d -> %d)", next.name, nt.Won.Sub(killed), ot.Epoch, nt.Epoch)
	if !ot.Until.Before(nt.Won) {
		t.Fatalf("%s could answer OK until %s, but %s won at %s", old.name, ot.Until, next.name, nt.Won)
	}
	heldFor(t, next, nt.Until.Sub(nt.Won)+2*next.cfg.ttl())
	g.onlyOne(next)
	// The killed etcd member returns; still one acknowledger.
	leader.proc.Restart()
	ec.waitHealthy(leader)
	heldFor(t, next, lastTerm(t, next).Until.Sub(nt.Won)+next.cfg.ttl())
	g.onlyOne(next)
}

func TestDRMemberNeverAcknowledges(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	dr := g.start("dr0", RoleDR)
	s0 := g.start("s0", RoleStandby)
	ack := g.acknowledger("the standby as acknowledger", 30*time.Second)
	if ack != s0 {
		t.Fatalf("%s won the election, want s0", ack.name)
	}
	g.crash(s0)
	// Only the DR member is left: the seat stays empty.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	harness.Poll(t, "the crashed standby's key to expire", 60*time.Second, 50*time.Millisecond, func() (bool, error) {
		name, _, err := dr.a.Leader(ctx)
		return err == nil && name == "", nil
	})
	s1 := g.start("s1", RoleStandby)
	if next := g.acknowledger("a standby after the DR member waited alone", 30*time.Second); next != s1 {
		t.Fatalf("%s won, want s1", next.name)
	}
	heldFor(t, s1, 2*s1.cfg.ttl())
	if p := dr.a.Check(); p.OK || p.Reason == "" {
		t.Fatalf("DR member: %+v", p)
	}
	if s := dr.probe.seen(); len(s) != 0 || len(dr.a.Terms()) != 0 {
		t.Fatalf("the DR member answered OK: %+v, terms %+v", s, dr.a.Terms())
	}
	resp, err := ec.client().Get(ctx, g.members[0].cfg.ElectionPrefix(), clientPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if string(kv.Value) == "dr0" {
			t.Fatalf("the DR member campaigned: key %s", kv.Key)
		}
	}
}

// TestAcknowledgerOverTLS runs the election against etcd serving https with
// client certificates required: verify-full against the CA, the agent's
// client certificate; a member without a client certificate never gets a
// lease, and one that does not trust the server's CA neither.
func TestAcknowledgerOverTLS(t *testing.T) {
	needEtcd(t)
	dir := t.TempDir()
	ca := harness.NewCA(t, dir, "etcd-ca")
	sec := &etcdTLS{ca: ca, server: ca.LocalServer(t, "etcd"), client: ca.Issue(t, harness.CertSpec{Name: "test", Client: true})}
	ec := startEtcdWith(t, 3, sec)
	g := newGroup(t, ec)
	agent := ca.Issue(t, harness.CertSpec{Name: "agent", Client: true})
	other := harness.NewCA(t, t.TempDir(), "other-ca")
	good := g.startWith("s0", RoleStandby, tlsconf.Settings{Level: "verify-full", CAFile: ca.File, CertFile: agent.Cert, KeyFile: agent.Key})
	noCert := g.startWith("s1", RoleStandby, tlsconf.Settings{Level: "verify-full", CAFile: ca.File})
	wrongCA := g.startWith("s2", RoleStandby, tlsconf.Settings{Level: "verify-full", CAFile: other.File, CertFile: agent.Cert, KeyFile: agent.Key})
	if ack := g.acknowledger("the member with a client certificate", 30*time.Second); ack != good {
		t.Fatalf("%s won, want s0", ack.name)
	}
	heldFor(t, good, 2*good.cfg.ttl())
	g.onlyOne(good)
	for _, m := range []*member{noCert, wrongCA} {
		if p := m.a.Check(); p.OK || p.Reason != "no lease in etcd yet" {
			t.Fatalf("%s: %+v, want no lease", m.name, p)
		}
	}
	// verify-full checks the name: a reader expecting another server
	// name is refused; with the right settings it reads the leader.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reader := g.startWith("dr0", RoleDR, tlsconf.Settings{Level: "verify-full", CAFile: ca.File, CertFile: agent.Cert, KeyFile: agent.Key})
	if name, _, err := reader.a.Leader(ctx); err != nil || name != "s0" {
		t.Fatalf("Leader = %q, %v; want s0", name, err)
	}
	misnamed := g.startWith("dr1", RoleDR, tlsconf.Settings{Level: "verify-full", CAFile: ca.File, CertFile: agent.Cert, KeyFile: agent.Key, ServerName: "etcd.elsewhere"})
	mctx, mcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer mcancel()
	if name, _, err := misnamed.a.Leader(mctx); err == nil {
		t.Fatalf("Leader over a certificate for another name = %q, want an error", name)
	}
	named := g.startWith("dr2", RoleDR, tlsconf.Settings{Level: "verify-full", CAFile: ca.File, CertFile: agent.Cert, KeyFile: agent.Key, ServerName: "localhost"})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if name, _, err := named.a.Leader(ctx2); err != nil || name != "s0" {
		t.Fatalf("Leader with server_name = localhost (in the certificate) = %q, %v; want s0", name, err)
	}
}

// TestAcknowledgerKeyDeletedByHand: a key deleted under the election
// prefix by something other than its lease ends that member's term at its
// next renewal (it re-campaigns behind the others). Until then it may still
// answer OK while the next member already won: the argument in doc.go
// assumes keys go only with their leases (etcd RBAC on the prefix).
func TestAcknowledgerKeyDeletedByHand(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	g.overlapOK = "a hand-deleted key breaks the lease argument for up to one renewal interval (documented)"
	for _, n := range standbyNames {
		g.start(n, RoleStandby)
	}
	old := g.acknowledger("an acknowledger", 30*time.Second)
	heldFor(t, old, old.cfg.ttl())
	ot := lastTerm(t, old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ec.client().Delete(ctx, old.a.st0Key()); err != nil {
		t.Fatal(err)
	}
	deleted := bootClock()
	harness.WaitFor(t, old.name+" to see its key gone", 30*time.Second, func() bool {
		ts := old.a.Terms()
		return ts[len(ts)-1].Epoch == ot.Epoch && ts[len(ts)-1].Ended
	})
	t.Logf("%s saw its key gone %s after the delete", old.name, bootClock().Sub(deleted))
	var next *member
	harness.WaitFor(t, "another acknowledger", 30*time.Second, func() bool {
		for _, m := range g.members {
			if m != old && m.a.Check().OK {
				next = m
				return true
			}
		}
		return false
	})
	harness.WaitFor(t, old.name+" to campaign again", 30*time.Second, func() bool {
		return old.a.Check().Reason == "not the acknowledger (campaigning)"
	})
	g.onlyOne(next)
}

// TestCloseWithEtcdFrozen: Close returns, and Check answers not OK at
// once, even when the only etcd member the member talks to is frozen: for
// a campaigning member (the library's resignation would wait on etcd for
// as long as the client lives) and for the acknowledger (its revoke cannot
// reach etcd; the lease then expires there and the third member wins).
func TestCloseWithEtcdFrozen(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	via := map[*member]*etcdMember{}
	for i, n := range standbyNames {
		via[g.start(n, RoleStandby, ec.members[i])] = ec.members[i]
	}
	ack := g.acknowledger("an acknowledger", 30*time.Second)
	heldFor(t, ack, ack.cfg.ttl())
	var campaigner, third *member
	for _, m := range g.members {
		switch {
		case m == ack:
		case campaigner == nil:
			campaigner = m
		default:
			third = m
		}
	}
	closeFrozen := func(m *member) {
		ec.stop(via[m])
		defer ec.cont(via[m])
		start := bootClock()
		closed := make(chan struct{})
		go func() { m.a.Close(); close(closed) }()
		harness.WaitFor(t, "Close of "+m.name+" to return with its etcd frozen", 60*time.Second, func() bool {
			select {
			case <-closed:
				return true
			default:
				return false
			}
		})
		t.Logf("Close of %s returned after %s with its etcd frozen", m.name, bootClock().Sub(start))
		if p := m.a.Check(); p.OK || p.Reason != "closed" {
			t.Fatalf("after Close: %+v", p)
		}
	}
	closeFrozen(campaigner)
	closeFrozen(ack)
	g.members = []*member{third}
	g.acknowledger("the third member after the closed acknowledger's lease expired", 60*time.Second)
}

// TestAcknowledgerEtcdMinority: the etcd member the acknowledger talks to
// stays up but loses its quorum (the two others frozen): it answers fast,
// with errors, and serves stale reads. The acknowledger stops answering OK
// within its TTL, its term ends, and no member answers OK until the
// quorum is back.
func TestAcknowledgerEtcdMinority(t *testing.T) {
	ec := startEtcd(t, 3)
	g := newGroup(t, ec)
	for _, n := range standbyNames {
		g.start(n, RoleStandby, ec.members[0])
	}
	old := g.acknowledger("an acknowledger", 30*time.Second)
	heldFor(t, old, old.cfg.ttl())
	stopped := bootClock()
	ec.stop(ec.members[1])
	ec.stop(ec.members[2])
	harness.WaitFor(t, old.name+"'s term to end with etcd in a minority", 60*time.Second, func() bool {
		return lastTerm(t, old).Ended
	})
	ot := lastTerm(t, old)
	t.Logf("%s answered OK until %s after etcd lost its quorum; term ended %s after", old.name, ot.Until.Sub(stopped), bootClock().Sub(stopped))
	if limit := stopped.Add(old.cfg.ttl() - old.a.margin); limit.Before(ot.Until) {
		t.Fatalf("%s could answer OK until %s, past the loss + TTL - margin (%s)", old.name, ot.Until, limit)
	}
	resumed := bootClock()
	ec.cont(ec.members[1])
	ec.cont(ec.members[2])
	for _, m := range g.members {
		for _, s := range m.probe.seen() {
			if s.to.Before(stopped) || resumed.Before(s.from) {
				continue
			}
			if s.epoch != ot.Epoch || ot.Until.Before(s.to) {
				t.Fatalf("%s answered OK while etcd had no quorum: %+v", m.name, s)
			}
		}
	}
	next := g.acknowledger("an acknowledger once etcd has its quorum back", 60*time.Second)
	g.onlyOne(next)
}
