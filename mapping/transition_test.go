package mapping

import (
	"reflect"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func cc(system, code string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code, "")}}
}

func TestTransitionFinishClosesPhaseAndStoresReason(t *testing.T) {
	eoc := managedCase("active", PhaseEvaluation)
	res, err := Transition(ctx, eoc, TransitionParams{Status: "finished", Reason: cc(SystemClosureReason, "goals-met")}, readyReader(), t1)
	wantRules(t, err)
	got := res.Episode
	if Status(got) != "finished" || Phase(got) != PhaseClosed || !res.Changed {
		t.Fatalf("status %s phase %s", Status(got), Phase(got))
	}
	if !hasCoding(ClosureReason(got), SystemClosureReason, "goals-met") {
		t.Fatalf("closure reason %v", ClosureReason(got))
	}
	if str(obj(got, "period"), "end") != formatTime(t1) {
		t.Fatal("period.end not set")
	}
	hs := objs(got, "statusHistory")
	if len(hs) != 2 || extension(hs[1], ExtStatusReason) != nil {
		t.Fatalf("statusHistory %s", mustJSON(t, hs))
	}
	if Status(eoc) != "active" {
		t.Fatal("input modified")
	}
}

func TestTransitionHoldReasonOnHistory(t *testing.T) {
	eoc := managedCase("active", PhaseMonitoring)
	_, err := Transition(ctx, eoc, TransitionParams{Status: "onhold"}, newReader(), t1)
	wantRules(t, err, RuleGHold)
	res, err := Transition(ctx, eoc, TransitionParams{Status: "onhold", Reason: map[string]any{"text": "respite care"}}, newReader(), t1)
	wantRules(t, err)
	hs := objs(res.Episode, "statusHistory")
	last := hs[len(hs)-1]
	if str(last, "status") != "onhold" || str(obj(extension(last, ExtStatusReason), "valueCodeableConcept"), "text") != "respite care" {
		t.Fatalf("last entry %s", mustJSON(t, last))
	}
	if ClosureReason(res.Episode) != nil {
		t.Fatal("hold reason stored as closure reason")
	}
	// a reason without a status change is malformed
	_, err = Transition(ctx, eoc, TransitionParams{Phase: PhaseEvaluation, Reason: map[string]any{"text": "x"}}, newReader(), t1)
	wantCode(t, err, outcome.Invalid)
}

func TestTransitionCascade(t *testing.T) {
	eoc := managedCase("active", PhaseEvaluation)
	r := readyReader()
	r.link("c1",
		res("CarePlan", "cp2", "active"), res("CarePlan", "cp3", "draft"), res("CarePlan", "cp4", "revoked"),
		res("Task", "tk2", "in-progress"), res("Task", "tk3", "cancelled"))
	p := TransitionParams{Status: "finished", Reason: cc(SystemClosureReason, "transferred")}
	_, err := Transition(ctx, eoc, p, r, t1)
	wantRules(t, err, RuleGFin)
	d := detailOf(err, RuleGFin)
	for _, ref := range []string{"CarePlan/cp2", "CarePlan/cp3", "Task/tk2"} {
		if !strings.Contains(d, ref) {
			t.Errorf("detail %q lacks %s", d, ref)
		}
	}
	for _, ref := range []string{"cp4", "tk3", "cp1", "tk1"} {
		if strings.Contains(d, ref) {
			t.Errorf("detail %q names closed %s", d, ref)
		}
	}

	p.Cascade = true
	out, err := Transition(ctx, eoc, p, r, t1)
	wantRules(t, err)
	if len(out.CarePlans) != 2 || len(out.Tasks) != 1 {
		t.Fatalf("cascaded %d plans %d tasks", len(out.CarePlans), len(out.Tasks))
	}
	for _, cp := range out.CarePlans {
		if Status(cp) != "revoked" {
			t.Errorf("%s status %s", Key(cp), Status(cp))
		}
	}
	if tk := out.Tasks[0]; Status(tk) != "cancelled" || str(tk, "lastModified") != formatTime(t1) || !present(tk, "statusReason") {
		t.Errorf("task %s", mustJSON(t, tk))
	}
	if Status(r.linked["c1"]["CarePlan"][1]) != "active" {
		t.Fatal("reader's resources modified")
	}
	// Cascade does not excuse the other parts of a guard.
	r2 := newReader()
	r2.link("c1", res("Task", "tk2", "in-progress"))
	_, err = Transition(ctx, eoc, p, r2, t1)
	wantRules(t, err, RuleGFin)

	// Cancel and hold cascade too.
	out, err = Transition(ctx, eoc, TransitionParams{Status: "cancelled", Reason: cc(SystemClosureReason, "moved"), Cascade: true}, r, t1)
	wantRules(t, err)
	if len(out.CarePlans) != 2 || len(out.Tasks) != 1 || Phase(out.Episode) != PhaseClosed {
		t.Fatal("cancel cascade")
	}
	out, err = Transition(ctx, eoc, TransitionParams{Status: "onhold", Reason: map[string]any{"text": "x"}, Cascade: true}, r, t1)
	wantRules(t, err)
	if len(out.CarePlans) != 2 || len(out.Tasks) != 1 || Phase(out.Episode) != PhaseEvaluation {
		t.Fatal("hold cascade")
	}
	// Without open work cascade changes nothing else.
	out, err = Transition(ctx, eoc, TransitionParams{Status: "finished", Reason: cc(SystemClosureReason, "moved"), Cascade: true}, readyReader(), t1)
	wantRules(t, err)
	if len(out.CarePlans)+len(out.Tasks) != 0 {
		t.Fatal("cascaded closed work")
	}
}

