package server_test

import (
	"slices"
	"testing"

	"github.com/casefhir/casefhir/mapping"
)

// TestCaseWorklist: the case manager's worklist is a plain search.
func TestCaseWorklist(t *testing.T) {
	f := newCaseFixture(t)
	s := f.s
	monitoring := func() string {
		oc := f.open(t)
		f.activate(t, oc.id)
		f.mustTransition(t, oc.id, "", "monitoring")
		return oc.id
	}
	older := monitoring()
	newer := monitoring()
	planning := f.open(t).id
	f.activate(t, planning)
	// A case of another manager.
	otherManager := "Practitioner/" + caseCreate(t, s, map[string]any{"resourceType": "Practitioner"})
	saved := f.manager
	f.manager = otherManager
	foreign := monitoring()
	f.manager = saved

	ra := func(caseID string) string {
		return "RiskAssessment/" + caseCreate(t, s, caseLinked("RiskAssessment", caseID, f.patient, map[string]any{"status": "final",
			"prediction": []any{map[string]any{"outcome": map[string]any{"text": "fall"}}}}))
	}
	raOlder, raNewer := ra(older), ra(newer)
	raPlanning, raForeign := ra(planning), ra(foreign)

	r := s.Do(t, "GET", "EpisodeOfCare?care-manager="+f.manager+"&status=active&phase=monitoring&_sort=-date&_revinclude=RiskAssessment:episode-of-care", nil)
	if r.Status == 501 {
		t.Skip("search is not wired")
	}
	wantStatus(t, r, 200)
	var matches, includes []string
	for _, e := range caseList(r.JSON()["entry"]) {
		em := e.(map[string]any)
		k := mapping.Key(em["resource"].(map[string]any))
		switch em["search"].(map[string]any)["mode"] {
		case "match":
			matches = append(matches, k)
		case "include":
			includes = append(includes, k)
		}
	}
	// -date sorts a Period by its upper bound: open cases (no period.end)
	// tie and come by id.
	want := []string{"EpisodeOfCare/" + newer, "EpisodeOfCare/" + older}
	slices.Sort(want)
	if !slices.Equal(matches, want) {
		t.Errorf("worklist matches %v, want %v", matches, want)
	}
	slices.Sort(includes)
	want = []string{raOlder, raNewer}
	slices.Sort(want)
	if !slices.Equal(includes, want) {
		t.Errorf("worklist includes %v, want %v (not %s, %s)", includes, want, raPlanning, raForeign)
	}

	// Ascending date sorts by period.start: oldest case first.
	r = s.Do(t, "GET", "EpisodeOfCare?care-manager="+f.manager+"&status=active&phase=monitoring&_sort=date", nil)
	wantStatus(t, r, 200)
	if got := bundleKeys(r.JSON()); !slices.Equal(got, []string{"EpisodeOfCare/" + older, "EpisodeOfCare/" + newer}) {
		t.Errorf("_sort=date: %v", got)
	}

	// By category and phase too.
	r = s.Do(t, "GET", "EpisodeOfCare?type="+mapping.SystemCategory+"|intermediate&phase=planning", nil)
	wantStatus(t, r, 200)
	if got := bundleKeys(r.JSON()); !slices.Equal(got, []string{"EpisodeOfCare/" + planning}) {
		t.Errorf("by category and phase: %v", got)
	}
}
