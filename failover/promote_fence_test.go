package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/checkpoint"
)

// Isolations a fencer may report.
var (
	isoAnsweredNotFenced = &FenceResult{Addr: "10.0.0.1:3306", Reachable: true, session: true,
		Err: fmt.Errorf("%w: the fence user lacks READ_ONLY ADMIN", ErrFenceFailed)}
	isoRefusedLogin = &FenceResult{Addr: "10.0.0.1:3306", Reachable: true,
		Err: fmt.Errorf("%w: connect: Error 1045: Access denied", ErrFenceFailed)}
	isoFenced      = &FenceResult{Addr: "10.0.0.1:3306", Reachable: true, session: true, ReadOnly: true, Killed: 2}
	isoUnreachable = &FenceResult{Addr: "10.0.0.1:3306", DialErr: errors.New("connect: connection refused")}
	isoBadDSN      = &FenceResult{Err: errors.New("failover: fence: old master DSN: invalid")}
	stonithOK      = &HookResult{Name: HookStonith, Argv: []string{"shoot"}}
	stonithFailed  = &HookResult{Name: HookStonith, Argv: []string{"shoot"}, ExitCode: 1, Err: fmt.Errorf("%w: exit status 1", ErrHookFailed)}
)

func TestIsolationIsolated(t *testing.T) {
	tests := []struct {
		name string
		iso  Isolation
		ok   bool
		why  string
	}{
		{"nothing configured", Isolation{}, true, ""},
		{"fenced", Isolation{SQL: isoFenced}, true, ""},
		{"unreachable", Isolation{SQL: isoUnreachable}, true, ""},
		{"answered, not fenced", Isolation{SQL: isoAnsweredNotFenced}, false, "answered and is not fenced"},
		{"refused the fence's login", Isolation{SQL: isoRefusedLogin}, false, "answered and is not fenced"},
		{"answered, not fenced, stonith ok", Isolation{SQL: isoAnsweredNotFenced, Stonith: stonithOK}, true, ""},
		{"answered, not fenced, stonith failed", Isolation{SQL: isoAnsweredNotFenced, Stonith: stonithFailed}, false, "stonith failed"},
		{"fence not attempted", Isolation{SQL: isoBadDSN}, false, "could not be fenced"},
		{"stonith only, failed", Isolation{Stonith: stonithFailed}, false, "SQL fence is off"},
		{"stonith only, ok", Isolation{Stonith: stonithOK}, true, ""},
		{"unreachable, stonith failed", Isolation{SQL: isoUnreachable, Stonith: stonithFailed}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := tt.iso.Isolated()
			if ok != tt.ok || !strings.Contains(why, tt.why) || (ok && why != "") {
				t.Fatalf("Isolated = %v %q, want %v %q", ok, why, tt.ok, tt.why)
			}
		})
	}
}

func auditText(t *testing.T, p *Promoter) string {
	t.Helper()
	log, err := p.Store.AuditLog()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range log {
		fmt.Fprintf(&b, "%s: %s\n", e.Kind, e.Text)
	}
	return b.String()
}

