package mapping

import (
	"cmp"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// contractTransitions is the transition table of case-model.md section 3,
// written out independently of the implementation's table: from ("" for
// create) -> to -> guard ("-" none). Missing cells are refused.
var contractTransitions = map[string]map[string]string{
	"":                 {"planned": "-", "waitlist": "-", "active": "G-ACT"},
	"planned":          {"waitlist": "-", "active": "G-ACT", "onhold": "-", "cancelled": "G-CAN", "entered-in-error": "-"},
	"waitlist":         {"planned": "-", "active": "G-ACT", "onhold": "-", "cancelled": "G-CAN", "entered-in-error": "-"},
	"active":           {"onhold": "G-HOLD", "finished": "G-FIN", "cancelled": "G-CAN", "entered-in-error": "-"},
	"onhold":           {"active": "G-ACT", "finished": "G-FIN", "cancelled": "G-CAN", "entered-in-error": "-"},
	"finished":         {"entered-in-error": "-"},
	"cancelled":        {"entered-in-error": "-"},
	"entered-in-error": {},
}

var allStatuses = []string{"planned", "waitlist", "active", "onhold", "finished", "cancelled", "entered-in-error"}

func TestTransitionAllowedTable(t *testing.T) {
	for from, row := range contractTransitions {
		for _, to := range allStatuses {
			want, inTable := row[to]
			ok, guard := TransitionAllowed(from, to)
			if ok != inTable {
				t.Errorf("%q -> %s: allowed %v, want %v", from, to, ok, inTable)
				continue
			}
			if ok && (want == "-") != (guard == "") || ok && want != "-" && string(guard) != want {
				t.Errorf("%q -> %s: guard %q, want %q", from, to, guard, want)
			}
		}
	}
}

// phaseFor picks a phase that agrees with status, moving forward from prev
// when needed.
func phaseFor(prev, status string) string {
	if status == StatusEnteredInError {
		return cmp.Or(prev, PhaseScreening)
	}
	if prev != "" && PhaseStatusAgree(prev, status) {
		return prev
	}
	start := 0
	if prev != "" {
		start = phaseIndex(prev)
	}
	for _, p := range phases[start:] {
		if PhaseStatusAgree(p, status) {
			return p
		}
	}
	return PhaseClosed
}

var statusPhase = map[string]string{
	"planned": "assessment", "waitlist": "assessment", "active": "implementation", "onhold": "monitoring",
	"finished": "closed", "cancelled": "closed", "entered-in-error": "planning",
}

// readyReader has what every guard needs: a completed outcome evaluation,
// only closed CarePlans and Tasks.
func readyReader() *fakeReader {
	r := newReader()
	r.link("c1", outcomeEvaluation("ci1", "completed"), res("CarePlan", "cp1", "completed"), res("Task", "tk1", "completed"))
	return r
}

// TestEveryTransitionCell runs every cell of the table through
// CheckEpisodeWrite with all guards satisfied: allowed cells pass, the
// others break rule transition.
func TestEveryTransitionCell(t *testing.T) {
	for from, row := range contractTransitions {
		for _, to := range allStatuses {
			name := from + "->" + to
			if from == "" {
				name = "create->" + to
			}
			t.Run(name, func(t *testing.T) {
				var prev map[string]any
				prevPhase := ""
				if from != "" {
					prevPhase = statusPhase[from]
					prev = managedCase(from, prevPhase)
				}
				next := withUpdate(managedCase(to, "screening"), to, phaseFor(prevPhase, to))
				if prev == nil {
					delete(next, "id")
				}
				setStatusReason(next, "respite care")
				setClosureReason(next, "goals-met")
				got, err := CheckEpisodeWrite(ctx, prev, next, readyReader(), t1)
				if _, ok := row[to]; ok || from == to {
					wantRules(t, err)
					if Status(got) != to {
						t.Fatalf("status %s", Status(got))
					}
					return
				}
				if err == nil {
					t.Fatal("refused transition accepted")
				}
				if !slices.Contains(Rules(err), RuleTransition) {
					t.Fatalf("rules %v, want transition\n%s", Rules(err), issuesText(err))
				}
				if d := detailOf(err, RuleTransition); !strings.Contains(d, to) {
					t.Errorf("detail %q does not name the target status", d)
				}
			})
		}
	}
}

func TestSameStatusIsNoTransition(t *testing.T) {
	for _, st := range allStatuses {
		prev := managedCase(st, statusPhase[st])
		next := Clone(prev)
		next["note"] = "edited"
		got, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
		wantRules(t, err)
		if !reflect.DeepEqual(got["statusHistory"], prev["statusHistory"]) {
			t.Errorf("%s: history changed without a status change", st)
		}
	}
}

func TestGuardAct(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		want   string
	}{
		{"careManager", func(m map[string]any) { delete(m, "careManager") }, "careManager"},
		{"no category", func(m map[string]any) { m["type"] = []any{} }, "exactly one"},
		{"two categories", func(m map[string]any) {
			m["type"] = []any{map[string]any{"coding": []any{coding(SystemCategory, "acute", ""), coding(SystemCategory, "long-term", "")}}}
		}, "exactly one"},
		{"managingOrganization", func(m map[string]any) { delete(m, "managingOrganization") }, "managingOrganization"},
		{"period.start", func(m map[string]any) { delete(m, "period") }, "period.start"},
		{"team", func(m map[string]any) { delete(m, "team") }, "CareTeam"},
	}
	for _, c := range cases {
		for _, from := range []string{"planned", "waitlist", "onhold", ""} {
			t.Run(c.name+"/"+from, func(t *testing.T) {
				var prev map[string]any
				phase := PhaseImplementation
				if from != "" {
					prev = managedCase(from, statusPhase[from])
					phase = phaseFor(statusPhase[from], "active")
				}
				next := withUpdate(managedCase("active", phase), "active", phase)
				c.mutate(next)
				_, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
				wantRules(t, err, RuleGAct)
				if d := detailOf(err, RuleGAct); !strings.Contains(d, c.want) {
					t.Errorf("detail %q, want mention of %q", d, c.want)
				}
			})
		}
	}
	// All missing at once: still one issue naming each.
	next := withUpdate(managedCase("active", "planning"), "active", "planning")
	for _, k := range []string{"careManager", "managingOrganization", "team", "period", "type"} {
		delete(next, k)
	}
	_, err := CheckEpisodeWrite(ctx, managedCase("planned", "planning"), next, newReader(), t1)
	wantRules(t, err, RuleGAct)
}

