package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/server"
	"github.com/casefhir/casefhir/server/servertest"
)

const patientJSON = `{"resourceType":"Patient","name":[{"family":"Chalmers","given":["Peter"]}],"gender":"male","birthDate":"1974-12-25","identifier":[{"system":"urn:oid:1.2.36.146.595.217.0.1","value":"12345"}]}`

func wantStatus(t *testing.T, r *servertest.Response, want int) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body: %s", r.Status, want, r.Body)
	}
}

func wantIssue(t *testing.T, r *servertest.Response, code string) {
	t.Helper()
	for _, c := range r.IssueCodes() {
		if c == code {
			return
		}
	}
	t.Fatalf("OperationOutcome issue codes %v, want %q; body: %s", r.IssueCodes(), code, r.Body)
}

func create(t *testing.T, s *servertest.Server, typ, body string) (id string, r *servertest.Response) {
	t.Helper()
	r = s.Do(t, "POST", typ, body)
	wantStatus(t, r, 201)
	m := r.JSON()
	id, _ = m["id"].(string)
	if id == "" {
		t.Fatalf("created resource has no id: %s", r.Body)
	}
	return id, r
}

func TestCreateReadVReadUpdateDelete(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	id, r := create(t, s, "Patient", patientJSON)
	if loc := r.Header.Get("Location"); loc != s.URL+"/Patient/"+id+"/_history/1" {
		t.Errorf("Location %q", loc)
	}
	if et := r.Header.Get("ETag"); et != `W/"1"` {
		t.Errorf("ETag %q", et)
	}
	if r.Header.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q", ct)
	}
	meta, _ := r.JSON()["meta"].(map[string]any)
	if meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Errorf("meta %v", meta)
	}

	rd := s.Do(t, "GET", "Patient/"+id, nil)
	wantStatus(t, rd, 200)
	if string(rd.Body) != string(r.Body) {
		t.Errorf("read differs from create response:\n%s\n%s", rd.Body, r.Body)
	}

	upd := strings.Replace(patientJSON, `"resourceType":"Patient"`, `"resourceType":"Patient","id":"`+id+`"`, 1)
	upd = strings.Replace(upd, "Chalmers", "Windsor", 1)
	u := s.Do(t, "PUT", "Patient/"+id, upd)
	wantStatus(t, u, 200)
	if u.Header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag after update %q", u.Header.Get("ETag"))
	}
	v1 := s.Do(t, "GET", "Patient/"+id+"/_history/1", nil)
	wantStatus(t, v1, 200)
	if !strings.Contains(string(v1.Body), "Chalmers") {
		t.Errorf("vread 1: %s", v1.Body)
	}
	v2 := s.Do(t, "GET", "Patient/"+id+"/_history/2", nil)
	wantStatus(t, v2, 200)
	if !strings.Contains(string(v2.Body), "Windsor") {
		t.Errorf("vread 2: %s", v2.Body)
	}
	wantIssue(t, s.Do(t, "GET", "Patient/"+id+"/_history/3", nil), "not-found")

	d := s.Do(t, "DELETE", "Patient/"+id, nil)
	wantStatus(t, d, 204)
	g := s.Do(t, "GET", "Patient/"+id, nil)
	wantStatus(t, g, 410)
	wantIssue(t, g, "deleted")
	// history stays readable
	wantStatus(t, s.Do(t, "GET", "Patient/"+id+"/_history/2", nil), 200)
	h := s.Do(t, "GET", "Patient/"+id+"/_history", nil)
	wantStatus(t, h, 200)
	entries, _ := h.JSON()["entry"].([]any)
	if len(entries) != 3 {
		t.Fatalf("history has %d entries, want 3: %s", len(entries), h.Body)
	}
	first := entries[0].(map[string]any)
	if req := first["request"].(map[string]any); req["method"] != "DELETE" {
		t.Errorf("newest history entry %v, want the DELETE", req)
	}
	// delete is idempotent
	wantStatus(t, s.Do(t, "DELETE", "Patient/"+id, nil), 204)
	// re-create by update after delete
	rc := s.Do(t, "PUT", "Patient/"+id, upd)
	wantStatus(t, rc, 201)
	if rc.Header.Get("ETag") != `W/"4"` {
		t.Errorf("ETag after re-create %q", rc.Header.Get("ETag"))
	}
	wantStatus(t, s.Do(t, "GET", "Patient/unknown-id", nil), 404)
}

