package mongostore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// sortFixture returns n Observations with sort values under _sort (as
// package search writes them), some missing, many tied, plus an array path
// (several values: ascending sorts by the smallest, descending by the
// largest) and a few tombstones.
func sortFixture(n int) []*store.Resource {
	rng := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var out []*store.Resource
	for i := range n {
		ix := map[string]any{}
		sortv := map[string]any{}
		if rng.IntN(4) != 0 {
			d := t0.Add(time.Duration(rng.IntN(6)) * 24 * time.Hour)
			sortv["date"] = map[string]any{"a": d, "d": d}
		}
		if rng.IntN(3) != 0 {
			c := []string{"alpha", "beta", "gamma"}[rng.IntN(3)]
			sortv["code"] = map[string]any{"a": c, "d": c}
		}
		if len(sortv) > 0 {
			ix["_sort"] = sortv
		}
		if rng.IntN(5) != 0 {
			ix["n"] = float64(rng.IntN(4))
		}
		switch rng.IntN(3) {
		case 0:
			ix["tag"] = []any{"m", "c", "x"}[rng.IntN(3)]
		case 1:
			ix["tag"] = []any{[]any{"a", "z"}, []any{"b", "k"}, []any{"c"}}[rng.IntN(3)]
		}
		ix["grp"] = []any{"g1", "g2"}[i%2]
		out = append(out, &store.Resource{Type: "Observation", ID: fmt.Sprintf("o%03d", i), VersionID: 1,
			LastUpdated: t0.Add(time.Duration(rng.IntN(20)) * time.Second), JSON: []byte(`{}`), Index: ix})
	}
	return out
}

// TestFindKeysetPaging pages through sorted results with Limit and After
// and checks the rows and their order against store.ComparePositions,
// the contract's reference order: ties by id, missing values last in
// either direction, several keys, arrays by their least (ascending) or
// greatest (descending) value, with and without a filter.
func TestFindKeysetPaging(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	fx := createAll(t, s, sortFixture(50))
	// Two tombstones: never returned.
	for _, r := range fx[:2] {
		del := &store.Resource{Type: r.Type, ID: r.ID, VersionID: 2, LastUpdated: r.LastUpdated, Deleted: true}
		if err := s.Update(ctx, del, r); err != nil {
			t.Fatal(err)
		}
	}
	live := fx[2:]
	k := func(path string, desc bool) store.SortKey { return store.SortKey{Path: path, Desc: desc} }
	sorts := [][]store.SortKey{
		nil,
		{k("_sort.date.a", false)},
		{k("_sort.date.d", true)},
		{k("_sort.code.a", false), k("_sort.date.d", true)},
		{k("_sort.code.a", false), k("n", false)},
		{k("n", true), k("_sort.code.a", false)},
		{k("_sort.code.d", true), k("_sort.date.a", false), k("n", false)},
		{k(store.PathLastUpdated, true)},
		{k(store.PathLastUpdated, false), k("_sort.code.a", false)},
		{k("tag", false)},
		{k("tag", true)},
		{k(store.PathID, true)},
	}
	filters := []*store.Filter{store.All(), store.Eq("grp", "g1")}
	for si, keys := range sorts {
		for fi, f := range filters {
			var want []*store.Resource
			for _, r := range live {
				if f.Match(r) {
					want = append(want, r)
				}
			}
			slices.SortStableFunc(want, func(a, b *store.Resource) int {
				return store.ComparePositions(store.PositionOf(a, keys), store.PositionOf(b, keys), keys)
			})
			for _, limit := range []int{4, 200} {
				var got []string
				var after *store.Position
				for page := 0; page < 200; page++ {
					rs := findPage(t, s, f, store.FindOptions{Sort: keys, Limit: limit, After: after, IndexOnly: page%2 == 1})
					for _, r := range rs {
						got = append(got, r.ID)
					}
					if len(rs) < limit {
						break
					}
					p := store.PositionOf(rs[len(rs)-1], keys)
					after = &p
				}
				if w := ids(want); !slices.Equal(got, w) {
					t.Errorf("sort %d filter %d limit %d:\n got %v\nwant %v", si, fi, limit, got, w)
				}
			}
			// Skip still works (also across the split into with and
			// without a value).
			rs := findPage(t, s, f, store.FindOptions{Sort: keys, Skip: 5, Limit: 9})
			if w := ids(want)[min(5, len(want)):min(14, len(want))]; !slices.Equal(ids(rs), w) {
				t.Errorf("sort %d filter %d skip: got %v, want %v", si, fi, ids(rs), w)
			}
		}
	}
}