func TestGuardHold(t *testing.T) {
	prev := managedCase("active", PhaseMonitoring)
	next := withUpdate(prev, "onhold", PhaseMonitoring)
	_, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err, RuleGHold)

	setStatusReason(next, "in hospital")
	got, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err)
	hs := objs(got, "statusHistory")
	if len(hs) != 2 || str(obj(extension(hs[1], ExtStatusReason), "valueCodeableConcept"), "text") != "in hospital" {
		t.Fatalf("reason not kept on the new history entry: %s", mustJSON(t, hs))
	}

	// Pausing with open work is refused, naming each open resource.
	r := newReader()
	r.link("c1", res("CarePlan", "cp1", "active"), res("CarePlan", "cp2", "revoked"), res("Task", "tk1", "in-progress"))
	_, err = CheckEpisodeWrite(ctx, prev, next, r, t1)
	wantRules(t, err, RuleGHold)
	d := detailOf(err, RuleGHold)
	if !strings.Contains(d, "CarePlan/cp1") || !strings.Contains(d, "Task/tk1") || strings.Contains(d, "cp2") {
		t.Errorf("detail %q", d)
	}
	// From planned no reason is needed, but open work still blocks.
	prev = managedCase("planned", PhaseRiskAssessment)
	next = withUpdate(prev, "onhold", PhaseRiskAssessment)
	_, err = CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err)
	_, err = CheckEpisodeWrite(ctx, prev, next, r, t1)
	wantRules(t, err, RuleGHold)
}

