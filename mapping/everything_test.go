package mapping

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEverythingFollows(t *testing.T) {
	eoc := managedCase("active", PhaseMonitoring)
	eoc["referralRequest"] = []any{reference("ServiceRequest/ref")}
	eoc["diagnosis"] = []any{map[string]any{"condition": reference("Condition/stroke")}}
	linked := []map[string]any{
		jsonRes(t, `{"resourceType":"CarePlan","id":"cp","subject":{"reference":"Patient/p1"},
			"author":{"reference":"Practitioner/doc"},"addresses":[{"reference":"Condition/unlinked"}],
			"goal":[{"reference":"Goal/g1"}],"activity":[{"reference":{"reference":"Task/tk"}}],
			"contained":[{"resourceType":"Organization","id":"x","partOf":{"reference":"Organization/hidden"}}],
			"careTeam":[{"reference":"#x"}]}`),
		jsonRes(t, `{"resourceType":"Goal","id":"g1","subject":{"reference":"Patient/p1"},"expressedBy":{"reference":"RelatedPerson/daughter"}}`),
		jsonRes(t, `{"resourceType":"Coverage","id":"cov","beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/insurer"}]}`),
		jsonRes(t, `{"resourceType":"Communication","id":"m","subject":{"reference":"Patient/p1"},"recipient":[{"reference":"Patient/someone-else"}],
			"about":[{"reference":"http://other.example/fhir/Organization/far"}]}`),
		jsonRes(t, `{"resourceType":"Task","id":"tk","for":{"reference":"Patient/p1"},"owner":{"reference":"PractitionerRole/pr"},"focus":{"reference":"EpisodeOfCare/c1"}}`),
	}
	got := EverythingFollows(eoc, linked)
	want := []string{"CareTeam/t1", "Condition/stroke", "Organization/insurer", "Organization/o1", "Patient/p1",
		"Practitioner/cm", "Practitioner/doc", "PractitionerRole/pr", "RelatedPerson/daughter", "ServiceRequest/ref"}
	if !slices.Equal(got, want) {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, " "), strings.Join(want, " "))
	}
}

func TestTimelineOrder(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	items := []TimelineKey{
		{at(5), "CarePlan", "cp", 2},
		{at(0), "EpisodeOfCare", "c1", 1},
		{at(5), "CarePlan", "cp", 1}, // same instant: versions in sequence
		{at(3), "Task", "tk", 1},
		{at(5), "Appointment", "ap", 1},
		{at(9), "EpisodeOfCare", "c1", 2},
	}
	SortTimeline(items, func(k TimelineKey) TimelineKey { return k })
	var got []string
	for _, k := range items {
		got = append(got, k.Type+"/"+k.ID+"/"+string(rune('0'+k.VersionID)))
	}
	want := "EpisodeOfCare/c1/1 Task/tk/1 Appointment/ap/1 CarePlan/cp/1 CarePlan/cp/2 EpisodeOfCare/c1/2"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %s", strings.Join(got, " "))
	}
	if !slices.Contains(CaseTypes(), "Encounter") || !slices.Contains(CaseTypes(), "CarePlan") {
		t.Fatal("case types")
	}
}
