package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Acknowledger is one member's seat in the acknowledger election: it
// campaigns (a standby member) or stays out (a DR member), keeps its lease
// alive on its own clock, and answers Check.
type Acknowledger struct {
	cfg    Config
	log    *slog.Logger
	cli    *clientv3.Client
	clock  func() Instant
	margin time.Duration
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu       sync.Mutex // mu guards the fields below
	st       standing
	terms    []Term
	crashed  bool // abandon: stop without telling etcd anything
	lastWarn Instant
}

// ElectionPrefix is the etcd prefix under which the members campaign.
func (c Config) ElectionPrefix() string { return c.Prefix() + "acknowledger/" }

// Start connects to etcd (without waiting for it) and, for a standby member,
// starts campaigning. It returns at once; Check answers from then on. Close
// releases it.
func Start(cfg Config, log *slog.Logger) (*Acknowledger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	eps, _, _ := cfg.endpoints()
	tc, warning, err := cfg.TLSConfig()
	if err != nil {
		return nil, err
	}
	if warning != "" {
		log.Warn(warning)
	}
	ttl := cfg.ttl()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: eps, TLS: tc, DialTimeout: ttl,
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: ttl,
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client for %v: %w", eps, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Acknowledger{cfg: cfg, log: log.With("component", "cluster", "member", cfg.Member), cli: cli,
		clock: bootClock, margin: marginFor(ttl), cancel: cancel, done: make(chan struct{})}
	a.st.dr = cfg.role() == RoleDR
	if a.st.dr {
		close(a.done)
		return a, nil
	}
	go a.run(ctx)
	return a, nil
}

// marginFor is how long before the lease's earliest possible expiry the
// acknowledger stops: it covers the rate difference between this host's
// clock and the etcd leader's, and the time between a Check and the ACK
// leaving the socket.
func marginFor(ttl time.Duration) time.Duration { return max(ttl/4, 250*time.Millisecond) }

// Check answers "may I acknowledge now?". It takes no lock the campaign or
// the keepalives hold across a call to etcd, so it answers at once however
// stalled etcd is. Any goroutine may call it.
func (a *Acknowledger) Check() Permit {
	now := a.clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.permit(now)
}

// Terms returns the tenures this member has held, oldest first.
func (a *Acknowledger) Terms() []Term {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Term(nil), a.terms...)
}

// Guard is the etcd condition "this member's term (epoch) still holds the
// seat": a Txn guarded by it (If(guard)) writes only while the key of that
// term exists, so a write prepared in one term (a promotion's record) cannot
// land after another member won. ok is false when not the acknowledger.
func (a *Acknowledger) Guard() (guard clientv3.Cmp, epoch int64, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.st.leader {
		return clientv3.Cmp{}, 0, false
	}
	return clientv3.Compare(clientv3.CreateRevision(a.st.key), "=", a.st.epoch), a.st.epoch, true
}

// Leader reads who holds the seat in etcd now: its member name and epoch
// ("" and 0 when nobody does).
func (a *Acknowledger) Leader(ctx context.Context) (string, int64, error) {
	resp, err := a.cli.Get(ctx, a.cfg.ElectionPrefix(), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: read the acknowledger from etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, nil
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].CreateRevision, nil
}

// Close resigns (revokes the lease, so another member takes over at once
// rather than after the TTL) and disconnects. Check answers not OK from the
// moment Close is called.
func (a *Acknowledger) Close() error {
	a.mu.Lock()
	a.st.closed = true
	a.endTerm()
	a.mu.Unlock()
	a.cancel()
	select {
	case <-a.done:
	case <-time.After(a.cfg.ttl()):
		// A call stuck on a stalled etcd (the campaign's resignation):
		// closing the client ends it.
	}
	err := a.cli.Close()
	<-a.done
	return err
}

// abandon stops as a crash would: no resignation, no revoke; the lease
// expires in etcd on its own. For tests: the kill -9 of a member.
func (a *Acknowledger) abandon() {
	a.mu.Lock()
	a.crashed = true
	a.mu.Unlock()
	a.cli.Close()
	a.cancel()
	<-a.done
}

