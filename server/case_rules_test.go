package server_test

import (
	"strings"
	"testing"

	"github.com/casefhir/casefhir/mapping"
	"github.com/casefhir/casefhir/server/servertest"
)

// TestCaseRulesOnEveryWritePath checks each rule on the EpisodeOfCare
// through PUT, PATCH, a transaction entry and (where it can express the
// change) $transition.
func TestCaseRulesOnEveryWritePath(t *testing.T) {
	f := newCaseFixture(t)
	s := f.s

	type scenario struct {
		name string
		// setup returns the case id to change (fresh per path).
		setup func(t *testing.T) string
		// change turns the stored case into the version to write.
		change func(eoc map[string]any) map[string]any
		// transition is the equivalent $transition (nil: not expressible).
		transition func(t *testing.T, id string) *servertest.Response
		rule       mapping.Rule
		refs       func(id string) []string
	}
	opened := func(t *testing.T) string { return f.open(t).id }
	active := func(t *testing.T) string {
		id := f.open(t).id
		f.activate(t, id)
		return id
	}
	atRisk := func(t *testing.T) string {
		id := f.open(t).id
		f.mustTransition(t, id, "", "risk-assessment")
		return id
	}
	var intake string
	activeWithWork := func(t *testing.T) string {
		oc := f.open(t)
		f.activate(t, oc.id)
		intake = oc.task
		return oc.id
	}
	scenarios := []scenario{
		{name: "transition planned to finished", setup: opened,
			change: func(e map[string]any) map[string]any { e["status"] = "finished"; return e },
			transition: func(t *testing.T, id string) *servertest.Response {
				return f.transition(t, id, "finished", "", caseReason("goals-met"))
			},
			rule: mapping.RuleTransition},
		{name: "G-ACT", setup: opened,
			change: func(e map[string]any) map[string]any {
				e["status"] = "active"
				delete(e, "careManager")
				return caseWithPhase(e, "planning")
			},
			rule: mapping.RuleGAct},
		{name: "G-ACT via transition", setup: func(t *testing.T) string {
			// A case opened without a category cannot become active.
			r := s.Do(t, "POST", "EpisodeOfCare/$open-case", caseParams(caseParam("referral", "valueReference", caseRef(f.ref))))
			wantStatus(t, r, 201)
			loc := r.Header.Get("Location")
			return strings.Split(strings.TrimPrefix(loc, s.URL+"/EpisodeOfCare/"), "/")[0]
		},
			change:     func(e map[string]any) map[string]any { e["status"] = "active"; return caseWithPhase(e, "planning") },
			transition: func(t *testing.T, id string) *servertest.Response { return f.transition(t, id, "active", "planning") },
			rule:       mapping.RuleGAct},
		{name: "G-HOLD without reason", setup: active,
			change:     func(e map[string]any) map[string]any { e["status"] = "onhold"; return e },
			transition: func(t *testing.T, id string) *servertest.Response { return f.transition(t, id, "onhold", "") },
			rule:       mapping.RuleGHold},
		{name: "G-HOLD with open work", setup: activeWithWork,
			change: func(e map[string]any) map[string]any {
				e["status"] = "onhold"
				hs := caseList(e["statusHistory"])
				e["statusHistory"] = append(hs, map[string]any{"status": "onhold", "period": map[string]any{"start": "2020-01-01"},
					"extension": []any{map[string]any{"url": mapping.ExtStatusReason, "valueCodeableConcept": map[string]any{"text": "in hospital"}}}})
				return e
			},
			transition: func(t *testing.T, id string) *servertest.Response {
				return f.transition(t, id, "onhold", "", caseParam("reason", "valueCodeableConcept", map[string]any{"text": "in hospital"}))
			},
			rule: mapping.RuleGHold, refs: func(string) []string { return []string{"Task/" + intake} }},
		{name: "G-FIN", setup: activeWithWork,
			change: func(e map[string]any) map[string]any {
				e["status"] = "finished"
				e["extension"] = append(caseList(e["extension"]), map[string]any{"url": mapping.ExtClosureReason,
					"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": mapping.SystemClosureReason, "code": "goals-met"}}}})
				return e
			},
			transition: func(t *testing.T, id string) *servertest.Response {
				return f.transition(t, id, "finished", "", caseReason("goals-met"))
			},
			rule: mapping.RuleGFin, refs: func(string) []string { return []string{"Task/" + intake, mapping.CodeOutcomeEvaluation} }},
		{name: "G-CAN", setup: opened,
			change:     func(e map[string]any) map[string]any { e["status"] = "cancelled"; return e },
			transition: func(t *testing.T, id string) *servertest.Response { return f.transition(t, id, "cancelled", "") },
			rule:       mapping.RuleGCan},
		{name: "phase-order", setup: atRisk,
			change:     func(e map[string]any) map[string]any { return caseWithPhase(e, "assessment") },
			transition: func(t *testing.T, id string) *servertest.Response { return f.transition(t, id, "", "assessment") },
			rule:       mapping.RulePhaseOrder},
		{name: "phase-status", setup: opened,
			change:     func(e map[string]any) map[string]any { return caseWithPhase(e, "implementation") },
			transition: func(t *testing.T, id string) *servertest.Response { return f.transition(t, id, "", "implementation") },
			rule:       mapping.RulePhaseStatus},
		{name: "same-patient", setup: opened,
			change: func(e map[string]any) map[string]any { e["patient"] = caseRef(f.other); return e },
			rule:   mapping.RuleSamePatient},
		{name: "managed", setup: opened,
			change: func(e map[string]any) map[string]any { return caseWithPhase(e, "") },
			rule:   mapping.RuleManaged},
	}
	for _, sc := range scenarios {
		paths := append([]caseWritePath(nil), caseUpdatePaths()...)
		if sc.transition != nil {
			tr := sc.transition
			paths = append(paths, caseWritePath{"$transition", func(t *testing.T, _ *servertest.Server, key string, _, _ map[string]any) *servertest.Response {
				return tr(t, strings.TrimPrefix(key, "EpisodeOfCare/"))
			}})
		}
		for _, p := range paths {
			t.Run(sc.name+"/"+p.name, func(t *testing.T) {
				id := sc.setup(t)
				key := "EpisodeOfCare/" + id
				old := f.read(t, key)
				r := p.write(t, s, key, old, sc.change(caseClone(old)))
				var refs []string
				if sc.refs != nil {
					refs = sc.refs(id)
				}
				wantCaseRule(t, r, sc.rule, refs...)
				// Nothing was written.
				if got := f.read(t, key); got["meta"].(map[string]any)["versionId"] != old["meta"].(map[string]any)["versionId"] {
					t.Errorf("refused write stored a version: %v", got["meta"])
				}
			})
		}
	}
}