func TestGuardFinish(t *testing.T) {
	prev := managedCase("active", PhaseEvaluation)
	ready := func() map[string]any {
		n := withUpdate(prev, "finished", PhaseClosed)
		setClosureReason(n, "goals-met")
		return n
	}
	// satisfied: period.end is set to the transition time
	got, err := CheckEpisodeWrite(ctx, prev, ready(), readyReader(), t1)
	wantRules(t, err)
	if e := str(obj(got, "period"), "end"); e != formatTime(t1) {
		t.Errorf("period.end %q", e)
	}
	// a client period.end is kept
	n := ready()
	obj(n, "period")["end"] = "2025-03-02"
	got, _ = CheckEpisodeWrite(ctx, prev, n, readyReader(), t1)
	if e := str(obj(got, "period"), "end"); e != "2025-03-02" {
		t.Errorf("period.end %q", e)
	}

	for _, c := range []struct {
		name string
		r    func() *fakeReader
		next func() map[string]any
	}{
		{"no evaluation", func() *fakeReader { return newReader() }, ready},
		{"evaluation in progress", func() *fakeReader {
			r := newReader()
			r.link("c1", outcomeEvaluation("ci1", "in-progress"))
			return r
		}, ready},
		{"evaluation of other kind", func() *fakeReader {
			r := newReader()
			ci := outcomeEvaluation("ci1", "completed")
			ci["code"] = map[string]any{"text": "something else"}
			r.link("c1", ci)
			return r
		}, ready},
		{"draft careplan", func() *fakeReader {
			r := readyReader()
			r.link("c1", res("CarePlan", "cp9", "draft"))
			return r
		}, ready},
		{"on-hold careplan", func() *fakeReader {
			r := readyReader()
			r.link("c1", res("CarePlan", "cp9", "on-hold"))
			return r
		}, ready},
		{"open task", func() *fakeReader {
			r := readyReader()
			r.link("c1", res("Task", "tk9", "requested"))
			return r
		}, ready},
		{"no closure reason", readyReader, func() map[string]any { return withUpdate(prev, "finished", PhaseClosed) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := CheckEpisodeWrite(ctx, prev, c.next(), c.r(), t1)
			wantRules(t, err, RuleGFin)
		})
	}
	// Everything wrong: one issue per unmet part, all G-FIN.
	r := newReader()
	r.link("c1", res("CarePlan", "cp9", "active"))
	_, err = CheckEpisodeWrite(ctx, prev, withUpdate(prev, "finished", PhaseClosed), r, t1)
	wantRules(t, err, RuleGFin, RuleGFin, RuleGFin)
}

func TestGuardCancel(t *testing.T) {
	for _, from := range []string{"planned", "waitlist", "active", "onhold"} {
		prev := managedCase(from, statusPhase[from])
		next := withUpdate(prev, "cancelled", PhaseClosed)
		_, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
		wantRules(t, err, RuleGCan)
		setClosureReason(next, "declined")
		_, err = CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
		wantRules(t, err)
		r := newReader()
		r.link("c1", res("Task", "tk1", "ready"))
		_, err = CheckEpisodeWrite(ctx, prev, next, r, t1)
		wantRules(t, err, RuleGCan)
	}
}

func TestAutoClosedPhase(t *testing.T) {
	// A write moving to finished/cancelled that keeps the phase closes it.
	prev := managedCase("planned", PhaseScreening)
	next := withUpdate(prev, "cancelled", PhaseScreening)
	setClosureReason(next, "ineligible")
	got, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err)
	if Phase(got) != PhaseClosed {
		t.Fatalf("phase %s", Phase(got))
	}
	ph := PhaseHistoryOf(got)
	if len(ph) != 2 || ph[0].End != formatTime(t1) || ph[1].Phase != PhaseClosed || ph[1].End != "" {
		t.Fatalf("phase history %+v", ph)
	}
}

