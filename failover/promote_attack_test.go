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
