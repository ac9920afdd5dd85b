package mapping

import (
	"context"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func linkedTo(typ, id, caseRef string, extra map[string]any) map[string]any {
	m := map[string]any{"resourceType": typ, "id": id}
	if typ == "Encounter" {
		m["episodeOfCare"] = []any{reference(caseRef)}
	} else {
		m["extension"] = []any{map[string]any{"url": ExtEpisodeOfCare, "valueReference": reference(caseRef)}}
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func caseReader(status, phase string) *fakeReader {
	r := newReader()
	r.episodes["c1"] = managedCase(status, phase)
	return r
}

func TestSamePatientPerType(t *testing.T) {
	r := caseReader("active", PhaseImplementation)
	mine, other := reference("Patient/p1"), reference("Patient/p2")
	cases := []struct {
		typ  string
		elem string
		val  func(ref map[string]any) any
	}{
		{"CarePlan", "subject", func(x map[string]any) any { return x }},
		{"RiskAssessment", "subject", func(x map[string]any) any { return x }},
		{"Goal", "subject", func(x map[string]any) any { return x }},
		{"Task", "for", func(x map[string]any) any { return x }},
		{"Coverage", "beneficiary", func(x map[string]any) any { return x }},
		{"Encounter", "subject", func(x map[string]any) any { return x }},
		{"Claim", "patient", func(x map[string]any) any { return x }},
		{"Account", "subject", func(x map[string]any) any { return []any{x} }},
		{"Appointment", "participant", func(x map[string]any) any {
			return []any{map[string]any{"actor": reference("Practitioner/x")}, map[string]any{"actor": x}}
		}},
		{"Basic", "subject", func(x map[string]any) any { return x }}, // not in the table: subject/patient
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			ok := linkedTo(c.typ, "x1", "EpisodeOfCare/c1", map[string]any{c.elem: c.val(mine)})
			wantRules(t, CheckLinkedWrite(ctx, c.typ, nil, ok, r))
			bad := linkedTo(c.typ, "x1", "EpisodeOfCare/c1", map[string]any{c.elem: c.val(other)})
			err := CheckLinkedWrite(ctx, c.typ, nil, bad, r)
			wantRules(t, err, RuleSamePatient)
			if d := detailOf(err, RuleSamePatient); !strings.Contains(d, "Patient/p2") || !strings.Contains(d, "EpisodeOfCare/c1") {
				t.Errorf("detail %q", d)
			}
			// also on update
			wantRules(t, CheckLinkedWrite(ctx, c.typ, ok, bad, r), RuleSamePatient)
		})
	}
	// Absolute and versioned references to the same patient agree.
	x := linkedTo("Task", "t", "http://example.org/fhir/EpisodeOfCare/c1", map[string]any{"for": reference("http://example.org/fhir/Patient/p1/_history/3")})
	wantRules(t, CheckLinkedWrite(ctx, "Task", nil, x, r))
	// A non-patient subject (e.g. a Group) is not compared.
	x = linkedTo("CarePlan", "cp", "EpisodeOfCare/c1", map[string]any{"subject": reference("Group/g")})
	wantRules(t, CheckLinkedWrite(ctx, "CarePlan", nil, x, r))
}

func TestCaseLinkMustResolve(t *testing.T) {
	r := caseReader("active", PhaseImplementation)
	x := linkedTo("Goal", "g", "EpisodeOfCare/missing", nil)
	err := CheckLinkedWrite(ctx, "Goal", nil, x, r)
	wantRules(t, err, RuleCaseLink)
	if !strings.Contains(detailOf(err, RuleCaseLink), "EpisodeOfCare/missing") {
		t.Errorf("detail %q", detailOf(err, RuleCaseLink))
	}
	x = linkedTo("Goal", "g", "Patient/p1", nil)
	wantRules(t, CheckLinkedWrite(ctx, "Goal", nil, x, r), RuleCaseLink)
	x = linkedTo("Goal", "g", "#contained", nil)
	wantRules(t, CheckLinkedWrite(ctx, "Goal", nil, x, r), RuleCaseLink)
	// (nil, nil) from the reader also means missing
	r2 := &nilReader{}
	wantRules(t, CheckLinkedWrite(ctx, "Goal", nil, linkedTo("Goal", "g", "EpisodeOfCare/c1", nil), r2), RuleCaseLink)
	// store errors are returned as they are
	r.err = outcome.New(outcome.Timeout, "slow")
	wantCode(t, CheckLinkedWrite(ctx, "Goal", nil, linkedTo("Goal", "g", "EpisodeOfCare/c1", nil), r), outcome.Timeout)
}

type nilReader struct{ fakeReader }

func (nilReader) Episode(context.Context, string) (map[string]any, error) { return nil, nil }

func TestClosedCase(t *testing.T) {
	for _, st := range []string{"finished", "cancelled", "entered-in-error"} {
		phase := PhaseClosed
		if st == "entered-in-error" {
			phase = PhaseMonitoring
		}
		r := caseReader(st, phase)
		obs := linkedTo("Observation", "o1", "EpisodeOfCare/c1", map[string]any{"subject": reference("Patient/p1")})
		err := CheckLinkedWrite(ctx, "Observation", nil, obs, r)
		wantRules(t, err, RuleClosedCase)
		if !strings.Contains(detailOf(err, RuleClosedCase), st) {
			t.Errorf("detail %q", detailOf(err, RuleClosedCase))
		}
		// linking an existing resource anew is also new
		unlinked := map[string]any{"resourceType": "Observation", "id": "o1"}
		wantRules(t, CheckLinkedWrite(ctx, "Observation", unlinked, obs, r), RuleClosedCase)
		// an update of an already linked resource is not a new link
		wantRules(t, CheckLinkedWrite(ctx, "Observation", obs, obs, r))
	}
	for _, st := range []string{"planned", "waitlist", "active", "onhold"} {
		r := caseReader(st, statusPhase[st])
		obs := linkedTo("Observation", "o1", "EpisodeOfCare/c1", nil)
		wantRules(t, CheckLinkedWrite(ctx, "Observation", nil, obs, r))
	}
}

func TestCarePlanActive(t *testing.T) {
	for _, st := range allStatuses {
		r := caseReader(st, statusPhase[st])
		prev := linkedTo("CarePlan", "cp", "EpisodeOfCare/c1", map[string]any{"status": "draft", "subject": reference("Patient/p1")})
		next := Clone(prev)
		next["status"] = "active"
		err := CheckLinkedWrite(ctx, "CarePlan", prev, next, r)
		if st == "active" || st == "onhold" {
			wantRules(t, err)
		} else {
			wantRules(t, err, RuleCarePlanActive)
		}
		// a draft plan is fine in a live case
		if !IsTerminal(st) {
			wantRules(t, CheckLinkedWrite(ctx, "CarePlan", nil, prev, r))
		}
	}
	// several rules at once, one issue each
	r := caseReader("finished", PhaseClosed)
	cp := linkedTo("CarePlan", "cp", "EpisodeOfCare/c1", map[string]any{"status": "active", "subject": reference("Patient/p9")})
	wantRules(t, CheckLinkedWrite(ctx, "CarePlan", nil, cp, r), RuleSamePatient, RuleClosedCase, RuleCarePlanActive)
}

func TestLinksToPlainEpisodes(t *testing.T) {
	// A link to an unmanaged EpisodeOfCare only has to resolve: the
	// official example Encounter f203 names another patient than
	// EpisodeOfCare/example and must still load.
	r := newReader()
	ex := managedCase("finished", PhaseClosed)
	removeExtensions(ex, ExtPhase)
	r.episodes["example"] = ex
	enc := linkedTo("Encounter", "f203", "EpisodeOfCare/example", map[string]any{"subject": reference("Patient/f201")})
	wantRules(t, CheckLinkedWrite(ctx, "Encounter", nil, enc, r))
	// no link, deletes and EpisodeOfCare itself pass without reading
	wantRules(t, CheckLinkedWrite(ctx, "Observation", nil, map[string]any{"resourceType": "Observation"}, nil))
	wantRules(t, CheckLinkedWrite(ctx, "Observation", enc, nil, nil))
	wantRules(t, CheckLinkedWrite(ctx, "EpisodeOfCare", nil, managedCase("active", PhaseMonitoring), nil))
}

func TestCaseLinksAndIDs(t *testing.T) {
	enc := linkedTo("Encounter", "e", "EpisodeOfCare/a", nil)
	enc["episodeOfCare"] = []any{reference("EpisodeOfCare/a"), reference("EpisodeOfCare/b"), reference("EpisodeOfCare/a")}
	enc["extension"] = []any{map[string]any{"url": ExtEpisodeOfCare, "valueReference": reference("EpisodeOfCare/c")}}
	if got := strings.Join(CaseIDs("Encounter", enc), ","); got != "a,b,c" {
		t.Fatalf("CaseIDs = %s", got)
	}
	if got := CaseLinks("Task", linkedTo("Task", "t", "EpisodeOfCare/z", nil)); len(got) != 1 || got[0] != "EpisodeOfCare/z" {
		t.Fatalf("CaseLinks = %v", got)
	}
	if len(LinkableTypes()) < 40 || PatientElements("Task")[0] != "for" {
		t.Fatal("patient table")
	}
}