// createAll creates rs and returns them.
func createAll(t *testing.T, s *Store, rs []*store.Resource) []*store.Resource {
	t.Helper()
	for _, r := range rs {
		if err := s.Create(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	return rs
}

func findPage(t *testing.T, s *Store, f *store.Filter, opt store.FindOptions) []*store.Resource {
	t.Helper()
	ctx := context.Background()
	c, err := s.Find(ctx, "Observation", f, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var out []*store.Resource
	for {
		r, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r == nil {
			return out
		}
		if r.Index == nil {
			t.Fatalf("%s: no Index", r.ID)
		}
		if opt.IndexOnly != (r.JSON == nil) {
			t.Fatalf("%s: IndexOnly %v but JSON %q", r.ID, opt.IndexOnly, r.JSON)
		}
		out = append(out, r)
	}
}

func ids(rs []*store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// TestFindPagingUnderWrites pages by keyset while other resources are
// created, moved in the sort order, and deleted between pages: every
// resource that does not change while paging appears exactly once.
func TestFindPagingUnderWrites(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	fx := createAll(t, s, sortFixture(40))
	cur := map[string]*store.Resource{}
	for _, r := range fx {
		cur[r.ID] = r
	}
	keys := []store.SortKey{{Path: "_sort.date.a"}, {Path: "_sort.code.d", Desc: true}}
	changed := map[string]bool{}
	seen := map[string]int{}
	rng := rand.New(rand.NewPCG(3, 5))
	var after *store.Position
	for page := 0; page < 100; page++ {
		rs := findPage(t, s, store.All(), store.FindOptions{Sort: keys, Limit: 4, After: after})
		for _, r := range rs {
			seen[r.ID]++
		}
		if len(rs) < 4 {
			break
		}
		p := store.PositionOf(rs[len(rs)-1], keys)
		after = &p
		// Writes between pages: move two resources to a random date (or
		// none), delete one, create one.
		for range 2 {
			id := fx[rng.IntN(len(fx))].ID
			prev := cur[id]
			if prev.Deleted {
				continue
			}
			next := &store.Resource{Type: prev.Type, ID: id, VersionID: prev.VersionID + 1, LastUpdated: prev.LastUpdated, JSON: []byte(`{}`),
				Index: map[string]any{}}
			if rng.IntN(3) != 0 {
				d := time.Date(2024, 1, 1+rng.IntN(8), 0, 0, 0, 0, time.UTC)
				next.Index["_sort"] = map[string]any{"date": map[string]any{"a": d, "d": d}}
			}
			if rng.IntN(4) == 0 {
				next.Deleted, next.JSON, next.Index = true, nil, nil
			}
			if err := s.Update(ctx, next, prev); err != nil {
				t.Fatal(err)
			}
			cur[id] = next
			changed[id] = true
		}
		n := &store.Resource{Type: "Observation", ID: fmt.Sprintf("new%02d", page), VersionID: 1, LastUpdated: time.Now(), JSON: []byte(`{}`)}
		if err := s.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	unchanged := 0
	for _, r := range fx {
		if changed[r.ID] {
			continue
		}
		unchanged++
		if seen[r.ID] != 1 {
			t.Errorf("%s (unchanged) seen %d times", r.ID, seen[r.ID])
		}
	}
	if unchanged < 10 || len(changed) < 5 {
		t.Fatalf("fixture too tame: %d unchanged, %d changed", unchanged, len(changed))
	}
}