// TestCaseLinkedRulesOnEveryWritePath checks the rules of resources linked
// to a case on POST, transaction and batch entries, PUT and PATCH.
func TestCaseLinkedRulesOnEveryWritePath(t *testing.T) {
	f := newCaseFixture(t)
	s := f.s
	planned := f.open(t).id
	cancelled := f.open(t).id
	f.mustTransition(t, cancelled, "cancelled", "", caseReason("declined"), caseParam("cascade", "valueBoolean", true))

	creates := []struct {
		name string
		res  map[string]any
		rule mapping.Rule
	}{
		{"same-patient Goal", caseLinked("Goal", planned, f.other, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "walk"}}), mapping.RuleSamePatient},
		{"same-patient Coverage", caseLinked("Coverage", planned, f.other, map[string]any{"status": "active", "payor": []any{caseRef(f.org)}}), mapping.RuleSamePatient},
		{"same-patient Appointment", caseLinked("Appointment", planned, f.other, map[string]any{"status": "booked"}), mapping.RuleSamePatient},
		{"closed-case Task", caseLinked("Task", cancelled, f.patient, map[string]any{"status": "requested", "intent": "order"}), mapping.RuleClosedCase},
		{"careplan-active", caseLinked("CarePlan", planned, f.patient, map[string]any{"status": "active", "intent": "plan"}), mapping.RuleCarePlanActive},
		{"case-link unresolved", caseLinked("Goal", "nope", f.patient, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "walk"}}), mapping.RuleCaseLink},
		{"Encounter same-patient", map[string]any{"resourceType": "Encounter", "status": "finished", "class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
			"subject": caseRef(f.other), "episodeOfCare": []any{caseRef("EpisodeOfCare/" + planned)}}, mapping.RuleSamePatient},
	}
	for _, c := range creates {
		for _, p := range caseCreatePaths() {
			t.Run(c.name+"/"+p.name, func(t *testing.T) {
				wantCaseRule(t, p.create(t, s, caseClone(c.res)), c.rule)
			})
		}
	}

	// Updates: a Goal of the planned case moved to the other patient; a
	// draft CarePlan made active in a planned case; a Task linked anew to
	// the cancelled case.
	goal := caseCreate(t, s, caseLinked("Goal", planned, f.patient, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "walk"}}))
	plan := caseCreate(t, s, caseLinked("CarePlan", planned, f.patient, map[string]any{"status": "draft", "intent": "plan"}))
	task := caseCreate(t, s, map[string]any{"resourceType": "Task", "status": "requested", "intent": "order", "for": caseRef(f.patient)})
	updates := []struct {
		name   string
		key    string
		change func(m map[string]any) map[string]any
		rule   mapping.Rule
	}{
		{"same-patient", "Goal/" + goal, func(m map[string]any) map[string]any { m["subject"] = caseRef(f.other); return m }, mapping.RuleSamePatient},
		{"careplan-active", "CarePlan/" + plan, func(m map[string]any) map[string]any { m["status"] = "active"; return m }, mapping.RuleCarePlanActive},
		{"closed-case", "Task/" + task, func(m map[string]any) map[string]any {
			m["extension"] = []any{map[string]any{"url": mapping.ExtEpisodeOfCare, "valueReference": caseRef("EpisodeOfCare/" + cancelled)}}
			return m
		}, mapping.RuleClosedCase},
	}
	for _, u := range updates {
		for _, p := range caseUpdatePaths() {
			t.Run("update "+u.name+"/"+p.name, func(t *testing.T) {
				old := f.read(t, u.key)
				wantCaseRule(t, p.write(t, s, u.key, old, u.change(caseClone(old))), u.rule)
			})
		}
	}

	// A plain (unmanaged) EpisodeOfCare only has to exist.
	plain := caseCreate(t, s, map[string]any{"resourceType": "EpisodeOfCare", "status": "finished", "patient": caseRef(f.other)})
	wantStatus(t, s.Do(t, "POST", "Goal", caseLinked("Goal", plain, f.patient, map[string]any{"lifecycleStatus": "proposed", "description": map[string]any{"text": "x"}})), 201)
}

