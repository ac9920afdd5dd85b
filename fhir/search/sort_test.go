package search

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"testing"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/memstore"
)

// TestSortValuesAtWriteTime extracts sort values and sorts by them in a
// store, in both directions and with several keys, against the order the
// query's own SortValue defines.
func TestSortValuesAtWriteTime(t *testing.T) {
	reg := testRegistry(t)
	docs := map[string]string{
		"o1": `{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"code":"b"}]},"effectivePeriod":{"start":"2020-01-01","end":"2020-12-31"},"valueQuantity":{"value":5}}`,
		"o2": `{"resourceType":"Observation","id":"o2","status":"amended","code":{"coding":[{"code":"a"},{"code":"z"}]},"effectiveDateTime":"2020-06-01","valueQuantity":{"value":7}}`,
		"o3": `{"resourceType":"Observation","id":"o3","status":"final","code":{"coding":[{"code":"c"}]},"effectiveDateTime":"2019-03","valueQuantity":{"value":5}}`,
		"o4": `{"resourceType":"Observation","id":"o4","status":"final","code":{"coding":[{"code":"c"}]}}`,
	}
	ctx := context.Background()
	st := memstore.New()
	for id, js := range docs {
		idx, err := reg.Extract("Observation", []byte(js))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Create(ctx, &store.Resource{Type: "Observation", ID: id, VersionID: 1, Index: idx, JSON: []byte(js)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		sort string
		want []string
	}{
		{"date", []string{"o3", "o1", "o2", "o4"}},  // by the start of each range; no date last
		{"-date", []string{"o1", "o2", "o3", "o4"}}, // by the end of each range
		{"code", []string{"o2", "o1", "o3", "o4"}},  // smallest code
		{"-code", []string{"o2", "o3", "o4", "o1"}}, // largest code, ties by id
		{"status,-value-quantity", []string{"o2", "o1", "o3", "o4"}},
		{"-_id", []string{"o4", "o3", "o2", "o1"}},
	} {
		q, err := reg.Parse("Observation", url.Values{"_sort": {c.sort}}, true)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := st.Find(ctx, "Observation", store.All(), store.FindOptions{Sort: q.StoreSort()})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for r, _ := cur.Next(ctx); r != nil; r, _ = cur.Next(ctx) {
			got = append(got, r.ID)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("_sort=%s: got %v, want %v", c.sort, got, c.want)
		}
	}
}

// TestSortSourcesMatchSortValues: for every official R4 example and every
// derived sort path, the extracted sort value is the bound store.SortValueOf
// takes of the declared source path, so a store that derives it sorts the
// same way.
func TestSortSourcesMatchSortValues(t *testing.T) {
	reg := testRegistry(t)
	sources := reg.SortSources()
	if len(sources["Observation"]) == 0 || sources["Observation"]["_sort.date.a"] != (store.SortSource{Path: "date.lo"}) ||
		sources["Observation"]["_sort.code.d"] != (store.SortSource{Path: "code.c", Max: true}) {
		t.Fatalf("Observation sources: %v", sources["Observation"])
	}
	if _, ok := sources["Observation"]["_sort.subject.a"]; ok {
		t.Error("a reference's sort value is declared derived")
	}
	checked := 0
	eachExample(t, reg, func(f, typ string, idx map[string]any) {
		r := &store.Resource{Index: idx}
		for path, src := range sources[typ] {
			want := store.SortValueOf(r, store.SortKey{Path: path, Desc: src.Max})
			got := store.SortValueOf(r, store.SortKey{Path: src.Path, Desc: src.Max})
			if want != nil {
				checked++
			}
			if w, g := fmt.Sprint(want), fmt.Sprint(got); w != g {
				t.Errorf("%s %s: sort value %s, source %s gives %s", filepath.Base(f), path, w, src.Path, g)
			}
		}
	})
	if checked < 500 {
		t.Errorf("only %d sort values checked", checked)
	}
}