func TestPhaseOrder(t *testing.T) {
	forward := [][2]string{{"screening", "assessment"}, {"screening", "planning"}, {"assessment", "evaluation"}, {"risk-assessment", "monitoring"}}
	back := [][2]string{{"planning", "risk-assessment"}, {"monitoring", "planning"}, {"evaluation", "monitoring"},
		{"evaluation", "risk-assessment"}, {"implementation", "planning"}, {"monitoring", "implementation"}}
	refused := [][2]string{{"assessment", "screening"}, {"risk-assessment", "assessment"}, {"planning", "screening"},
		{"implementation", "assessment"}, {"evaluation", "screening"}, {"closed", "evaluation"}, {"closed", "screening"},
		{"screening", "nonsense"}}
	for _, p := range append(forward, back...) {
		if !PhaseMoveAllowed(p[0], p[1]) {
			t.Errorf("%s -> %s refused", p[0], p[1])
		}
	}
	for _, p := range refused {
		if PhaseMoveAllowed(p[0], p[1]) {
			t.Errorf("%s -> %s allowed", p[0], p[1])
		}
	}
	// Exhaustive: back moves allowed exactly within the loop.
	loopFrom := []string{"planning", "implementation", "monitoring", "evaluation"}
	loopTo := []string{"risk-assessment", "planning", "implementation", "monitoring"}
	for i, a := range phases {
		for j, b := range phases {
			want := i == j || (a != "closed" && j > i) || (j < i && slices.Contains(loopFrom, a) && slices.Contains(loopTo, b))
			if got := PhaseMoveAllowed(a, b); got != want {
				t.Errorf("PhaseMoveAllowed(%s, %s) = %v", a, b, got)
			}
		}
	}
	// Through CheckEpisodeWrite: back within the loop passes, out of it breaks phase-order.
	prev := managedCase("active", PhaseMonitoring)
	_, err := CheckEpisodeWrite(ctx, prev, withUpdate(prev, "active", PhasePlanning), newReader(), t1)
	wantRules(t, err)
	prev = managedCase("planned", PhasePlanning)
	_, err = CheckEpisodeWrite(ctx, prev, withUpdate(prev, "planned", PhaseAssessment), newReader(), t1)
	wantRules(t, err, RulePhaseOrder)
	// nothing leaves closed
	prev = managedCase("finished", PhaseClosed)
	_, err = CheckEpisodeWrite(ctx, prev, withUpdate(prev, "finished", PhaseEvaluation), newReader(), t1)
	wantRules(t, err, RulePhaseOrder, RulePhaseStatus)
}

func TestPhaseStatusTable(t *testing.T) {
	want := map[string][]string{
		"screening":       {"planned", "waitlist", "cancelled"},
		"assessment":      {"planned", "waitlist"},
		"risk-assessment": {"planned", "active", "onhold"},
		"planning":        {"planned", "active"},
		"implementation":  {"active"},
		"monitoring":      {"active", "onhold"},
		"evaluation":      {"active", "onhold"},
		"closed":          {"finished", "cancelled"},
	}
	for phase, sts := range want {
		for _, st := range allStatuses {
			w := slices.Contains(sts, st) || st == "entered-in-error"
			if got := PhaseStatusAgree(phase, st); got != w {
				t.Errorf("PhaseStatusAgree(%s, %s) = %v", phase, st, got)
			}
		}
	}
	// create with a disagreeing pair
	next := withUpdate(managedCase("planned", "x"), "planned", PhaseImplementation)
	_, err := CheckEpisodeWrite(ctx, nil, next, newReader(), t1)
	wantRules(t, err, RulePhaseStatus)
	// update: implementation while on hold
	prev := managedCase("active", PhaseImplementation)
	next = withUpdate(prev, "onhold", PhaseImplementation)
	setStatusReason(next, "x")
	_, err = CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err, RulePhaseStatus)
	if d := detailOf(err, RulePhaseStatus); !strings.Contains(d, "implementation") || !strings.Contains(d, "onhold") {
		t.Errorf("detail %q", d)
	}
}