// TestCaseHistoriesServerMaintained: a client's statusHistory and phase
// history are replaced on every path; PUT to finished keeping the phase
// closes it.
func TestCaseHistoriesServerMaintained(t *testing.T) {
	f := newCaseFixture(t)
	for _, p := range caseUpdatePaths() {
		t.Run(p.name, func(t *testing.T) {
			oc := f.open(t)
			key := "EpisodeOfCare/" + oc.id
			old := f.read(t, key)
			next := caseClone(old)
			next["statusHistory"] = []any{map[string]any{"status": "active", "period": map[string]any{"start": "1999-01-01"}}}
			next["extension"] = append(caseList(next["extension"]), map[string]any{"url": mapping.ExtPhaseHistory, "extension": []any{
				map[string]any{"url": "phase", "valueCoding": casePhaseCoding("closed")},
				map[string]any{"url": "period", "valuePeriod": map[string]any{"start": "1999-01-01"}}}})
			next = caseWithPhase(next, "assessment")
			r := p.write(t, f.s, key, old, next)
			wantStatus(t, r, 200)
			got := f.read(t, key)
			if strings.Contains(string(caseJSON(got)), "1999") {
				t.Fatalf("client history kept: %s", caseJSON(got))
			}
			ph := mapping.PhaseHistoryOf(got)
			if len(ph) != 2 || ph[0].Phase != "screening" || ph[0].End == "" || ph[1].Phase != "assessment" || ph[1].End != "" {
				t.Fatalf("phase history %+v", ph)
			}
			if sh := caseList(got["statusHistory"]); len(sh) != 1 || sh[0].(map[string]any)["status"] != "planned" {
				t.Fatalf("statusHistory %v", sh)
			}
		})
	}
	t.Run("PUT finished closes the phase", func(t *testing.T) {
		oc := f.open(t)
		f.activate(t, oc.id)
		task := f.read(t, "Task/"+oc.task)
		task["status"] = "completed"
		wantStatus(t, f.s.Do(t, "PUT", "Task/"+oc.task, task), 200)
		caseCreate(t, f.s, caseLinked("ClinicalImpression", oc.id, f.patient, map[string]any{"status": "completed",
			"code": map[string]any{"coding": []any{map[string]any{"system": mapping.SystemDocument, "code": mapping.CodeOutcomeEvaluation}}}}))
		eoc := f.read(t, "EpisodeOfCare/"+oc.id)
		eoc["status"] = "finished"
		eoc["extension"] = append(caseList(eoc["extension"]), map[string]any{"url": mapping.ExtClosureReason,
			"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": mapping.SystemClosureReason, "code": "goals-met"}}}})
		r := f.s.Do(t, "PUT", "EpisodeOfCare/"+oc.id, eoc)
		wantStatus(t, r, 200)
		got := r.JSON()
		if casePhaseOf(got) != "closed" || got["period"].(map[string]any)["end"] == nil {
			t.Fatalf("finished case: %s", r.Body)
		}
	})
}

