package conformance

import (
	"encoding/json"
	"testing"
)

func TestSearchParameters(t *testing.T) {
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				ResourceType string `json:"resourceType"`
				URL          string `json:"url"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(SearchParameters(), &b); err != nil {
		t.Fatal(err)
	}
	if b.ResourceType != "Bundle" || len(b.Entry) != 1375 {
		t.Fatalf("official bundle: %s with %d entries, want Bundle with 1375", b.ResourceType, len(b.Entry))
	}
	if err := json.Unmarshal(CaseSearchParameters(), &b); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range b.Entry {
		if e.Resource.ResourceType != "SearchParameter" || seen[e.Resource.URL] {
			t.Errorf("bad or duplicate entry %q", e.Resource.URL)
		}
		seen[e.Resource.URL] = true
	}
	for _, u := range []string{
		"https://casefhir.org/fhir/SearchParameter/CarePlan-episode-of-care",
		"https://casefhir.org/fhir/SearchParameter/Encounter-episode-of-care",
		"https://casefhir.org/fhir/SearchParameter/EpisodeOfCare-phase",
		"https://casefhir.org/fhir/SearchParameter/EpisodeOfCare-team",
		"https://casefhir.org/fhir/SearchParameter/RiskAssessment-status",
	} {
		if !seen[u] {
			t.Errorf("missing %s", u)
		}
	}
	if len(CaseSearchParameterList()) != len(b.Entry) {
		t.Error("list and bundle differ")
	}
}