func TestUpdateAsCreateAndIDRules(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	body := `{"resourceType":"Patient","id":"client-chosen-1","active":true}`
	r := s.Do(t, "PUT", "Patient/client-chosen-1", body)
	wantStatus(t, r, 201)
	if !strings.HasSuffix(r.Header.Get("Location"), "/Patient/client-chosen-1/_history/1") {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	wantIssue(t, s.Do(t, "PUT", "Patient/other", body), "invalid")
	wantIssue(t, s.Do(t, "PUT", "Patient/x1", `{"resourceType":"Patient","active":true}`), "required")
	wantIssue(t, s.Do(t, "POST", "Observation", `{"resourceType":"Patient"}`), "invalid")
	// create ignores a client id
	id, _ := create(t, s, "Patient", body)
	if id == "client-chosen-1" {
		t.Error("create kept the client's id")
	}
}

func TestInvalidContent(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	cases := []struct {
		name, body string
		status     int
	}{
		{"not json", `{"resourceType":`, 400},
		{"unknown element", `{"resourceType":"Patient","foo":1}`, 400},
		{"wrong type", `{"resourceType":"Patient","active":"yes"}`, 400},
		{"bad code", `{"resourceType":"Patient","gender":"robot"}`, 400},
		{"bad date", `{"resourceType":"Patient","birthDate":"1974-13-45"}`, 400},
		{"empty", ``, 400},
		{"array", `[]`, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.Do(t, "POST", "Patient", c.body)
			wantStatus(t, r, c.status)
			if r.JSON()["resourceType"] != "OperationOutcome" {
				t.Fatalf("not an OperationOutcome: %s", r.Body)
			}
		})
	}
	r := s.Do(t, "POST", "Patient", `{"resourceType":"Patient","name":[{"given":[1]}]}`)
	wantStatus(t, r, 400)
	if !strings.Contains(string(r.Body), `"expression"`) {
		t.Errorf("no FHIRPath expression in %s", r.Body)
	}
	// nothing stored
	h := s.Do(t, "GET", "Patient/_history", nil)
	wantStatus(t, h, 200)
	if _, ok := h.JSON()["entry"]; ok {
		t.Errorf("invalid creates were stored: %s", h.Body)
	}
}

func TestOptimisticLockingAndConditionalRead(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	id, c := create(t, s, "Patient", patientJSON)
	body := strings.Replace(patientJSON, `"resourceType":"Patient"`, `"resourceType":"Patient","id":"`+id+`"`, 1)
	wantStatus(t, s.Do(t, "PUT", "Patient/"+id, body, "If-Match", `W/"1"`), 200)
	r := s.Do(t, "PUT", "Patient/"+id, body, "If-Match", `W/"1"`)
	wantStatus(t, r, 412)
	wantIssue(t, r, "conflict")

	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil, "If-None-Match", `W/"2"`), 304)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil, "If-None-Match", `W/"1"`), 200)
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil, "If-Modified-Since", future), 304)
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil, "If-Modified-Since", past), 200)
	_ = c
}

func TestPatch(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	id, _ := create(t, s, "Patient", patientJSON)
	patch := `[{"op":"replace","path":"/gender","value":"female"},{"op":"add","path":"/active","value":true}]`
	r := s.Do(t, "PATCH", "Patient/"+id, patch, "Content-Type", "application/json-patch+json")
	wantStatus(t, r, 200)
	m := r.JSON()
	if m["gender"] != "female" || m["active"] != true {
		t.Errorf("patched: %s", r.Body)
	}
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("ETag %q", r.Header.Get("ETag"))
	}
	// an invalid result is rejected and nothing changes
	bad := `[{"op":"replace","path":"/gender","value":"robot"}]`
	wantStatus(t, s.Do(t, "PATCH", "Patient/"+id, bad, "Content-Type", "application/json-patch+json"), 400)
	// a failed test op is 422
	tst := `[{"op":"test","path":"/gender","value":"male"}]`
	wantStatus(t, s.Do(t, "PATCH", "Patient/"+id, tst, "Content-Type", "application/json-patch+json"), 422)
	// wrong content type
	wantStatus(t, s.Do(t, "PATCH", "Patient/"+id, patch, "Content-Type", "application/fhir+json"), 415)
	// stale If-Match
	wantStatus(t, s.Do(t, "PATCH", "Patient/"+id, patch, "Content-Type", "application/json-patch+json", "If-Match", `W/"1"`), 412)
	g := s.Do(t, "GET", "Patient/"+id, nil)
	if g.Header.Get("ETag") != `W/"2"` {
		t.Errorf("failed patches changed the resource: %s", g.Header.Get("ETag"))
	}
}

