package server_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server/auth/authtest"
	"github.com/casefhir/casefhir/server/servertest"
)

// TestPatientEverything: the patient, its compartment and what it
// references; nothing of another patient; _type, _since, _count paging.
func TestPatientEverything(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	org, _ := create(t, s, "Organization", `{"resourceType":"Organization","name":"Clinic"}`)
	pr, _ := create(t, s, "Practitioner", `{"resourceType":"Practitioner","name":[{"family":"Doc"}]}`)
	pid, _ := create(t, s, "Patient", `{"resourceType":"Patient","name":[{"family":"Everything"}],`+
		`"generalPractitioner":[{"reference":"Practitioner/`+pr+`"}],"managingOrganization":{"reference":"Organization/`+org+`"}}`)
	other, _ := create(t, s, "Patient", `{"resourceType":"Patient","name":[{"family":"Other"}]}`)
	obs := func(p string) string {
		id, _ := create(t, s, "Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p+`"}}`)
		return "Observation/" + id
	}
	o1, o2 := obs(pid), obs(pid)
	oOther := obs(other)
	cond, _ := create(t, s, "Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/`+pid+`"},"code":{"text":"c"}}`)

	r := s.Do(t, "GET", "Patient/"+pid+"/$everything", nil)
	wantStatus(t, r, 200)
	keys := bundleKeys(r.JSON())
	if len(keys) == 0 || keys[0] != "Patient/"+pid {
		t.Fatalf("the patient is not first: %v", keys)
	}
	for _, want := range []string{o1, o2, "Condition/" + cond, "Practitioner/" + pr, "Organization/" + org} {
		if !slices.Contains(keys, want) {
			t.Errorf("$everything lacks %s: %v", want, keys)
		}
	}
	if slices.Contains(keys, oOther) || slices.Contains(keys, "Patient/"+other) {
		t.Errorf("$everything has another patient's data: %v", keys)
	}
	if r.JSON()["type"] != "searchset" {
		t.Errorf("bundle type %v", r.JSON()["type"])
	}

	// _type narrows (the patient stays).
	keys = bundleKeys(s.Do(t, "GET", "Patient/"+pid+"/$everything?_type=Condition", nil).JSON())
	if !slices.Equal(keys, []string{"Patient/" + pid, "Condition/" + cond}) {
		t.Errorf("_type=Condition: %v", keys)
	}

	// _since keeps what changed at or after it.
	time.Sleep(10 * time.Millisecond)
	since := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(10 * time.Millisecond)
	o3 := obs(pid)
	keys = bundleKeys(s.Do(t, "GET", "Patient/"+pid+"/$everything?_since="+since, nil).JSON())
	if !slices.Equal(keys, []string{"Patient/" + pid, o3}) {
		t.Errorf("_since: %v", keys)
	}

	// _count pages with next links that cover everything once.
	whole := s.Do(t, "GET", "Patient/"+pid+"/$everything", nil).JSON()
	for _, n := range []int{1, 2, 3} {
		checkPaged(t, s, "Patient/"+pid+"/$everything?_count="+strconv.Itoa(n), n, whole)
	}
	wantStatus(t, s.Do(t, "GET", "Patient/nobody/$everything", nil), 404)

	capb := s.Do(t, "GET", "metadata", nil)
	if !strings.Contains(string(capb.Body), "http://hl7.org/fhir/OperationDefinition/Patient-everything") {
		t.Error("the CapabilityStatement does not list Patient $everything")
	}
}

// TestPatientEverythingSMART: a patient-bound token gets its own patient's
// data only; another patient's $everything is 404; types without read
// scope are left out.
func TestPatientEverythingSMART(t *testing.T) {
	e := startSMART(t, smartOptions{AuditOff: true}, authtest.Client{ID: "backend"},
		authtest.Client{ID: "ev-app", Claims: map[string]any{"patient": "ev-p1"}})
	all := e.prov.Token(t, "backend", "system/*.cruds")
	for _, p := range []string{"ev-p1", "ev-p2"} {
		wantStatus(t, e.do(t, all, "PUT", "Patient/"+p, `{"resourceType":"Patient","id":"`+p+`"}`), 201)
	}
	mk := func(typ, body string) string {
		r := e.do(t, all, "POST", typ, body)
		wantStatus(t, r, 201)
		return typ + "/" + r.JSON()["id"].(string)
	}
	o1 := mk("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/ev-p1"}}`)
	mk("Observation", `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/ev-p2"}}`)
	c1 := mk("Condition", `{"resourceType":"Condition","subject":{"reference":"Patient/ev-p1"},"code":{"text":"c"}}`)

	pt := e.prov.Token(t, "ev-app", "patient/Patient.rs patient/Observation.rs")
	r := e.do(t, pt, "GET", "Patient/ev-p1/$everything", nil)
	wantStatus(t, r, 200)
	if keys := bundleKeys(r.JSON()); !slices.Equal(keys, []string{"Patient/ev-p1", o1}) {
		t.Errorf("patient token $everything: %v (%s has no scope)", keys, c1)
	}
	wantStatus(t, e.do(t, pt, "GET", "Patient/ev-p2/$everything", nil), 404)
}
