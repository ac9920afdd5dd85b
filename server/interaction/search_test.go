package interaction

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// searchMemStore is a minimal in-memory Store + JobStore for executor tests:
// Find evaluates filters with store.Filter.Match and counts calls.
type searchMemStore struct {
	store.Store
	mu    sync.Mutex
	res   map[string]*store.Resource
	jobs  map[string]*store.Job
	finds int
}

func (m *searchMemStore) Find(_ context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.finds++
	var out []*store.Resource
	for _, r := range m.res {
		if r.Type == typ && f.Match(r) {
			c := *r
			if opt.IndexOnly {
				c.JSON = nil
			}
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return &memCursor{list: out}, nil
}

func (m *searchMemStore) Types(context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, r := range m.res {
		if !seen[r.Type] {
			seen[r.Type] = true
			out = append(out, r.Type)
		}
	}
	return out, nil
}

func (m *searchMemStore) CreateJob(_ context.Context, j *store.Job) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	j.Version = 1
	c := *j
	m.jobs[j.ID] = &c
	return nil
}

func (m *searchMemStore) GetJob(_ context.Context, id string) (*store.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, outcome.New(outcome.NotFound, "no job")
	}
	c := *j
	return &c, nil
}

func (m *searchMemStore) UpdateJob(context.Context, *store.Job) error { return nil }
func (m *searchMemStore) ListJobs(context.Context, string, bool) ([]*store.Job, error) {
	return nil, nil
}
func (m *searchMemStore) DeleteJob(context.Context, string) error { return nil }

type memCursor struct{ list []*store.Resource }

func (c *memCursor) Next(context.Context) (*store.Resource, error) {
	if len(c.list) == 0 {
		return nil, nil
	}
	r := c.list[0]
	c.list = c.list[1:]
	return r, nil
}
func (c *memCursor) Close(context.Context) error { return nil }

func newSearchFixture(t *testing.T) (*Handler, *searchMemStore) {
	t.Helper()
	b, err := os.ReadFile("../../conformance/artefacts/search-parameters.json")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := search.NewRegistry(b)
	if err != nil {
		t.Fatal(err)
	}
	ms := &searchMemStore{res: map[string]*store.Resource{}, jobs: map[string]*store.Job{}}
	add := func(js string) {
		var head struct{ ResourceType, ID string }
		if err := json.Unmarshal([]byte(js), &head); err != nil {
			t.Fatal(err)
		}
		idx, err := reg.Extract(head.ResourceType, []byte(js))
		if err != nil {
			t.Fatal(err)
		}
		ms.res[head.ResourceType+"/"+head.ID] = &store.Resource{Type: head.ResourceType, ID: head.ID, VersionID: 1, JSON: []byte(js), Index: idx}
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
	// Paging visits every match once even when a new match is written.
	seen := []string{}
	for _, e := range b.Entry {
		seen = append(seen, e.Resource.ID)
	}
	ms.res["Patient/z"] = &store.Resource{Type: "Patient", ID: "z", JSON: []byte(`{"resourceType":"Patient","id":"z"}`), Index: map[string]any{}}
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
	if got := strings.Join(seen, ""); got != "edcba" {
		t.Errorf("paged ids %s", got)
	}
	delete(ms.res, "Patient/z")

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
