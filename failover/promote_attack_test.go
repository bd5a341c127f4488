package failover

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// catchUpStream is the fakes with a durable frontier the test moves.
type catchUpStream struct {
	*fakes
	mu    sync.Mutex
	gtid  string
	later string // what the frontier becomes after a few reads ("": never)
	reads int
}

func (s *catchUpStream) Durable() relay.Frontier {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reads++; s.reads > 3 && s.later != "" {
		s.gtid = s.later // the stream receives the tail later
	}
	set, _ := binlog.ParseGTIDSet(binlog.MariaDB, s.gtid)
	if s.gtid == "" {
		set = binlog.GTIDSet{} // not known yet: the relay log is being recovered
	}
	return relay.Frontier{Segment: 1, Offset: 100, Pos: binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000001", Pos: 100}, GTID: set}}
}

// TestPromotionWaitsForTheFencedMastersEnd: an old master the fence
// reached may have written (async, after its semi-sync timeout) past what
// the stream holds. The stream must not stop before the relay log holds
// the fenced master's GTID state; if it never does, the promotion aborts
// (the standby untouched), and only --force goes past it, recorded.
func TestPromotionWaitsForTheFencedMastersEnd(t *testing.T) {
	fenced := func() *FenceResult {
		r := *isoFenced
		r.End = "0-1-10"
		return &r
	}
	t.Run("catches up", func(t *testing.T) {
		s := &catchUpStream{fakes: &fakes{lossless: true, iso: Isolation{SQL: fenced()}}, gtid: "0-1-7", later: "0-1-10"}
		p := newPromoter(t, s.fakes)
		p.Stream = s
		if _, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"}); err != nil {
			t.Fatal(err)
		}
		if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster {
			t.Fatalf("role %s, want master", r.Role)
		}
	})
	for _, held := range []string{"0-1-7", ""} {
		t.Run("never catches up, held "+held, func(t *testing.T) {
			s := &catchUpStream{fakes: &fakes{lossless: true, iso: Isolation{SQL: fenced()}}, gtid: held}
			p := newPromoter(t, s.fakes)
			p.Stream, p.CatchUp = s, 200*time.Millisecond
			_, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"})
			if !errors.Is(err, ErrAborted) || !strings.Contains(err.Error(), "0-1-10") {
				t.Fatalf("Promote = %v, want aborted naming the fenced end", err)
			}
			if got := strings.Join(s.calls, " "); strings.Contains(got, "stop") || strings.Contains(got, "writable") {
				t.Fatalf("calls %q: the stream was stopped or the standby touched", got)
			}
			if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleStandby {
				t.Fatalf("role %s, want standby", r.Role)
			}
		})
	}
	t.Run("forced past it", func(t *testing.T) {
		s := &catchUpStream{fakes: &fakes{lossless: true, iso: Isolation{SQL: fenced()}}, gtid: "0-1-7"}
		p := newPromoter(t, s.fakes)
		p.Stream, p.CatchUp = s, 100*time.Millisecond
		if _, err := p.Promote(context.Background(), Request{Reason: "operator", By: "uid 0", Force: true}); err != nil {
			t.Fatal(err)
		}
		if a := auditText(t, p); !strings.Contains(a, "FORCED past a stream that does not hold the fenced old master's end") {
			t.Fatalf("audit log does not record the force:\n%s", a)
		}
	})
	t.Run("unreachable: nothing to wait for", func(t *testing.T) {
		s := &catchUpStream{fakes: &fakes{lossless: true, iso: Isolation{SQL: isoUnreachable}}, gtid: "0-1-7"}
		p := newPromoter(t, s.fakes)
		p.Stream, p.CatchUp = s, time.Hour
		if _, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"}); err != nil {
			t.Fatal(err)
		}
	})
}

// recheckFencer is the fakes with a second SQL fence.
type recheckFencer struct {
	*fakes
	again *FenceResult
}

func (f *recheckFencer) Recheck(context.Context) *FenceResult { _ = f.do("refence"); return f.again }

// TestPromotionFencesAgainBeforeWritable: an old master that did not
// answer at the isolation (frozen) may answer during the drain, writable.
// Right before the standby is made writable it is fenced again: still
// silent or fenced with nothing the relay log lacks, the promotion goes
// on; answering and not fenced, or holding commits the relay log lacks,
// the standby stays read-only (only --force goes on, recorded).
func TestPromotionFencesAgainBeforeWritable(t *testing.T) {
	with := func(end string) *FenceResult { r := *isoFenced; r.End = end; return &r }
	tests := []struct {
		name     string
		again    *FenceResult
		force    bool
		wantRole string
		wantErr  string
	}{
		{"still silent", isoUnreachable, false, checkpoint.RoleMaster, ""},
		{"fenced, nothing new", with("0-1-7"), false, checkpoint.RoleMaster, ""},
		{"fenced, wrote past the relay log", with("0-1-9"), false, checkpoint.RolePromoting, "beyond the relay log"},
		{"answers, not fenced", isoAnsweredNotFenced, false, checkpoint.RolePromoting, "not fenced"},
		{"answers, not fenced, forced", isoAnsweredNotFenced, true, checkpoint.RoleMaster, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &catchUpStream{fakes: &fakes{lossless: true, iso: Isolation{SQL: isoUnreachable}}, gtid: "0-1-7"}
			p := newPromoter(t, s.fakes)
			p.Stream, p.Fencer = s, &recheckFencer{fakes: s.fakes, again: tt.again}
			_, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector", Force: tt.force})
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Promote = %v, want error %q", err, tt.wantErr)
			}
			calls := strings.Join(s.calls, " ")
			if !strings.Contains(calls, "drain refence") {
				t.Fatalf("calls %q: no second fence after the drain", calls)
			}
			if tt.wantErr != "" && strings.Contains(calls, "writable") {
				t.Fatalf("calls %q: the standby was made writable", calls)
			}
			if r, _ := p.Store.LoadRole(); r.Role != tt.wantRole {
				t.Fatalf("role %s, want %s", r.Role, tt.wantRole)
			}
		})
	}
}

// TestConcurrentPromotionsPromoteOnce: the detector's promotion and an
// operator's `promote` racing: one promotes (one epoch, one drain, one
// MakeWritable), the other is refused, whatever the order.
func TestConcurrentPromotionsPromoteOnce(t *testing.T) {
	f := &fakes{lossless: true}
	p := newPromoter(t, f)
	errs := make(chan error, 2)
	var start sync.WaitGroup
	start.Add(1)
	for _, by := range []string{"detector", "uid 0 (root) pid 1"} {
		go func() {
			start.Wait()
			_, err := p.Promote(context.Background(), Request{Reason: "race", By: by})
			errs <- err
		}()
	}
	start.Done()
	var refused, ok int
	for range 2 {
		switch err := <-errs; {
		case err == nil:
			ok++
		case errors.Is(err, ErrRefused):
			refused++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	calls := strings.Join(f.calls, " ")
	if ok != 1 || refused != 1 || strings.Count(calls, "writable") != 1 || strings.Count(calls, "drain") != 1 {
		t.Fatalf("ok %d refused %d, calls %q: want one promotion", ok, refused, calls)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster || r.Epoch != 1 {
		t.Fatalf("role %s epoch %d, want master epoch 1", r.Role, r.Epoch)
	}
}
