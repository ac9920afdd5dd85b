package server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

// TestSummaryExactForEveryType: _summary=true keeps the Σ elements of a
// type outside the old hand-kept table (Coverage), nested levels
// included, on a read, a type search and a system search.
func TestSummaryExactForEveryType(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	pid, _ := create(t, s, "Patient", patientJSON)
	cov := `{"resourceType":"Coverage","status":"active","beneficiary":{"reference":"Patient/` + pid + `"},` +
		`"payor":[{"reference":"Patient/` + pid + `"}],"subrogation":true,` +
		`"class":[{"type":{"text":"group"},"value":"G1","extension":[{"url":"http://example.org/x","valueString":"not summary"}]}]}`
	cid, _ := create(t, s, "Coverage", cov)
	check := func(name string, res map[string]any) {
		t.Helper()
		if _, ok := res["subrogation"]; ok {
			t.Errorf("%s: subrogation (not Σ) kept: %v", name, res)
		}
		class, _ := res["class"].([]any)
		if len(class) != 1 {
			t.Fatalf("%s: class (Σ children) dropped: %v", name, res)
		}
		if _, ok := class[0].(map[string]any)["extension"]; ok || res["status"] != "active" {
			t.Errorf("%s: not the Σ elements: %v", name, res)
		}
	}
	r := s.Do(t, "GET", "Coverage/"+cid+"?_summary=true", nil)
	wantStatus(t, r, 200)
	check("read", r.JSON())
	for _, path := range []string{"Coverage?_summary=true", "?_type=Coverage&_summary=true", "Patient/" + pid + "/$everything?_summary=true&_type=Coverage"} {
		r = s.Do(t, "GET", path, nil)
		wantStatus(t, r, 200)
		found := false
		for _, e := range r.JSON()["entry"].([]any) {
			res := e.(map[string]any)["resource"].(map[string]any)
			if res["resourceType"] == "Coverage" {
				check(path, res)
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no Coverage", path)
		}
	}
}

// TestVersionsOperation: GET [base]/$versions answers the supported FHIR
// versions without a token, and the CapabilityStatement lists it.
func TestVersionsOperation(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	r := s.Do(t, "GET", "$versions", nil)
	wantStatus(t, r, 200)
	if m := r.JSON(); m["resourceType"] != "Parameters" || !strings.Contains(string(r.Body), `"valueCode":"4.0"`) ||
		!strings.Contains(string(r.Body), `"name":"default"`) {
		t.Fatalf("$versions: %s", r.Body)
	}
	capb := s.Do(t, "GET", "metadata", nil)
	if !strings.Contains(string(capb.Body), "http://hl7.org/fhir/OperationDefinition/CapabilityStatement-versions") {
		t.Error("the CapabilityStatement does not list $versions")
	}
}

// TestMetadataElementsAndETag: _elements and _summary apply to /metadata,
// which carries an ETag a client can revalidate (304).
func TestMetadataElementsAndETag(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	r := s.Do(t, "GET", "metadata?_elements=status,software", nil)
	wantStatus(t, r, 200)
	m := r.JSON()
	if m["status"] == nil || m["software"] == nil || m["rest"] != nil || m["resourceType"] != "CapabilityStatement" {
		t.Fatalf("_elements=status,software: %.500s", r.Body)
	}
	r = s.Do(t, "GET", "metadata?_summary=true", nil)
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.Body), "SUBSETTED") {
		t.Errorf("_summary=true not applied to metadata")
	}
	full := s.Do(t, "GET", "metadata", nil)
	tag := full.Header.Get("ETag")
	if tag == "" {
		t.Fatal("no ETag on /metadata")
	}
	wantStatus(t, s.Do(t, "GET", "metadata", nil, "If-None-Match", tag), 304)
	wantStatus(t, s.Do(t, "GET", "metadata", nil, "If-None-Match", `W/"other"`), 200)
}

// TestNotAcceptable: a media type casefhir cannot produce gets 406 with an
// OperationOutcome on every route.
func TestNotAcceptable(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	pid, _ := create(t, s, "Patient", patientJSON)
	for _, c := range []struct{ method, path string }{
		{"GET", ""}, {"GET", "Patient"}, {"GET", "Patient/" + pid}, {"GET", "metadata"}, {"GET", "Patient/" + pid + "/_history"},
		{"GET", "Patient/" + pid + "/$everything"}, {"POST", "Patient"}, {"GET", "$versions"},
	} {
		for _, acc := range []string{"text/plain", "text/html", "application/fhir+xml"} {
			r := s.Do(t, c.method, c.path, nil, "Accept", acc)
			if r.Status != 406 || !slices.Contains(r.IssueCodes(), "not-supported") {
				t.Errorf("%s /%s Accept %s: %d %.200s", c.method, c.path, acc, r.Status, r.Body)
			}
		}
	}
	wantStatus(t, s.Do(t, "GET", "Patient/"+pid, nil, "Accept", "text/html,application/xhtml+xml,*/*;q=0.8"), 200)
}