func TestTransitionDryRun(t *testing.T) {
	eoc := managedCase("active", PhaseMonitoring)
	p := TransitionParams{Phase: PhaseEvaluation, DryRun: true}
	res, err := Transition(ctx, eoc, p, newReader(), t1)
	wantRules(t, err)
	p.DryRun = false
	res2, _ := Transition(ctx, eoc, p, newReader(), t1)
	if !res.DryRun || res2.DryRun || !reflect.DeepEqual(res.Episode, res2.Episode) {
		t.Fatal("dry run answers differently")
	}
	// and refuses the same way
	_, err = Transition(ctx, eoc, TransitionParams{Phase: PhaseScreening, DryRun: true}, newReader(), t1)
	wantRules(t, err, RulePhaseOrder, RulePhaseStatus)
}

func TestTransitionPhaseOnly(t *testing.T) {
	eoc := managedCase("planned", PhaseScreening)
	res, err := Transition(ctx, eoc, TransitionParams{Phase: PhaseAssessment}, nil, t1)
	wantRules(t, err)
	if Phase(res.Episode) != PhaseAssessment || len(objs(res.Episode, "statusHistory")) != 1 || len(PhaseHistoryOf(res.Episode)) != 2 {
		t.Fatal("phase change")
	}
	// Status and phase together.
	res, err = Transition(ctx, res.Episode, TransitionParams{Status: "active", Phase: PhaseImplementation}, nil, t1)
	wantRules(t, err)
	if Status(res.Episode) != "active" || Phase(res.Episode) != PhaseImplementation {
		t.Fatal("combined change")
	}
	// Same status and phase: nothing to write.
	res, err = Transition(ctx, res.Episode, TransitionParams{Status: "active"}, nil, t1)
	wantRules(t, err)
	if res.Changed {
		t.Fatal("no-op reported as a change")
	}
}

func TestTransitionEnteredInErrorKeepsPhase(t *testing.T) {
	eoc := managedCase("finished", PhaseClosed)
	res, err := Transition(ctx, eoc, TransitionParams{Status: "entered-in-error"}, nil, t1)
	wantRules(t, err)
	if Phase(res.Episode) != PhaseClosed {
		t.Fatal("phase changed")
	}
	eoc = managedCase("planned", PhaseAssessment)
	res, err = Transition(ctx, eoc, TransitionParams{Status: "entered-in-error"}, nil, t1)
	wantRules(t, err)
	if Phase(res.Episode) != PhaseAssessment {
		t.Fatal("phase changed")
	}
}

func TestTransitionInputs(t *testing.T) {
	eoc := managedCase("planned", PhaseScreening)
	_, err := Transition(ctx, eoc, TransitionParams{}, nil, t1)
	wantCode(t, err, outcome.Invalid)
	_, err = Transition(ctx, eoc, TransitionParams{Status: "done"}, nil, t1)
	wantCode(t, err, outcome.Invalid)
	_, err = Transition(ctx, eoc, TransitionParams{Phase: "later"}, nil, t1)
	wantCode(t, err, outcome.Invalid)
	// effective before the current status began
	_, err = Transition(ctx, eoc, TransitionParams{Status: "waitlist", Effective: t0.Add(-1)}, nil, t1)
	wantCode(t, err, outcome.Invalid)
	// effective is the time of the change
	res, err := Transition(ctx, eoc, TransitionParams{Status: "waitlist", Effective: t0.Add(3600e9)}, nil, t1)
	wantRules(t, err)
	if hs := objs(res.Episode, "statusHistory"); str(obj(hs[1], "period"), "start") != "2025-03-01T10:00:00.000Z" {
		t.Fatalf("history %s", mustJSON(t, hs))
	}
	// unmanaged: needs a phase
	plain := managedCase("planned", PhaseScreening)
	removeExtensions(plain, ExtPhase)
	removeExtensions(plain, ExtPhaseHistory)
	_, err = Transition(ctx, plain, TransitionParams{Status: "waitlist"}, nil, t1)
	wantRules(t, err, RuleManaged)
	res, err = Transition(ctx, plain, TransitionParams{Status: "waitlist", Phase: PhaseScreening}, nil, t1)
	wantRules(t, err)
	if !IsManaged(res.Episode) {
		t.Fatal("not managed")
	}
}
