package interaction

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/memstore"
)

// countingStore counts Find calls of the reference store.
type countingStore struct {
	*memstore.Store
	mu    sync.Mutex
	finds int
}

func (m *countingStore) Find(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	m.mu.Lock()
	m.finds++
	m.mu.Unlock()
	return m.Store.Find(ctx, typ, f, opt)
}

func newSearchFixture(t *testing.T) (*Handler, *countingStore) {
	t.Helper()
	b, err := os.ReadFile("../../conformance/artefacts/search-parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := search.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	ms := &countingStore{Store: memstore.New()}
	add := func(js string) {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(js), &head); err != nil {
			t.Fatal(err)
		}
		idx, err := reg.Extract(head.ResourceType, []byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.Create(context.Background(), &store.Resource{Type: head.ResourceType, ID: head.ID, VersionID: 1, JSON: []byte(js), Index: idx}); err != nil {
			t.Fatal(err)
		}
	}
	add(`{"resourceType":"Organization","id":"org1","name":"Acme"}`)
	for i, fam := range []string{"Adams", "Baker", "Clark", "Davis", "Evans"} {
		id := string(rune('a' + i))
		add(`{"resourceType":"Patient","id":"` + id + `","name":[{"family":"` + fam + `"}],"birthDate":"198` + string(rune('0'+i)) + `","managingOrganization":{"reference":"Organization/org1"}}`)
		add(`{"resourceType":"Observation","id":"o` + id + `","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"1"}]},"subject":{"reference":"Patient/` + id + `"}}`)
	}
	h := New(Options{Store: ms, Search: &SearchExecutor{Registry: reg, Store: ms}, Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	return h, ms
}

type bundleJSON struct {
	Total *int `json:"total"`
	Link  []struct{ Relation, URL string }
	Entry []struct {
		FullURL  string `json:"fullUrl"`
		Resource struct {
			ResourceType, ID string
		} `json:"resource"`
		Search struct{ Mode string } `json:"search"`
	} `json:"entry"`
}

func doSearch(t *testing.T, h *Handler, kind Kind, typ, query string) bundleJSON {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Route: Route{Kind: kind, Type: typ}, Query: q, BaseURL: "http://x/fhir"}
	if kind == KindSearchCompartment {
		r.Type, r.ID, r.Compartment = "Patient", strings.Split(typ, "/")[1], strings.Split(typ, "/")[2]
	}
	resp, err := h.Search(context.Background(), r)
	if err != nil {
		t.Fatalf("%s?%s: %v", typ, query, err)
	}
	var b bundleJSON
	if err := json.Unmarshal(resp.Body, &b); err != nil {
		t.Fatalf("bundle: %v\n%s", err, resp.Body)
	}
	return b
}

func entryIDs(b bundleJSON) string {
	var ids []string
	for _, e := range b.Entry {
		ids = append(ids, e.Search.Mode+":"+e.Resource.ResourceType+"/"+e.Resource.ID)
	}
	return strings.Join(ids, " ")
}

func TestSearchExecutor(t *testing.T) {
	h, ms := newSearchFixture(t)
	b := doSearch(t, h, KindSearchType, "Patient", "_sort=-birthdate&_count=2&_total=accurate")
	if got := entryIDs(b); got != "match:Patient/e match:Patient/d" {
		t.Errorf("page 1: %s", got)
	}
	if b.Total == nil || *b.Total != 5 {
		t.Errorf("total %v", b.Total)
	}
	// Paging visits every unchanged match exactly once even when a new
	// match is written meanwhile (it sorts last: it has no birthdate).
	seen := []string{}
	for _, e := range b.Entry {
		seen = append(seen, e.Resource.ID)
	}
	z := &store.Resource{Type: "Patient", ID: "z", VersionID: 1, JSON: []byte(`{"resourceType":"Patient","id":"z"}`), Index: map[string]any{}}
	if err := ms.Create(context.Background(), z); err != nil {
		t.Fatal(err)
	}
	for page := 0; page < 5; page++ {
		next := ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
		if next == "" {
			break
		}
		u, _ := url.Parse(next)
		if !strings.HasPrefix(next, "http://x/fhir/Patient?") {
			t.Fatalf("next link not absolute: %s", next)
		}
		b = doSearch(t, h, KindSearchType, "Patient", u.RawQuery)
		for _, e := range b.Entry {
			seen = append(seen, e.Resource.ID)
		}
	}
	if got := strings.Join(seen, ""); got != "edcbaz" {
		t.Errorf("paged ids %s", got)
	}
	if err := ms.Update(context.Background(), &store.Resource{Type: "Patient", ID: "z", VersionID: 2, Deleted: true}, z); err != nil {
		t.Fatal(err)
	}

	b = doSearch(t, h, KindSearchType, "Observation", "subject:Patient.name=clark&_include=Observation:subject&_include:iterate=Patient:organization")
	if got := entryIDs(b); got != "match:Observation/oc include:Patient/c include:Organization/org1" {
		t.Errorf("chain+include: %s", got)
	}
	b = doSearch(t, h, KindSearchType, "Patient", "_has:Observation:patient:status=final&name=a,b&_revinclude=Observation:subject")
	if got := entryIDs(b); got != "match:Patient/a match:Patient/b include:Observation/oa include:Observation/ob" {
		t.Errorf("_has+revinclude: %s", got)
	}
	b = doSearch(t, h, KindSearchCompartment, "Patient/d/Observation", "")
	if got := entryIDs(b); got != "match:Observation/od" {
		t.Errorf("compartment: %s", got)
	}
	b = doSearch(t, h, KindSearchSystem, "", "_type=Patient,Organization&_id=a,org1")
	if got := entryIDs(b); got != "match:Organization/org1 match:Patient/a" {
		t.Errorf("system: %s", got)
	}
	b = doSearch(t, h, KindSearchType, "Patient", "_summary=count")
	if b.Total == nil || *b.Total != 5 || len(b.Entry) != 0 {
		t.Errorf("_summary=count: %+v", b)
	}
	b = doSearch(t, h, KindSearchType, "Patient", "name=adams&bogus=1")
	if got := entryIDs(b); got != "match:Patient/a outcome:OperationOutcome/" {
		t.Errorf("lenient: %s", got)
	}
	for _, l := range b.Link {
		if l.Relation == "self" && strings.Contains(l.URL, "bogus") {
			t.Errorf("self link keeps the ignored parameter: %s", l.URL)
		}
	}
	// Conditional interactions resolve through the same executor.
	got, err := h.o.Search.(*SearchExecutor).Resolve(context.Background(), "Patient", url.Values{"family": {"baker"}}, nil)
	if err != nil || len(got) != 1 || got[0].ID != "b" {
		t.Errorf("Resolve: %v %v", got, err)
	}
}
