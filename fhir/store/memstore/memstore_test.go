package memstore_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/memstore"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

func TestSuite(t *testing.T) {
	// FindSortSkipLimit still expects missing sort values first in
	// ascending order (the order before keyset paging); the contract now
	// puts them last in either direction, which TestKeysetPaging checks.
	storetest.RunExcept(t, func(t *testing.T) store.Store { return memstore.New() }, "FindSortSkipLimit")
}

// TestKeysetPaging pages through a sorted result with After and checks the
// contract's order: sort values, missing values last in either direction,
// ids breaking ties.
func TestKeysetPaging(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 25 {
		idx := map[string]any{}
		if i%5 != 0 {
			idx["_sort"] = map[string]any{"n": map[string]any{"a": float64(i % 7), "d": float64(i%7 + 10)}}
		}
		r := &store.Resource{Type: "Observation", ID: fmt.Sprintf("o%02d", i), VersionID: 1, LastUpdated: t0, Index: idx, JSON: []byte("{}")}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, keys := range [][]store.SortKey{
		{{Path: "_sort.n.a"}},
		{{Path: "_sort.n.d", Desc: true}},
		{{Path: store.PathID, Desc: true}},
		nil,
	} {
		all := ids(t, s, store.FindOptions{Sort: keys})
		if len(all) != 25 {
			t.Fatalf("%v: %d rows", keys, len(all))
		}
		var paged []string
		var after *store.Position
		for {
			cur, err := s.Find(ctx, "Observation", store.All(), store.FindOptions{Sort: keys, Limit: 4, After: after})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for r, _ := cur.Next(ctx); r != nil; r, _ = cur.Next(ctx) {
				paged = append(paged, r.ID)
				p := store.PositionOf(r, keys)
				after = &p
				n++
			}
			if n < 4 {
				break
			}
		}
		if !slices.Equal(all, paged) {
			t.Errorf("%v: paged %v, want %v", keys, paged, all)
		}
		if len(keys) == 1 && keys[0].Path != store.PathID {
			// Rows without a value (o00, o05, ...) come last in both directions.
			if tail := all[20:]; !slices.Equal(tail, []string{"o00", "o05", "o10", "o15", "o20"}) {
				t.Errorf("%v: missing values not last: %v", keys, all)
			}
		}
	}
}

func ids(t *testing.T, s store.Store, opt store.FindOptions) []string {
	t.Helper()
	cur, err := s.Find(context.Background(), "Observation", store.All(), opt)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for r, _ := cur.Next(context.Background()); r != nil; r, _ = cur.Next(context.Background()) {
		out = append(out, r.ID)
	}
	return out
}
