package interaction

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// jsonStore records whether a read asked for the search values; its
// ReadJSON returns no Index, as store.JSONReader allows.
type jsonStore struct {
	*countingStore
	reads, jsonReads int
}

func (s *jsonStore) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	s.reads++
	return s.countingStore.Read(ctx, typ, id)
}

func (s *jsonStore) ReadJSON(ctx context.Context, typ, id string) (*store.Resource, error) {
	s.jsonReads++
	r, err := s.countingStore.Read(ctx, typ, id)
	if r != nil {
		cp := *r
		cp.Index = nil
		r = &cp
	}
	return r, err
}

// testAccess is a caller bounded to patient (when set) with restrictions.
type testAccess struct {
	patient      string
	restrictions []url.Values
}

func (a testAccess) Allow(Action, string) error { return nil }
func (a testAccess) Compartment(Action, string) (string, bool) {
	return a.patient, a.patient != ""
}
func (a testAccess) Restrictions(Action, string) []url.Values { return a.restrictions }
func (a testAccess) Subject() string                          { return "test" }

// TestReadSkipsSearchValuesOnlyWhenAccessIgnoresThem: a read asks the
// store for the search values only when the caller's access check looks at
// them (a patient compartment, granular restrictions), and those checks
// still hold.
func TestReadSkipsSearchValuesOnlyWhenAccessIgnoresThem(t *testing.T) {
	h0, cs := newSearchFixture(t)
	js := &jsonStore{countingStore: cs}
	h := New(Options{Store: js, Search: h0.o.Search, Now: h0.o.Now})
	read := func(access Access, id string) int {
		t.Helper()
		req := &Request{Method: http.MethodGet, Route: Route{Kind: KindRead, Type: "Observation", ID: id}, BaseURL: "http://x/fhir"}
		if access != nil {
			req.Access = access
		}
		resp, err := h.Read(context.Background(), req)
		if err != nil {
			return outcome.StatusOf(err)
		}
		return resp.Status
	}
	cases := []struct {
		name     string
		access   Access
		id       string
		status   int
		withVals bool
	}{
		{"no access control", nil, "oa", 200, false},
		{"unbounded caller", testAccess{}, "oa", 200, false},
		{"caller bounded to the patient", testAccess{patient: "a"}, "oa", 200, true},
		{"caller bounded to another patient", testAccess{patient: "b"}, "oa", 404, true},
		{"restriction met", testAccess{restrictions: []url.Values{{"subject": {"Patient/a"}}}}, "oa", 200, true},
		{"restriction not met", testAccess{restrictions: []url.Values{{"subject": {"Patient/b"}}}}, "oa", 404, true},
	}
	for _, c := range cases {
		js.reads, js.jsonReads = 0, 0
		if got := read(c.access, c.id); got != c.status {
			t.Errorf("%s: status %d, want %d", c.name, got, c.status)
		}
		if c.withVals && (js.reads != 1 || js.jsonReads != 0) || !c.withVals && (js.reads != 0 || js.jsonReads != 1) {
			t.Errorf("%s: %d reads with search values, %d without", c.name, js.reads, js.jsonReads)
		}
	}
}
