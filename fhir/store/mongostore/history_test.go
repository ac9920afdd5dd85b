package mongostore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/store"
)

// TestHistoryKeyset pages type and system history with After and checks
// the pages join up to the whole history in the order of store.VersionKey
// (many versions share a lastUpdated, so the type, id and version
// tie-breakers matter).
func TestHistoryKeyset(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, typ := range []string{"Patient", "Observation"} {
		for i := range 6 {
			prev := &store.Resource{Type: typ, ID: fmt.Sprintf("r%d", i), VersionID: 1, LastUpdated: t0.Add(time.Duration(i%3) * time.Second), JSON: []byte(`{}`)}
			if err := s.Create(ctx, prev); err != nil {
				t.Fatal(err)
			}
			for v := int64(2); v <= int64(1+i%3); v++ {
				next := &store.Resource{Type: typ, ID: prev.ID, VersionID: v, LastUpdated: prev.LastUpdated.Add(time.Duration(v%2) * time.Second), JSON: []byte(`{}`)}
				if err := s.Update(ctx, next, prev); err != nil {
					t.Fatal(err)
				}
				prev = next
			}
		}
	}
	key := func(r *store.Resource) string { return fmt.Sprintf("%s/%s/%d", r.Type, r.ID, r.VersionID) }
	for _, q := range []store.HistoryQuery{{Type: "Patient"}, {}, {Type: "Observation", ID: "r5"}} {
		all, err := s.History(ctx, store.HistoryQuery{Type: q.Type, ID: q.ID, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.IsSortedFunc(all, newestFirst) {
			t.Errorf("%+v: not in history order", q)
		}
		var want, got []string
		for _, r := range all {
			want = append(want, key(r))
		}
		q.Limit = 4
		for range 50 {
			rs, err := s.History(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				got = append(got, key(r))
			}
			if len(rs) < q.Limit {
				break
			}
			k := store.KeyOf(rs[len(rs)-1])
			q.After = &k
		}
		if !slices.Equal(got, want) {
			t.Errorf("%+v paged:\n got %v\nwant %v", q, got, want)
		}
	}
}

// TestHistoryDocumentsStayOutOfQueries: a type's collection holds its
// history documents too; no query of current resources (Find in every
// order, Count, Scan, ScanJSON) returns one, and reads and history still
// see every version.
func TestHistoryDocumentsStayOutOfQueries(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	idx := func(v int64) map[string]any {
		return map[string]any{"code": map[string]any{"c": "x"}, "_sort": map[string]any{"date": map[string]any{"a": t0, "d": t0}}, "v": float64(v)}
	}
	var vs []*store.Resource
	for _, id := range []string{"a", "b"} {
		prev := &store.Resource{Type: "Observation", ID: id, VersionID: 1, LastUpdated: t0, JSON: []byte(`{"v":1}`), Index: idx(1)}
		if err := s.Create(ctx, prev); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, prev)
		for v := int64(2); v <= 3; v++ {
			next := &store.Resource{Type: "Observation", ID: id, VersionID: v, LastUpdated: t0.Add(time.Duration(v) * time.Second),
				JSON: fmt.Appendf(nil, `{"v":%d}`, v), Index: idx(v), Deleted: id == "b" && v == 3}
			if err := s.Update(ctx, next, prev); err != nil {
				t.Fatal(err)
			}
			vs = append(vs, next)
			prev = next
		}
	}
	for _, sort := range [][]store.SortKey{nil, {{Path: store.PathLastUpdated}}, {{Path: store.PathLastUpdated, Desc: true}},
		{{Path: "_sort.date.a"}}, {{Path: store.PathID, Desc: true}}} {
		for _, f := range []*store.Filter{store.All(), store.Eq("code.c", "x"), store.Gte("v", float64(0))} {
			cur, err := s.Find(ctx, "Observation", f, store.FindOptions{Sort: sort})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				r, err := cur.Next(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if r == nil {
					break
				}
				got = append(got, fmt.Sprintf("%s/%d", r.ID, r.VersionID))
			}
			if !slices.Equal(got, []string{"a/3"}) {
				t.Errorf("Find %v sorted %v: %v, want only the current a/3", f.Op, sort, got)
			}
		}
	}
	if n, err := s.Count(ctx, "Observation", store.Eq("code.c", "x")); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
	if n, err := s.ScanJSON(ctx, "Observation", func([]byte) error { return nil }); err != nil || n != 1 {
		t.Errorf("ScanJSON = %d, %v; want 1", n, err)
	}
	for _, v := range vs {
		got, err := s.VRead(ctx, "Observation", v.ID, v.VersionID)
		if err != nil || got.Deleted != v.Deleted || (!v.Deleted && string(got.JSON) != string(v.JSON)) || got.Index["v"] != v.Index["v"] {
			t.Errorf("VRead %s/%d = %+v, %v", v.ID, v.VersionID, got, err)
		}
	}
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Observation", Limit: 100})
	if err != nil || len(hist) != 6 {
		t.Errorf("type history: %d versions, %v; want 6", len(hist), err)
	}
	hist, err = s.History(ctx, store.HistoryQuery{Type: "Observation", ID: "b", Limit: 100})
	if err != nil || len(hist) != 3 || !hist[0].Deleted || hist[2].VersionID != 1 {
		t.Errorf("instance history of b: %v, %v", hist, err)
	}
}

// TestOldHistoryCollectionMoved: a database written by an earlier version
// of this store kept non-current versions in <Type>_history; Open moves
// them into the type's collection and drops the old collection.
func TestOldHistoryCollectionMoved(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	v3 := &store.Resource{Type: "Coverage", ID: "c1", VersionID: 3, LastUpdated: t0.Add(2 * time.Second), JSON: []byte(`{"v":3}`)}
	if err := s.Create(ctx, &store.Resource{Type: "Coverage", ID: "c1", VersionID: 1, LastUpdated: t0, JSON: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	// The current document at v3, and v1 and v2 in the old layout.
	if _, err := s.db.Collection("Coverage").ReplaceOne(ctx, bson.D{{Key: fID, Value: "c1"}}, encode(v3)); err != nil {
		t.Fatal(err)
	}
	for v := int64(1); v <= 2; v++ {
		old := encode(&store.Resource{Type: "Coverage", ID: "c1", VersionID: v, LastUpdated: t0.Add(time.Duration(v-1) * time.Second),
			JSON: fmt.Appendf(nil, `{"v":%d}`, v), Deleted: v == 2, Index: map[string]any{"n": float64(v)}})
		old[0].Value = fmt.Sprintf("c1/%d", v)
		old = append(old, bson.E{Key: fRID, Value: "c1"})
		if _, err := s.db.Collection("Coverage"+historySuffix).InsertOne(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(ctx, Options{URI: srv.URI(), Database: s.dbName, AllowStandalone: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	names, err := s2.db.ListCollectionNames(ctx, bson.D{})
	if err != nil || slices.Contains(names, "Coverage"+historySuffix) {
		t.Errorf("collections after open: %v, %v", names, err)
	}
	r1, err := s2.VRead(ctx, "Coverage", "c1", 1)
	if err != nil || string(r1.JSON) != `{"v":1}` || r1.Index["n"] != float64(1) {
		t.Errorf("VRead v1 = %+v, %v", r1, err)
	}
	if r2, err := s2.VRead(ctx, "Coverage", "c1", 2); err != nil || !r2.Deleted {
		t.Errorf("VRead v2 = %+v, %v", r2, err)
	}
	h, err := s2.History(ctx, store.HistoryQuery{Type: "Coverage", ID: "c1"})
	if err != nil || len(h) != 3 {
		t.Errorf("History = %d versions, %v", len(h), err)
	}
	if n, err := s2.Count(ctx, "Coverage", store.All()); err != nil || n != 1 {
		t.Errorf("Count = %d, %v", n, err)
	}
}