func TestPreferFormatPrettySummaryElements(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	r := s.Do(t, "POST", "Patient", patientJSON, "Prefer", "return=minimal")
	wantStatus(t, r, 201)
	if len(r.Body) != 0 {
		t.Errorf("return=minimal sent a body: %s", r.Body)
	}
	loc := r.Header.Get("Location")
	id := strings.Split(strings.TrimPrefix(loc, s.URL+"/Patient/"), "/")[0]
	r = s.Do(t, "POST", "Patient", patientJSON, "Prefer", "return=OperationOutcome")
	wantStatus(t, r, 201)
	if r.JSON()["resourceType"] != "OperationOutcome" {
		t.Errorf("return=OperationOutcome: %s", r.Body)
	}
	p := s.Do(t, "GET", "Patient/"+id+"?_pretty=true", nil)
	if !strings.Contains(string(p.Body), "\n  ") {
		t.Errorf("_pretty not indented: %s", p.Body)
	}
	wantStatus(t, s.Do(t, "GET", "Patient/"+id+"?_format=json", nil), 200)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id+"?_format=application/fhir%2Bjson", nil), 200)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id+"?_format=xml", nil), 406)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil, "Accept", "application/fhir+xml"), 406)
	wantStatus(t, s.Do(t, "POST", "Patient", patientJSON, "Content-Type", "application/fhir+xml"), 415)
	e := s.Do(t, "GET", "Patient/"+id+"?_elements=gender", nil)
	m := e.JSON()
	if m["gender"] == nil || m["name"] != nil || m["birthDate"] != nil {
		t.Errorf("_elements=gender: %s", e.Body)
	}
	if !strings.Contains(string(e.Body), "SUBSETTED") {
		t.Errorf("_elements result not tagged SUBSETTED: %s", e.Body)
	}
	sm := s.Do(t, "GET", "Patient/"+id+"?_summary=true", nil)
	if sm.JSON()["name"] == nil {
		t.Errorf("_summary=true lost name: %s", sm.Body)
	}
}