// TestCaseTransitionCascadeDryRun covers $transition's dryRun and cascade.
func TestCaseTransitionCascadeDryRun(t *testing.T) {
	f := newCaseFixture(t)
	oc := f.open(t)
	f.activate(t, oc.id)
	f.mustTransition(t, oc.id, "", "monitoring")
	plan := caseCreate(t, f.s, caseLinked("CarePlan", oc.id, f.patient, map[string]any{"status": "active", "intent": "plan"}))

	// dryRun answers like the real call and writes nothing.
	dry := f.transition(t, oc.id, "onhold", "", caseParam("reason", "valueCodeableConcept", map[string]any{"text": "travel"}),
		caseParam("cascade", "valueBoolean", true), caseParam("dryRun", "valueBoolean", true))
	wantStatus(t, dry, 200)
	if dry.JSON()["status"] != "onhold" {
		t.Fatalf("dryRun answer %s", dry.Body)
	}
	if f.read(t, "EpisodeOfCare/"+oc.id)["status"] != "active" || f.read(t, "CarePlan/"+plan)["status"] != "active" {
		t.Fatal("dryRun wrote")
	}
	dryBad := f.transition(t, oc.id, "onhold", "", caseParam("dryRun", "valueBoolean", true))
	wantCaseRule(t, dryBad, mapping.RuleGHold)

	// Without cascade: refused, open work listed.
	wantCaseRule(t, f.transition(t, oc.id, "cancelled", "", caseReason("declined")), mapping.RuleGCan, "CarePlan/"+plan, "Task/"+oc.task)

	// With cascade: the plan is revoked, the task cancelled, the case cancelled, atomically.
	r := f.transition(t, oc.id, "cancelled", "", caseReason("declined"), caseParam("cascade", "valueBoolean", true))
	wantStatus(t, r, 200)
	if got := r.JSON(); got["status"] != "cancelled" || casePhaseOf(got) != "closed" || mapping.ClosureReason(got) == nil {
		t.Fatalf("cancelled case %s", r.Body)
	}
	if st := f.read(t, "CarePlan/"+plan)["status"]; st != "revoked" {
		t.Errorf("plan %v", st)
	}
	if st := f.read(t, "Task/"+oc.task)["status"]; st != "cancelled" {
		t.Errorf("task %v", st)
	}
	// Terminal: nothing more.
	wantCaseRule(t, f.transition(t, oc.id, "active", ""), mapping.RuleTransition)
}

// TestCaseOpenCase: 201 with a transaction-response Bundle, every resource
// created and linked; a refused call creates nothing.
func TestCaseOpenCase(t *testing.T) {
	f := newCaseFixture(t)
	oc := f.open(t)
	eoc := f.read(t, "EpisodeOfCare/"+oc.id)
	if eoc["status"] != "planned" || casePhaseOf(eoc) != "screening" || caseList(eoc["referralRequest"])[0].(map[string]any)["reference"] != f.ref {
		t.Fatalf("case %v", eoc)
	}
	if team := caseList(eoc["team"]); len(team) != 1 || team[0].(map[string]any)["reference"] != "CareTeam/"+oc.team {
		t.Fatalf("team %v", team)
	}
	ct := f.read(t, "CareTeam/"+oc.team)
	if !strings.Contains(string(caseJSON(ct)), mapping.CodeCaseManagerRole) || !strings.Contains(string(caseJSON(ct)), "EpisodeOfCare/"+oc.id) {
		t.Errorf("care team %v", ct)
	}
	task := f.read(t, "Task/"+oc.task)
	if !strings.Contains(string(caseJSON(task)), "EpisodeOfCare/"+oc.id) {
		t.Errorf("task %v", task)
	}

	before := caseHistoryTotal(t, f.s, "EpisodeOfCare") + caseHistoryTotal(t, f.s, "CareTeam") + caseHistoryTotal(t, f.s, "Task")
	r := f.s.Do(t, "POST", "EpisodeOfCare/$open-case", caseParams(caseParam("referral", "valueReference", caseRef(f.ref)), caseParam("patient", "valueReference", caseRef(f.other))))
	wantCaseRule(t, r, mapping.RuleSamePatient)
	wantStatus(t, f.s.Do(t, "POST", "EpisodeOfCare/$open-case", caseParams(caseParam("patient", "valueReference", caseRef(f.other)))), 400)
	after := caseHistoryTotal(t, f.s, "EpisodeOfCare") + caseHistoryTotal(t, f.s, "CareTeam") + caseHistoryTotal(t, f.s, "Task")
	if after != before {
		t.Errorf("refused $open-case wrote: %d versions before, %d after", before, after)
	}
}

func caseHistoryTotal(t *testing.T, s *servertest.Server, typ string) int {
	t.Helper()
	r := s.Do(t, "GET", typ+"/_history?_count=1000", nil)
	wantStatus(t, r, 200)
	return len(caseList(r.JSON()["entry"]))
}
