package mapping

import (
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
)

func TestParseTransitionParams(t *testing.T) {
	p, err := ParseTransitionParams(jsonRes(t, `{"resourceType":"Parameters","parameter":[
		{"name":"status","valueCode":"finished"},
		{"name":"phase","valueCoding":{"system":"https://casefhir.org/fhir/CodeSystem/case-phase","code":"closed"}},
		{"name":"reason","valueCodeableConcept":{"coding":[{"system":"https://casefhir.org/fhir/CodeSystem/case-closure-reason","code":"goals-met"}]}},
		{"name":"effective","valueDateTime":"2025-03-02T10:00:00+01:00"},
		{"name":"cascade","valueBoolean":true},
		{"name":"dryRun","valueBoolean":false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != "finished" || p.Phase != "closed" || !hasCoding(p.Reason, SystemClosureReason, "goals-met") ||
		!p.Effective.Equal(time.Date(2025, 3, 2, 9, 0, 0, 0, time.UTC)) || !p.Cascade || p.DryRun {
		t.Fatalf("%+v", p)
	}
	p, err = ParseTransitionParams(jsonRes(t, `{"resourceType":"Parameters","parameter":[{"name":"phase","valueCode":"monitoring"},{"name":"effective","valueDateTime":"2025-03"}]}`))
	if err != nil || p.Phase != "monitoring" || !p.Effective.Equal(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("%+v %v", p, err)
	}
	for _, body := range []string{
		`{"resourceType":"Patient"}`,
		`{"resourceType":"Parameters","parameter":[{"name":"colour","valueCode":"red"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"active"},{"name":"status","valueCode":"onhold"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"status","valueString":"active"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"status","valueCode":"done"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"phase","valueCoding":{"system":"http://other","code":"closed"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"phase","valueCode":"later"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"cascade","valueBoolean":"yes"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"effective","valueDateTime":"yesterday"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"reason","valueCodeableConcept":{}}]}`,
	} {
		if _, err := ParseTransitionParams(jsonRes(t, body)); !outcome.Is(err, outcome.Invalid) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func TestParseOpenCaseParams(t *testing.T) {
	p, err := ParseOpenCaseParams(jsonRes(t, `{"resourceType":"Parameters","parameter":[
		{"name":"referral","valueReference":{"reference":"ServiceRequest/r1"}},
		{"name":"patient","valueReference":{"reference":"Patient/p1"}},
		{"name":"careManager","valueReference":{"reference":"Practitioner/cm"}},
		{"name":"managingOrganization","valueReference":{"reference":"Organization/o"}},
		{"name":"category","valueCoding":{"system":"https://casefhir.org/fhir/CodeSystem/case-category","code":"acute"}},
		{"name":"model","valueCoding":{"system":"https://casefhir.org/fhir/CodeSystem/case-management-model","code":"intensive"}}]}`))
	if err != nil || p.Referral != "ServiceRequest/r1" || p.Patient != "Patient/p1" || p.CareManager != "Practitioner/cm" ||
		p.ManagingOrganization != "Organization/o" || str(p.Category, "code") != "acute" || str(p.Model, "code") != "intensive" {
		t.Fatalf("%+v %v", p, err)
	}
	for _, body := range []string{
		`{"resourceType":"Parameters"}`,
		`{"resourceType":"Parameters","parameter":[{"name":"referral","valueReference":{"display":"x"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"referral","valueString":"ServiceRequest/1"}]}`,
	} {
		if _, err := ParseOpenCaseParams(jsonRes(t, body)); !outcome.Is(err, outcome.Invalid) {
			t.Errorf("%s: %v", body, err)
		}
	}
}

func TestDecodeKeepsNumbers(t *testing.T) {
	m := jsonRes(t, `{"resourceType":"Observation","valueQuantity":{"value":1.50}}`)
	b, err := Encode(Clone(m))
	if err != nil || string(b) != `{"resourceType":"Observation","valueQuantity":{"value":1.50}}` {
		t.Fatalf("%s %v", b, err)
	}
	if _, err := Decode([]byte(`[1]`)); !outcome.Is(err, outcome.Structure) {
		t.Fatal(err)
	}
	if _, err := Decode([]byte(`null`)); !outcome.Is(err, outcome.Structure) {
		t.Fatal(err)
	}
}