// run campaigns until ctx ends: one lease and one campaign per round; a
// round ends when its lease or its key is gone.
func (a *Acknowledger) run(ctx context.Context) {
	defer close(a.done)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := a.clock()
		err := a.round(ctx)
		if ctx.Err() != nil {
			return
		}
		if a.clock().Sub(start) > a.cfg.ttl() {
			backoff = 100 * time.Millisecond
		}
		a.warn("campaign round ended; campaigning again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// round grants a lease, keeps it alive, campaigns, and holds the seat until
// the lease or the key is gone or ctx ends.
func (a *Acknowledger) round(ctx context.Context) error {
	ttl := a.cfg.ttl()
	sent := a.clock()
	gctx, gcancel := context.WithTimeout(ctx, ttl)
	g, err := a.cli.Grant(gctx, int64(ttl/time.Second))
	gcancel()
	if err != nil {
		return fmt.Errorf("grant a lease: %w", err)
	}
	granted := time.Duration(g.TTL) * time.Second
	lctx, lost := context.WithCancel(ctx)
	defer lost()
	a.mu.Lock()
	a.st.lease, a.st.deadline = int64(g.ID), sent.Add(granted-a.margin)
	a.mu.Unlock()
	defer a.dropLease(g.ID)
	kdone := make(chan struct{})
	go func() { defer close(kdone); a.keepalive(lctx, g.ID, lost) }()
	defer func() { lost(); <-kdone }()

	sess, err := concurrency.NewSession(a.cli, concurrency.WithLease(g.ID), concurrency.WithContext(lctx))
	if err != nil {
		return fmt.Errorf("session on lease %x: %w", g.ID, err)
	}
	el := concurrency.NewElection(sess, a.cfg.ElectionPrefix())
	if err := el.Campaign(lctx, a.cfg.Member); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	a.won(int64(g.ID), el.Key(), el.Rev())
	select {
	case <-lctx.Done():
	case <-sess.Done():
	}
	return errors.New("lease or key lost")
}

// won records the start of a term.
func (a *Acknowledger) won(lease int64, key string, epoch int64) {
	now := a.clock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.st.lease != lease || a.st.closed {
		return
	}
	a.st.leader, a.st.epoch, a.st.key = true, epoch, key
	a.terms = append(a.terms, Term{Epoch: epoch, Won: now, Until: a.st.deadline})
	a.log.Info("acknowledger: won the election", "epoch", epoch, "lease_remaining", a.st.deadline.Sub(now))
}

// endTerm ends the current term, if any. a.mu is held.
func (a *Acknowledger) endTerm() {
	if a.st.leader {
		a.terms[len(a.terms)-1].Ended = true
		a.log.Info("acknowledger: term ended", "epoch", a.st.epoch)
	}
	a.st.leader, a.st.epoch, a.st.key = false, 0, ""
}

// dropLease ends the round of lease: the term ends, and unless the member
// crashed the lease is revoked so that its key goes at once.
func (a *Acknowledger) dropLease(id clientv3.LeaseID) {
	a.mu.Lock()
	if a.st.lease == int64(id) {
		a.endTerm()
		a.st.lease, a.st.deadline = 0, 0
	}
	crashed := a.crashed
	a.mu.Unlock()
	if crashed {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ttl())
	defer cancel()
	if _, err := a.cli.Revoke(ctx, id); err != nil && !leaseGone(err) {
		a.warn("revoke the lease (it expires on its own)", "lease", fmt.Sprintf("%x", id), "err", err)
	}
}

// keepalive renews lease every TTL/6, one renewal at a time, until ctx
// ends; it calls lost when etcd says the lease or the seat's key is gone.
// Only a renewal that succeeded moves the deadline, and only to the instant
// it was sent plus the TTL granted, minus the margin: etcd renewed it after
// it was sent, so the lease lives at least that long in etcd.
func (a *Acknowledger) keepalive(ctx context.Context, id clientv3.LeaseID, lost context.CancelFunc) {
	ttl := a.cfg.ttl()
	interval := ttl / 6
	for {
		sent := a.clock()
		err := a.renew(ctx, id, sent, ttl-a.margin)
		switch {
		case ctx.Err() != nil:
			return
		case leaseGone(err) || errors.Is(err, errKeyGone):
			a.warn("acknowledger: lease lost", "err", err)
			lost()
			return
		case err != nil:
			a.warn("lease renewal failed", "err", err)
		}
		wait := interval - a.clock().Sub(sent)
		if wait <= 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

var errKeyGone = errors.New("the acknowledger's key is gone from etcd")

// renew is one renewal sent at sent, waiting at most timeout. While the
// member holds the seat, it also checks that its key still exists with its
// epoch (a key deleted by hand ends the term at the next renewal).
func (a *Acknowledger) renew(ctx context.Context, id clientv3.LeaseID, sent Instant, timeout time.Duration) error {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := a.cli.KeepAliveOnce(rctx, id)
	if err != nil {
		return err
	}
	granted := time.Duration(resp.TTL) * time.Second
	a.mu.Lock()
	key, epoch := a.st.key, a.st.epoch
	a.mu.Unlock()
	if key != "" {
		g, err := a.cli.Get(rctx, key)
		if err != nil {
			return err
		}
		if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != epoch {
			return errKeyGone
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	// A term that began during this renewal had its key unchecked this
	// once; the lease's renewal stands either way.
	if a.st.renewed(int64(id), sent, granted, a.margin) && a.st.leader {
		a.terms[len(a.terms)-1].Until = a.st.deadline
	}
	return nil
}

// leaseGone reports whether err is etcd's "lease not found" (expired or
// revoked).
func leaseGone(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrGRPCLeaseNotFound) ||
		errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound)
}

// warn logs at most once a second (a stalled etcd fails every renewal).
func (a *Acknowledger) warn(msg string, args ...any) {
	now := a.clock()
	a.mu.Lock()
	skip := a.lastWarn != 0 && now.Sub(a.lastWarn) < time.Second
	if !skip {
		a.lastWarn = now
	}
	a.mu.Unlock()
	if !skip {
		a.log.Warn(msg, args...)
	}
}