func TestEnteredInError(t *testing.T) {
	// Any phase may go with entered-in-error, and the phase stays.
	prev := managedCase("active", PhaseImplementation)
	got, err := CheckEpisodeWrite(ctx, prev, withUpdate(prev, "entered-in-error", PhaseImplementation), newReader(), t1)
	wantRules(t, err)
	if Phase(got) != PhaseImplementation {
		t.Fatalf("phase %s", Phase(got))
	}
	// Changing the phase with it is refused.
	_, err = CheckEpisodeWrite(ctx, prev, withUpdate(prev, "entered-in-error", PhaseMonitoring), newReader(), t1)
	wantRules(t, err, RulePhaseOrder)
	// No way out.
	prev = managedCase("entered-in-error", PhaseImplementation)
	_, err = CheckEpisodeWrite(ctx, prev, withUpdate(prev, "active", PhaseImplementation), readyReader(), t1)
	wantRules(t, err, RuleTransition)
	_, err = CheckEpisodeWrite(ctx, prev, withUpdate(prev, "entered-in-error", PhaseMonitoring), readyReader(), t1)
	wantRules(t, err, RulePhaseOrder)
}

func TestHistoryMaintenance(t *testing.T) {
	// Create: client history replaced by one open entry each.
	next := withUpdate(managedCase("planned", "x"), "planned", PhaseScreening)
	delete(next, "id")
	next["statusHistory"] = []any{map[string]any{"status": "active", "period": map[string]any{"start": "1999-01-01"}}}
	setExtensions(next, ExtPhaseHistory, phaseHistoryEntry(PhaseEvaluation, "1999-01-01"))
	got, err := CheckEpisodeWrite(ctx, nil, next, nil, t0)
	wantRules(t, err)
	wantHistory := `[{"period":{"start":"2025-03-01T09:00:00.000Z"},"status":"planned"}]`
	if s := mustJSON(t, got["statusHistory"]); s != wantHistory {
		t.Fatalf("statusHistory %s", s)
	}
	if ph := PhaseHistoryOf(got); len(ph) != 1 || ph[0] != (PhaseHistory{Phase: PhaseScreening, Start: formatTime(t0)}) {
		t.Fatalf("phase history %+v", ph)
	}
	if len(objs(next, "statusHistory")) != 1 || str(objs(next, "statusHistory")[0], "status") != "active" {
		t.Fatal("input modified")
	}

	// Update with a status and phase change: previous entries closed, new open ones.
	stored := got
	stored["id"] = "c1"
	upd := withUpdate(stored, "planned", PhaseAssessment)
	upd["statusHistory"] = []any{} // a client dropping history gets it back
	got2, err := CheckEpisodeWrite(ctx, stored, upd, nil, t1)
	wantRules(t, err)
	if s := mustJSON(t, got2["statusHistory"]); s != wantHistory {
		t.Fatalf("statusHistory changed without a status change: %s", s)
	}
	ph := PhaseHistoryOf(got2)
	if len(ph) != 2 || ph[0].End != formatTime(t1) || ph[1] != (PhaseHistory{Phase: PhaseAssessment, Start: formatTime(t1)}) {
		t.Fatalf("phase history %+v", ph)
	}

	t2 := t1.Add(time.Hour)
	upd = withUpdate(got2, "waitlist", PhaseAssessment)
	got3, err := CheckEpisodeWrite(ctx, got2, upd, nil, t2)
	wantRules(t, err)
	hs := objs(got3, "statusHistory")
	if len(hs) != 2 || str(obj(hs[0], "period"), "end") != formatTime(t2) || str(hs[1], "status") != "waitlist" ||
		present(obj(hs[1], "period"), "end") {
		t.Fatalf("statusHistory %s", mustJSON(t, hs))
	}
	if len(PhaseHistoryOf(got3)) != 2 {
		t.Fatalf("phase history grew without a phase change")
	}
	// A change dated before the current entry began is refused.
	_, err = CheckEpisodeWrite(ctx, got3, withUpdate(got3, "planned", PhaseAssessment), nil, t0)
	wantCode(t, err, outcome.Invalid)
}