// TestPromoteAbortsBesideAnUnfencedMaster: the old master answers and the
// fence fails, with no stonith that worked: the promotion is aborted before
// the stream stops (the fence is the first step), the alert hook runs, the
// audit log says why, the role is the standby of epoch 0 again, and the
// next promotion can start. --force goes past it, and the audit log says
// so.
func TestPromoteAbortsBesideAnUnfencedMaster(t *testing.T) {
	f := &fakes{lossless: true, iso: Isolation{SQL: isoAnsweredNotFenced}}
	p := newPromoter(t, f)
	_, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"})
	if !errors.Is(err, ErrAborted) || !strings.Contains(err.Error(), "READ_ONLY ADMIN") {
		t.Fatalf("Promote = %v, want aborted with the fence's reason", err)
	}
	if got := strings.Join(f.calls, " "); got != "pre fence alert" {
		t.Fatalf("calls %q: want the fence first, then the alert, and nothing else", got)
	}
	r, _ := p.Store.LoadRole()
	if r.Role != checkpoint.RoleStandby || r.Epoch != 0 || !strings.Contains(r.Aborted, "not fenced") {
		t.Fatalf("role after the abort: %+v", r)
	}
	if a := auditText(t, p); !strings.Contains(a, "promotion-aborted: promotion to epoch 1 aborted: the old master answered and is not fenced") {
		t.Fatalf("audit log:\n%s", a)
	}
	// Stonith that works isolates it: the next attempt promotes.
	f.calls, f.iso.Stonith = nil, stonithOK
	if _, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, " "); got != "pre fence stop drain writable post" {
		t.Fatalf("calls %q", got)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster || r.Epoch != 1 || !strings.Contains(r.Fence, "stonith") {
		t.Fatalf("role after the promotion: %+v", r)
	}

	// --force goes past an unfenced old master, recorded.
	f = &fakes{lossless: true, iso: Isolation{SQL: isoAnsweredNotFenced}}
	p = newPromoter(t, f)
	res, err := p.Promote(context.Background(), Request{Reason: "operator request", By: "uid 0", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Fence, "NOT FENCED") {
		t.Fatalf("result's fence %q: want it to say the old master is not fenced", res.Fence)
	}
	if a := auditText(t, p); !strings.Contains(a, "FORCED past an old master that is not fenced") {
		t.Fatalf("audit log:\n%s\nwant the override", a)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster || r.Forced || !r.ForceAsked {
		t.Fatalf("role %+v: the gate did not need forcing, the fence did", r)
	}
}

// TestResumeAtEveryStep: a promotion stored at each step, of today's order
// and of the older one (drain before fence), resumes with exactly the steps
// still to do: an older record's fence is never skipped, the stream is
// stopped only before the drain, and a resume past the point where the
// standby was made writable makes it writable again.
func TestResumeAtEveryStep(t *testing.T) {
	tests := []struct{ step, calls string }{
		{checkpoint.StepStarted, "fence stop drain writable post"},
		{checkpoint.StepIsolated, "stop drain writable post"},
		{checkpoint.StepStreamStopped, "drain writable post"},
		{checkpoint.StepApplied, "writable post"},
		{checkpoint.StepWritable, "writable post"},
		{checkpoint.StepStreamEnd, "fence drain writable post"},
		{checkpoint.StepDrained, "fence writable post"},
		{checkpoint.StepFenced, "writable post"},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			f := &fakes{lossless: true, iso: Isolation{SQL: isoFenced}}
			p := newPromoter(t, f)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(p.Store.SaveRole(checkpoint.Role{Role: checkpoint.RolePromoting, Epoch: 1, Step: checkpoint.StepStarted, By: "detector"}))
			must(p.Store.SaveRole(checkpoint.Role{Role: checkpoint.RolePromoting, Epoch: 1, Step: tt.step, By: "detector"}))
			if _, err := p.Resume(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(f.calls, " "); got != tt.calls {
				t.Fatalf("resume at %s: calls %q, want %q", tt.step, got, tt.calls)
			}
			if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster || r.Epoch != 1 {
				t.Fatalf("role after the resume: %+v", r)
			}
		})
	}
}

// TestResumeOfAnOlderRecordBesideAnUnfencedMaster: a promotion an older
// version stored after its drain (the stream stopped for good, nothing
// fenced) meets an old master that answers and cannot be fenced: it is not
// made writable; it waits at its step with the reason (alerted), and an
// operator's --force resumes it past the fence, recorded.
func TestResumeOfAnOlderRecordBesideAnUnfencedMaster(t *testing.T) {
	f := &fakes{lossless: true, iso: Isolation{SQL: isoAnsweredNotFenced}}
	p := newPromoter(t, f)
	for _, step := range []string{checkpoint.StepStarted, checkpoint.StepStreamEnd, checkpoint.StepDrained} {
		if err := p.Store.SaveRole(checkpoint.Role{Role: checkpoint.RolePromoting, Epoch: 1, Step: step, By: "detector"}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := p.Resume(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not fenced") {
		t.Fatalf("Resume = %v, want it stopped by the fence", err)
	}
	if got := strings.Join(f.calls, " "); got != "fence alert" {
		t.Fatalf("calls %q", got)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RolePromoting || r.Step != checkpoint.StepDrained {
		t.Fatalf("role %+v: want it waiting at its step", r)
	}
	f.calls = nil
	if _, err := p.ResumeRequest(context.Background(), Request{By: "uid 0", Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.calls, " "); got != "fence writable post" {
		t.Fatalf("calls %q", got)
	}
	if a := auditText(t, p); !strings.Contains(a, "FORCED past an old master that is not fenced") {
		t.Fatalf("audit log:\n%s", a)
	}
}

// flipGate is lossless until pre_promote has run.
type flipGate struct{ f *fakes }

func (g flipGate) Lossless() (bool, string) {
	for _, c := range g.f.calls {
		if c == "pre" {
			return false, "the master was last heard 11s ago, longer than its 10s semi-sync timeout"
		}
	}
	return true, ""
}

// TestPromoteRechecksTheGateAfterPrePromote: a pre_promote hook that takes
// long enough for the gate to stop holding: the decision is not recorded,
// nothing is changed, the alert runs; --force still promotes, recorded as
// forced.
func TestPromoteRechecksTheGateAfterPrePromote(t *testing.T) {
	f := &fakes{}
	p := newPromoter(t, f)
	p.Gate = flipGate{f}
	_, err := p.Promote(context.Background(), Request{Reason: "dead", By: "detector"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "after pre_promote") {
		t.Fatalf("Promote = %v, want refused after pre_promote", err)
	}
	if got := strings.Join(f.calls, " "); got != "pre alert" {
		t.Fatalf("calls %q", got)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleStandby || r.Epoch != 0 {
		t.Fatalf("role %+v", r)
	}
	f.calls = nil
	if _, err := p.Promote(context.Background(), Request{Reason: "operator", By: "uid 0", Force: true}); err != nil {
		t.Fatal(err)
	}
	if r, _ := p.Store.LoadRole(); r.Role != checkpoint.RoleMaster || !r.Forced {
		t.Fatalf("role %+v, want promoted and recorded as forced", r)
	}
}
