package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/relay"
)

// fakes of the promotion's parts; each records its calls in order.
type fakes struct {
	calls      []string
	failAt     string // the call that fails once
	lossless   bool
	why        string
	veto       error
	standbyErr error
	iso        Isolation // what Fence returns (zero: nothing configured)
}

func (f *fakes) do(name string) error {
	f.calls = append(f.calls, name)
	if f.failAt == name {
		f.failAt = ""
		return errors.New(name + " failed")
	}
	return nil
}
func (f *fakes) StopForGood(context.Context) error { return f.do("stop") }
func (f *fakes) Durable() relay.Frontier           { return relay.Frontier{Segment: 1, Offset: 100} }
func (f *fakes) Drain(_ context.Context, t relay.Frontier) (binlog.Position, error) {
	return binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000001", Pos: 100}}, f.do("drain")
}
func (f *fakes) MakeWritable(context.Context) error { return f.do("writable") }
func (f *fakes) Check(context.Context) error        { return f.standbyErr }
func (f *fakes) Fence(context.Context) Isolation    { _ = f.do("fence"); return f.iso }
func (f *fakes) Lossless() (bool, string)           { return f.lossless, f.why }
func (f *fakes) PrePromote(context.Context, Event) error {
	_ = f.do("pre")
	return f.veto
}
func (f *fakes) PostPromote(context.Context, Event) HookResult {
	if err := f.do("post"); err != nil {
		return HookResult{Name: HookPostPromote, Argv: []string{"move-vip"}, ExitCode: 1, Output: "no such device", Err: err}
	}
	return HookResult{Name: HookPostPromote, Argv: []string{"move-vip"}}
}
func (f *fakes) Alert(context.Context, Event) HookResult {
	_ = f.do("alert")
	return HookResult{Name: HookAlert, Argv: []string{"page"}}
}

func newPromoter(t *testing.T, f *fakes) *Promoter {
	t.Helper()
	s, err := checkpoint.Open(filepath.Join(t.TempDir(), "c.db"), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &Promoter{Store: s, Stream: f, Drainer: f, Standby: f, Fencer: f, Gate: f, Hooks: f,
		OldAddr: "10.0.0.1:3306", NewAddr: "10.0.0.2:3306", Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}
}

func TestPromoteSteps(t *testing.T) {
	tests := []struct {
		name      string
		f         fakes
		req       Request
		wantErr   error
		wantCalls string
		wantRole  string
	}{
		{name: "lossless", f: fakes{lossless: true}, req: Request{Reason: "dead", By: "detector"},
			wantCalls: "pre fence stop drain writable post", wantRole: checkpoint.RoleMaster},
		{name: "not lossless: refused, alert", f: fakes{why: "master fell back to async"}, req: Request{Reason: "dead", By: "detector"},
			wantErr: ErrRefused, wantCalls: "alert", wantRole: checkpoint.RoleStandby},
		{name: "not lossless, forced", f: fakes{why: "master fell back to async"}, req: Request{Reason: "operator", By: "uid 0", Force: true},
			wantCalls: "pre fence stop drain writable post", wantRole: checkpoint.RoleMaster},
		{name: "veto", f: fakes{lossless: true, veto: errors.New("exit 3")}, req: Request{Reason: "dead"},
			wantErr: ErrRefused, wantCalls: "pre", wantRole: checkpoint.RoleStandby},
		{name: "dry run", f: fakes{lossless: true}, req: Request{DryRun: true}, wantCalls: "", wantRole: checkpoint.RoleStandby},
		{name: "standby unreachable: nothing done", f: fakes{lossless: true, standbyErr: errors.New("connection refused")}, req: Request{Reason: "dead"},
			wantErr: ErrRefused, wantCalls: "", wantRole: checkpoint.RoleStandby},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPromoter(t, &tt.f)
			_, err := p.Promote(context.Background(), tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Promote = %v, want %v", err, tt.wantErr)
			}
			if got := strings.Join(tt.f.calls, " "); got != tt.wantCalls {
				t.Fatalf("calls %q, want %q", got, tt.wantCalls)
			}
			r, _ := p.Store.LoadRole()
			if r.Role != tt.wantRole {
				t.Fatalf("role %s, want %s", r.Role, tt.wantRole)
			}
			if tt.req.Force && (!r.Forced || r.Epoch != 1) {
				t.Fatalf("forced promotion recorded as %+v", r)
			}
			if _, err := p.Promote(context.Background(), tt.req); r.Role == checkpoint.RoleMaster && !errors.Is(err, ErrRefused) {
				t.Fatalf("a second promotion: %v, want refused", err)
			}
		})
	}
}