func TestManagedStaysManaged(t *testing.T) {
	prev := managedCase("active", PhaseMonitoring)
	next := Clone(prev)
	removeExtensions(next, ExtPhase)
	_, err := CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err, RuleManaged)
	// A phase extension without a phase code is malformed.
	next = Clone(prev)
	setExtensions(next, ExtPhase, map[string]any{"url": ExtPhase, "valueCoding": map[string]any{"code": "bogus"}})
	_, err = CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantCode(t, err, outcome.Invalid)
	// The patient of a managed case does not change.
	next = Clone(prev)
	next["patient"] = reference("Patient/other")
	_, err = CheckEpisodeWrite(ctx, prev, next, newReader(), t1)
	wantRules(t, err, RuleSamePatient)
}

func TestUnmanagedPassesUntouched(t *testing.T) {
	b, err := os.ReadFile("testdata/EpisodeOfCare-example.json")
	if err != nil {
		t.Fatal(err)
	}
	ex := jsonRes(t, string(b))
	orig := Clone(ex)
	got, err := CheckEpisodeWrite(ctx, nil, ex, nil, t1)
	if err != nil || !reflect.DeepEqual(got, orig) {
		t.Fatalf("create changed the official example: %v", err)
	}
	// Any update of a plain EpisodeOfCare, even one the state machine
	// would refuse, is plain FHIR.
	next := Clone(ex)
	next["status"] = "planned"
	next["statusHistory"] = []any{}
	got, err = CheckEpisodeWrite(ctx, ex, next, nil, t1)
	if err != nil || !reflect.DeepEqual(got, next) {
		t.Fatalf("update of a plain EpisodeOfCare changed: %v", err)
	}
	// It becomes managed when a phase is added: that is the creation of a
	// managed case, so the creation rules apply (the official example is
	// active but has no case category: G-ACT).
	next = Clone(ex)
	setExtensions(next, ExtPhase, map[string]any{"url": ExtPhase, "valueCoding": phaseCoding(PhaseMonitoring)})
	_, err = CheckEpisodeWrite(ctx, ex, next, nil, t1)
	wantRules(t, err, RuleGAct)
	// With a category it becomes a managed case whose histories the server
	// keeps from now on.
	next["type"] = append(next["type"].([]any), map[string]any{"coding": []any{
		map[string]any{"system": SystemCategory, "code": CategoryLongTerm}}})
	got, err = CheckEpisodeWrite(ctx, ex, next, nil, t1)
	wantRules(t, err)
	if len(objs(got, "statusHistory")) == 0 || len(PhaseHistoryOf(got)) != 1 {
		t.Fatalf("histories not started: %s", mustJSON(t, got))
	}
}

func TestReaderErrorsPropagate(t *testing.T) {
	r := newReader()
	r.err = outcome.New(outcome.Transient, "database unavailable")
	prev := managedCase("active", PhaseEvaluation)
	next := withUpdate(prev, "finished", PhaseClosed)
	setClosureReason(next, "goals-met")
	_, err := CheckEpisodeWrite(ctx, prev, next, r, t1)
	wantCode(t, err, outcome.Transient)
}
