package server_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/casefhir/casefhir/server/servertest"
)

// TestConcurrentConditionalCreateMakesOne fires many identical
// If-None-Exist creates at once: exactly one resource results, every
// request succeeds (201 for the one that created, 200 for the others) and
// all name the same resource.
func TestConcurrentConditionalCreateMakesOne(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	const n = 24
	body := `{"resourceType":"Patient","identifier":[{"system":"urn:test:mrn","value":"race-1"}],"active":true}`
	var wg sync.WaitGroup
	statuses := make([]int, n)
	locs := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := s.Do(t, "POST", "Patient", body, "If-None-Exist", "identifier=urn:test:mrn|race-1")
			statuses[i] = r.Status
			locs[i] = r.Header.Get("Location")
		}(i)
	}
	wg.Wait()
	created := 0
	for i, st := range statuses {
		switch st {
		case 201:
			created++
		case 200:
		default:
			t.Errorf("request %d: status %d", i, st)
		}
	}
	if created != 1 {
		t.Errorf("%d creates answered 201, want exactly 1", created)
	}
	for _, l := range locs {
		if l != locs[0] {
			t.Errorf("locations differ: %s vs %s", l, locs[0])
		}
	}
	r := s.Do(t, "GET", "Patient?identifier=urn:test:mrn|race-1", nil)
	wantStatus(t, r, 200)
	if e, _ := r.JSON()["entry"].([]any); len(e) != 1 {
		t.Fatalf("%d resources match after %d concurrent conditional creates, want 1", len(e), n)
	}
}

func TestConditionalCreateUpdateDelete(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	pat := func(v string) string {
		return `{"resourceType":"Patient","identifier":[{"system":"urn:test:mrn","value":"` + v + `"}],"active":true}`
	}
	// conditional create: 0 matches creates, 1 returns the match, >1 is 412
	r := s.Do(t, "POST", "Patient", pat("a"), "If-None-Exist", "identifier=urn:test:mrn|a")
	wantStatus(t, r, 201)
	loc := r.Header.Get("Location")
	r = s.Do(t, "POST", "Patient", pat("a"), "If-None-Exist", "identifier=urn:test:mrn|a")
	wantStatus(t, r, 200)
	if r.Header.Get("Location") != loc {
		t.Errorf("conditional create match: Location %q, want %q", r.Header.Get("Location"), loc)
	}
	create(t, s, "Patient", pat("dup"))
	create(t, s, "Patient", pat("dup"))
	r = s.Do(t, "POST", "Patient", pat("dup"), "If-None-Exist", "identifier=urn:test:mrn|dup")
	wantStatus(t, r, 412)
	wantIssue(t, r, "multiple-matches")
	wantStatus(t, s.Do(t, "POST", "Patient", pat("x"), "If-None-Exist", "bogus-param=1"), 400)

	// conditional update: 0 creates, 1 updates, >1 is 412
	r = s.Do(t, "PUT", "Patient?identifier=urn:test:mrn|b", pat("b"))
	wantStatus(t, r, 201)
	id := strings.Split(strings.TrimPrefix(r.Header.Get("Location"), s.URL+"/Patient/"), "/")[0]
	r = s.Do(t, "PUT", "Patient?identifier=urn:test:mrn|b", strings.Replace(pat("b"), "true", "false", 1))
	wantStatus(t, r, 200)
	if r.Header.Get("ETag") != `W/"2"` || !strings.Contains(r.Header.Get("Location"), "/Patient/"+id+"/") {
		t.Errorf("conditional update hit the wrong resource: %v", r.Header)
	}
	wantStatus(t, s.Do(t, "PUT", "Patient?identifier=urn:test:mrn|dup", pat("dup")), 412)
	wrongID := `{"resourceType":"Patient","id":"other","identifier":[{"system":"urn:test:mrn","value":"b"}]}`
	wantStatus(t, s.Do(t, "PUT", "Patient?identifier=urn:test:mrn|b", wrongID), 400)

	// conditional delete: >1 is 412, 1 deletes, 0 succeeds
	wantStatus(t, s.Do(t, "DELETE", "Patient?identifier=urn:test:mrn|dup", nil), 412)
	wantStatus(t, s.Do(t, "DELETE", "Patient?identifier=urn:test:mrn|b", nil), 204)
	wantStatus(t, s.Do(t, "GET", "Patient/"+id, nil), 410)
	wantStatus(t, s.Do(t, "DELETE", "Patient?identifier=urn:test:mrn|b", nil), 204)

	// conditional patch
	patch := `[{"op":"replace","path":"/active","value":false}]`
	r = s.Do(t, "PATCH", "Patient?identifier=urn:test:mrn|a", patch, "Content-Type", "application/json-patch+json")
	wantStatus(t, r, 200)
	if r.JSON()["active"] != false {
		t.Errorf("conditional patch: %s", r.Body)
	}
}
