package sqlitestore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// TestDerivedSorts: with sort paths declared derived (DeriveSorts), no
// sort-value rows are written; sorts, keyset pages, filters and counts on
// those paths give what they give with the rows.
func TestDerivedSorts(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	s.DeriveSorts(map[string]map[string]store.SortSource{"Observation": {
		"_sort.code.a": {Path: "code.c"}, "_sort.code.d": {Path: "code.c", Max: true},
		"_sort.date.a": {Path: "date.lo"}, "_sort.date.d": {Path: "date.hi", Max: true},
	}})
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []*store.Resource
	for i := range 60 {
		idx := map[string]any{"g": float64(i % 3)}
		var codes []any
		for j := range i % 4 { // 0 to 3 codes; none for every fourth
			codes = append(codes, fmt.Sprintf("c%02d", (i*7+j*13)%17))
		}
		if len(codes) > 0 {
			idx["code"] = map[string]any{"c": codes}
		}
		var dates []any
		for j := range i % 3 { // 0 to 2 ranges
			lo := t0.Add(time.Duration((i*5+j*11)%23) * time.Hour)
			dates = append(dates, map[string]any{"lo": lo, "hi": lo.Add(time.Duration(1+(i+j)%30) * time.Hour)})
		}
		if len(dates) > 0 {
			idx["date"] = dates
		}
		r := &store.Resource{Type: "Observation", ID: fmt.Sprintf("o%02d", (i*37)%60), VersionID: 1, LastUpdated: t0, JSON: []byte(`{}`), Index: idx}
		// The sort values as package search extracts them: the bounds of
		// the sources.
		sorts := map[string]any{}
		for _, p := range []string{"code", "date"} {
			src := map[string]string{"code": "code.c", "date": "date.lo"}[p]
			srcD := map[string]string{"code": "code.c", "date": "date.hi"}[p]
			a, d := store.SortValueOf(r, store.SortKey{Path: src}), store.SortValueOf(r, store.SortKey{Path: srcD, Desc: true})
			if a != nil {
				sorts[p] = map[string]any{"a": a, "d": d}
			}
		}
		idx["_sort"] = sorts
		rs = append(rs, r)
	}
	if err := s.InsertMany(ctx, rs[:30]); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs[30:] {
		if err := s.Apply(ctx, []store.Write{{Next: r}}); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM vals v JOIN paths p ON p.pid=v.pid WHERE p.path LIKE '\\_sort.%' ESCAPE '\\'").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d sort-value rows written (%v), want none", n, err)
	}
	ids := func(f *store.Filter, opt store.FindOptions) []string {
		t.Helper()
		cur, err := s.Find(ctx, "Observation", f, opt)
		if err != nil {
			t.Fatal(err)
		}
		defer cur.Close(ctx)
		var out []string
		for {
			r, err := cur.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				return out
			}
			out = append(out, r.ID)
		}
	}
	for _, keys := range [][]store.SortKey{
		{{Path: "_sort.code.a"}}, {{Path: "_sort.code.d", Desc: true}}, {{Path: "_sort.date.a"}}, {{Path: "_sort.date.d", Desc: true}},
		{{Path: "_sort.code.a"}, {Path: "_sort.date.d", Desc: true}},
	} {
		for _, f := range []*store.Filter{store.All(), store.Eq("g", float64(1))} {
			var sel []*store.Resource
			for _, r := range rs {
				if f.Match(r) {
					sel = append(sel, r)
				}
			}
			slices.SortFunc(sel, func(a, b *store.Resource) int {
				return store.ComparePositions(store.PositionOf(a, keys), store.PositionOf(b, keys), keys)
			})
			var want []string
			for _, r := range sel {
				want = append(want, r.ID)
			}
			if got := ids(f, store.FindOptions{Sort: keys}); !slices.Equal(got, want) {
				t.Errorf("sort %v: got %v\nwant %v", keys, got, want)
			}
			// Keyset pages of 7, positions from the stored index.
			var paged []string
			var after *store.Position
			for range 20 {
				cur, err := s.Find(ctx, "Observation", f, store.FindOptions{Sort: keys, Limit: 7, After: after})
				if err != nil {
					t.Fatal(err)
				}
				got := 0
				for {
					r, err := cur.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if r == nil {
						break
					}
					paged = append(paged, r.ID)
					p := store.PositionOf(r, keys)
					after = &p
					got++
				}
				_ = cur.Close(ctx)
				if got < 7 {
					break
				}
			}
			if !slices.Equal(paged, want) {
				t.Errorf("sort %v in pages of 7: got %v\nwant %v", keys, paged, want)
			}
		}
	}
	// A filter on a derived path is checked on the stored index.
	f := store.Eq("_sort.code.a", "c03")
	var want []string
	for _, r := range rs {
		if f.Match(r) {
			want = append(want, r.ID)
		}
	}
	slices.Sort(want)
	got := ids(f, store.FindOptions{})
	slices.Sort(got)
	if len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("filter on a derived path: got %v, want %v", got, want)
	}
	if c, err := s.Count(ctx, "Observation", f); err != nil || int(c) != len(want) {
		t.Errorf("count on a derived path = %d, %v; want %d", c, err, len(want))
	}
	// Against its direction a derived path is refused, not mis-sorted.
	if _, err := s.Find(ctx, "Observation", store.All(), store.FindOptions{Sort: []store.SortKey{{Path: "_sort.code.a", Desc: true}}}); !outcome.Is(err, outcome.NotSupported) {
		t.Errorf("a derived path against its direction: %v", err)
	}
	// The first page walks the source's index entries in order.
	plan := queryPlan(t, s, "Observation", store.All(), store.FindOptions{Sort: []store.SortKey{{Path: "_sort.date.d", Desc: true}}, Limit: 10})
	if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || !strings.Contains(plan, "SEARCH s USING PRIMARY KEY (pid=?)") {
		t.Errorf("a derived sort does not walk its source's index:\n%s", plan)
	}
}
