package server_test

import (
	"fmt"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

// BenchmarkCaseEverything measures GET EpisodeOfCare/{id}/$everything over
// HTTP for a case with 300 linked resources (Observations, Tasks, Goals,
// Appointments, Encounters) referencing 20 practitioners: one Bundle of
// about 330 entries; and, for comparison, a plain search returning the
// linked resources with _revinclude.
func BenchmarkCaseEverything(b *testing.B) {
	s := servertest.Start(b, servertest.Options{})
	do := func(method, path string, body any, want int) map[string]any {
		r := s.Do(b, method, path, body)
		if r.Status != want {
			b.Fatalf("%s %s: %d %s", method, path, r.Status, r.Body)
		}
		return r.JSON()
	}
	pat := "Patient/" + do("POST", "Patient", map[string]any{"resourceType": "Patient"}, 201)["id"].(string)
	sr := "ServiceRequest/" + do("POST", "ServiceRequest", map[string]any{"resourceType": "ServiceRequest", "status": "active",
		"intent": "order", "subject": caseRef(pat)}, 201)["id"].(string)
	oc := do("POST", "EpisodeOfCare/$open-case", caseParams(caseParam("referral", "valueReference", caseRef(sr))), 201)
	loc := caseList(oc["entry"])[0].(map[string]any)["response"].(map[string]any)["location"].(string)
	var caseID string
	_, _ = fmt.Sscanf(loc[len(s.URL):], "/EpisodeOfCare/%36s", &caseID)

	var entries []map[string]any
	for i := range 20 {
		entries = append(entries, caseTxEntry("PUT", fmt.Sprintf("Practitioner/bench-pr-%d", i),
			map[string]any{"resourceType": "Practitioner", "id": fmt.Sprintf("bench-pr-%d", i), "name": []any{map[string]any{"family": "P"}}}))
	}
	for i := range 60 {
		pr := caseRef(fmt.Sprintf("Practitioner/bench-pr-%d", i%20))
		for _, res := range []map[string]any{
			caseLinked("Observation", caseID, pat, map[string]any{"status": "final", "code": map[string]any{"text": "weight"},
				"valueQuantity": map[string]any{"value": 70 + i, "unit": "kg"}, "performer": []any{pr}}),
			caseLinked("Task", caseID, pat, map[string]any{"status": "completed", "intent": "order", "owner": pr,
				"description": "Follow-up call number " + fmt.Sprint(i)}),
			caseLinked("Goal", caseID, pat, map[string]any{"lifecycleStatus": "active", "description": map[string]any{"text": "goal"}}),
			caseLinked("Appointment", caseID, pat, map[string]any{"status": "booked"}),
			{"resourceType": "Encounter", "status": "finished", "class": map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
				"subject": caseRef(pat), "episodeOfCare": []any{caseRef("EpisodeOfCare/" + caseID)}, "participant": []any{map[string]any{"individual": pr}}},
		} {
			entries = append(entries, caseTxEntry("POST", res["resourceType"].(string), res))
		}
	}
	do("POST", "", caseBundle("transaction", entries...), 200)
	path := "EpisodeOfCare/" + caseID + "/$everything?_count=1000"
	if n := len(caseList(do("GET", path, nil, 200)["entry"])); n < 320 {
		b.Fatalf("$everything has %d entries", n)
	}
	// The same linked resources through plain search, for comparison.
	search := "EpisodeOfCare?_id=" + caseID + "&_count=1000&_revinclude=Observation:episode-of-care&_revinclude=Task:episode-of-care" +
		"&_revinclude=Goal:episode-of-care&_revinclude=Appointment:episode-of-care&_revinclude=Encounter:episode-of-care"
	for _, bc := range []struct{ name, path string }{{"everything", path}, {"search-revinclude", search}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				r := s.Do(b, "GET", bc.path, nil)
				if r.Status != 200 {
					b.Fatal(r.Status, string(r.Body))
				}
			}
		})
	}
}