func TestHistoryLevelsAndPaging(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	// the server seeds its published artefacts at start
	seeded := 0
	if e, ok := s.Do(t, "GET", "_history?_count=1000", nil).JSON()["entry"].([]any); ok {
		for _, x := range e {
			if !strings.Contains(x.(map[string]any)["fullUrl"].(string), "/AuditEvent/") {
				seeded++
			}
		}
	}
	var ids []string
	for i := 0; i < 5; i++ {
		id, _ := create(t, s, "Patient", patientJSON)
		ids = append(ids, id)
	}
	create(t, s, "Organization", `{"resourceType":"Organization","name":"Acme"}`)
	mid := time.Now().UTC()
	time.Sleep(5 * time.Millisecond)
	body := strings.Replace(patientJSON, `"resourceType":"Patient"`, `"resourceType":"Patient","id":"`+ids[0]+`"`, 1)
	wantStatus(t, s.Do(t, "PUT", "Patient/"+ids[0], body), 200)

	// count counts entries, leaving out the AuditEvents the requests
	// themselves leave.
	count := func(r *servertest.Response) int {
		e, _ := r.JSON()["entry"].([]any)
		n := 0
		for _, x := range e {
			if !strings.Contains(x.(map[string]any)["fullUrl"].(string), "/AuditEvent/") {
				n++
			}
		}
		return n
	}
	typ := s.Do(t, "GET", "Patient/_history", nil)
	wantStatus(t, typ, 200)
	if n := count(typ); n != 6 {
		t.Errorf("type history: %d entries, want 6", n)
	}
	sys := s.Do(t, "GET", "_history?_count=1000", nil)
	if n := count(sys) - seeded; n != 7 {
		t.Errorf("system history: %d entries besides the %d seeded artefacts, want 7", n, seeded)
	}
	since := s.Do(t, "GET", "Patient/_history?_since="+mid.Format(time.RFC3339Nano), nil)
	if n := count(since); n != 1 {
		t.Errorf("_since: %d entries, want 1: %s", n, since.Body)
	}
	at := s.Do(t, "GET", "Patient/"+ids[0]+"/_history?_at="+mid.Format(time.RFC3339Nano), nil)
	if n := count(at); n != 1 {
		t.Errorf("_at: %d entries, want 1: %s", n, at.Body)
	}
	// paging visits every version once, even with a write in between
	seen := map[string]int{}
	next := "Patient/_history?_count=2"
	pages := 0
	for next != "" && pages < 10 {
		r := s.Do(t, "GET", next, nil)
		wantStatus(t, r, 200)
		if pages == 0 {
			create(t, s, "Patient", patientJSON) // must not shift later pages
		}
		pages++
		next = ""
		for _, e := range r.JSON()["entry"].([]any) {
			em := e.(map[string]any)
			res := em["resource"].(map[string]any)
			seen[fmt.Sprintf("%s/%s", res["id"], res["meta"].(map[string]any)["versionId"])]++
		}
		for _, l := range r.JSON()["link"].([]any) {
			lm := l.(map[string]any)
			if lm["relation"] == "next" {
				next = lm["url"].(string)
				if !strings.HasPrefix(next, s.URL) {
					t.Fatalf("next link not absolute: %s", next)
				}
			}
		}
	}
	if len(seen) != 6 || pages != 3 {
		t.Errorf("paging saw %d versions in %d pages, want 6 in 3: %v", len(seen), pages, seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s seen %d times", k, n)
		}
	}
	wantIssue(t, s.Do(t, "GET", "Patient/_history?_since=yesterday", nil), "invalid")
}

func TestErrorsAreOperationOutcomes(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Config: server.Config{MaxBodyBytes: 4096}})
	cases := []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "NotAType/1", "", 404, "not-found"},
		{"GET", "Patient/bad id!", "", 400, "invalid"},
		{"POST", "Patient/1", patientJSON, 405, "not-supported"},
		{"POST", "Patient", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">` + strings.Repeat("x", 5000) + `</div>"}}`, 413, "too-long"},
		{"GET", "/nothing-here", "", 404, "not-found"},
		{"GET", "$unknown-op", "", 404, "not-supported"},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path[:min(len(c.path), 20)], func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := s.Do(t, c.method, c.path, body)
			wantStatus(t, r, c.status)
			wantIssue(t, r, c.code)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestHealthReadyMetricsCapabilities(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	wantStatus(t, s.Do(t, "GET", "/healthz", nil), 200)
	wantStatus(t, s.Do(t, "GET", "/readyz", nil), 200)
	create(t, s, "Patient", patientJSON)
	m := s.Do(t, "GET", "/metrics", nil)
	wantStatus(t, m, 200)
	for _, want := range []string{`casefhir_http_requests_total{interaction="create",code="Created"} 1`,
		"casefhir_http_request_duration_seconds_bucket", `casefhir_store_operation_duration_seconds_count{op="read"}`} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("metrics lack %q:\n%s", want, m.Body)
		}
	}
	c := s.Do(t, "GET", "metadata", nil)
	wantStatus(t, c, 200)
	cm := c.JSON()
	if cm["resourceType"] != "CapabilityStatement" || cm["fhirVersion"] != "4.0.1" {
		t.Fatalf("metadata: %.300s", c.Body)
	}
	rest := cm["rest"].([]any)[0].(map[string]any)
	res := rest["resource"].([]any)
	if len(res) != 146 {
		t.Errorf("%d resource types, want 146", len(res))
	}
	if !strings.Contains(string(c.Body), "application/json-patch+json") {
		t.Error("patch format missing")
	}
}
