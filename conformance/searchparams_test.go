package conformance

import (
	"bytes"
	"encoding/json"
	"os"
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

// TestSearchParametersAreTheOfficialBundle checks the embedded copy is the
// official R4 bundle (../shared/fhir-r4 beside the repository) with only
// insignificant whitespace removed.
func TestSearchParametersAreTheOfficialBundle(t *testing.T) {
	official, err := os.ReadFile("../../shared/fhir-r4/definitions/search-parameters.json")
	if err != nil {
		t.Fatalf("official bundle not found beside the repository: %v", err)
	}
	var want bytes.Buffer
	if err := json.Compact(&want, official); err != nil {
		t.Fatal(err)
	}
	if got := bytes.TrimSpace(SearchParameters()); !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the embedded SearchParameter bundle differs from the official one")
	}
}