// TestPromoteResumesAfterAFailedStep: a step that fails leaves the role
// promoting at the last step done; Resume goes on from there (never back).
func TestPromoteResumesAfterAFailedStep(t *testing.T) {
	for _, step := range []string{"stop", "drain", "writable"} { // (a failed fence aborts: TestPromoteAbortsBesideAnUnfencedMaster)
		t.Run(step, func(t *testing.T) {
			f := &fakes{lossless: true, failAt: step}
			p := newPromoter(t, f)
			if _, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"}); err == nil {
				t.Fatal("the failing step did not fail the promotion")
			}
			if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RolePromoting {
				t.Fatalf("role after the failure: %+v", r)
			}
			f.calls = nil
			if _, err := p.Resume(context.Background()); err != nil {
				t.Fatal(err)
			}
			if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster || r.Epoch != 1 {
				t.Fatalf("role after the resume: %+v", r)
			}
			if f.calls[0] != step {
				t.Fatalf("resume started with %v, want the failed step %s again", f.calls, step)
			}
		})
	}
}

func TestProofGate(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		proof  *checkpoint.SemiSyncProof
		breach *checkpoint.SemiSyncBreach
		heard  time.Time
		now    time.Time
		want   bool
		why    string
	}{
		{name: "never proven", now: t0, why: "never proven"},
		{name: "fresh proof", proof: &checkpoint.SemiSyncProof{At: t0, Timeout: 10 * time.Second}, heard: t0.Add(time.Second), now: t0.Add(2 * time.Second), want: true},
		{name: "breach after the proof", proof: &checkpoint.SemiSyncProof{At: t0, Timeout: 10 * time.Second},
			breach: &checkpoint.SemiSyncBreach{At: t0.Add(time.Second), Reason: "master fell back to async: 37 commits without ACK"},
			heard:  t0.Add(2 * time.Second), now: t0.Add(3 * time.Second), why: "37 commits without ACK"},
		{name: "proof too old for the last word", proof: &checkpoint.SemiSyncProof{At: t0, Timeout: 10 * time.Second}, heard: t0.Add(11 * time.Second), now: t0.Add(12 * time.Second), why: "older than the last word"},
		{name: "decided too late", proof: &checkpoint.SemiSyncProof{At: t0, Timeout: 10 * time.Second}, heard: t0.Add(time.Second), now: t0.Add(12 * time.Second), why: "last heard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := checkpoint.Open(filepath.Join(t.TempDir(), "c.db"), false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tt.proof != nil {
				s.SaveSemiSyncProof(*tt.proof)
			}
			if tt.breach != nil {
				s.SaveSemiSyncBreach(*tt.breach)
			}
			g := ProofGate{Store: s, LastHeard: func() time.Time { return tt.heard }, Now: func() time.Time { return tt.now }}
			ok, why := g.Lossless()
			if ok != tt.want || !strings.Contains(why, tt.why) {
				t.Fatalf("Lossless = %v %q, want %v %q", ok, why, tt.want, tt.why)
			}
		})
	}
}

// TestPromoteHookResultsTyped: a post_promote hook that fails does not undo
// the promotion; the caller gets its result typed (its error, its exit
// code), and the audit log its summary.
func TestPromoteHookResultsTyped(t *testing.T) {
	f := &fakes{lossless: true, failAt: "post"}
	p := newPromoter(t, f)
	res, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hooks) != 1 || res.Hooks[0].OK() || res.Hooks[0].ExitCode != 1 || res.Hooks[0].Name != HookPostPromote {
		t.Fatalf("hooks %+v; want the failed post_promote", res.Hooks)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster {
		t.Fatalf("role %s after a failed post_promote; want master", r.Role)
	}
	entries, err := p.Store.AuditLog()
	if err != nil {
		t.Fatal(err)
	}
	var audit []string
	for _, e := range entries {
		audit = append(audit, e.Text)
	}
	if got := strings.Join(audit, "\n"); !strings.Contains(got, "post_promote [move-vip] exit 1") || !strings.Contains(got, "no such device") {
		t.Fatalf("audit log:\n%s\nwant the hook's summary", got)
	}
}

// TestHookResultAsError: the veto of a pre_promote hook keeps the cause
// (errors.Is ErrHookTimeout) behind its one-line summary.
func TestHookResultAsError(t *testing.T) {
	if err := (HookResult{Name: HookPrePromote, Argv: []string{"check"}}).AsError(); err != nil {
		t.Fatalf("AsError of a hook that exited 0: %v", err)
	}
	r := HookResult{Name: HookPrePromote, Argv: []string{"check"}, ExitCode: -1, Err: fmt.Errorf("%w after 5s", ErrHookTimeout)}
	err := r.AsError()
	if !errors.Is(err, ErrHookTimeout) || err.Error() != r.Summary() {
		t.Fatalf("AsError = %v; want the summary %q unwrapping to ErrHookTimeout", err, r.Summary())
	}
	if (HookResult{}).Ran() {
		t.Fatal("the zero HookResult says a hook ran")
	}
}
