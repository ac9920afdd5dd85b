package interaction

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/casefhir/casefhir/fhir/store"
)

// rowStore counts the rows its Finds return.
type rowStore struct {
	*countingStore
	mu   sync.Mutex
	rows int
}

type rowCursor struct {
	store.Cursor
	s *rowStore
}

func (c rowCursor) Next(ctx context.Context) (*store.Resource, error) {
	res, err := c.Cursor.Next(ctx)
	if res != nil {
		c.s.mu.Lock()
		c.s.rows++
		c.s.mu.Unlock()
	}
	return res, err
}

func (m *rowStore) Find(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	cur, err := m.countingStore.Find(ctx, typ, f, opt)
	if err != nil {
		return nil, err
	}
	return rowCursor{cur, m}, nil
}

// TestPatientEverythingKeyset: a page of Patient $everything reads about a
// page of rows however large the record, and the pages visit every member
// once, in type then id order.
func TestPatientEverythingKeyset(t *testing.T) {
	h0, cs := newSearchFixture(t)
	ms := cs.Store
	rs := &rowStore{countingStore: &countingStore{Store: ms}}
	h := New(Options{Store: rs, Search: h0.o.Search, Now: h0.o.Now})
	reg := h0.o.Search.(*SearchExecutor).Registry
	var want []string
	for i := range 300 {
		id := fmt.Sprintf("big%03d", i)
		js := `{"resourceType":"Observation","id":"` + id + `","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/a"}}`
		idx, err := reg.Extract("Observation", []byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if err := ms.Create(context.Background(), &store.Resource{Type: "Observation", ID: id, VersionID: 1, JSON: []byte(js), Index: idx}); err != nil {
			t.Fatal(err)
		}
		want = append(want, "match:Observation/"+id)
	}
	want = append(want, "match:Observation/oa")
	slices.Sort(want)
	want = append([]string{"match:Patient/a"}, want...)

	page := func(query string) (bundleJSON, int) {
		t.Helper()
		q, _ := url.ParseQuery(query)
		rs.rows = 0
		resp, err := PatientEverything(context.Background(), h, &Request{Method: http.MethodGet, Route: Route{Kind: KindOperation, Type: "Patient", ID: "a", Operation: "everything"}, Query: q, BaseURL: "http://x/fhir"})
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		var b bundleJSON
		if err := json.Unmarshal(resp.Body, &b); err != nil {
			t.Fatal(err)
		}
		return b, rs.rows
	}
	var got []string
	query := "_count=10"
	for pages := 0; query != ""; pages++ {
		if pages > 40 {
			t.Fatal("too many pages")
		}
		b, rows := page(query)
		if rows > 3*10+5 {
			t.Errorf("page %d read %d rows for 10 entries", pages, rows)
		}
		for _, e := range b.Entry {
			if e.Search.Mode == "match" {
				got = append(got, e.Search.Mode+":"+e.Resource.ResourceType+"/"+e.Resource.ID)
			}
		}
		query = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				query = l.URL[strings.Index(l.URL, "?")+1:]
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged %d members, want %d:\n%v", len(got), len(want), got)
	}
	if b, _ := page("_count=400"); len(b.Entry) != 303 || b.Total != nil {
		t.Errorf("one page: %d entries (want the patient, 301 members and the organisation), total %v", len(b.Entry), b.Total)
	}
}
