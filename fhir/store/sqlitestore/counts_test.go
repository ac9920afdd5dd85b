package sqlitestore_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/sqlitestore"
)

// TestCountsFollowWrites checks the counts table against the search
// values: after creates, updates that change a value, deletes, a
// re-create, a rolled-back transaction and a value twice in one
// resource, Count of a type and of one value equals the matches found by
// Find; and a database whose counts table is gone is counted again when
// opened.
func TestCountsFollowWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	obs := func(i, version int, code string, deleted bool) *store.Resource {
		r := &store.Resource{Type: "Observation", ID: fmt.Sprintf("o%03d", i), VersionID: int64(version), LastUpdated: at.Add(time.Duration(version) * time.Second), JSON: []byte(`{}`), Deleted: deleted}
		if !deleted {
			r.Index = map[string]any{
				"code":    map[string]any{"c": []any{code, code}}, // one value twice: one match
				"subject": map[string]any{"r": fmt.Sprintf("Patient/p%d", i%7)},
				"value":   map[string]any{"lo": float64(i % 5)},
				"_sort":   map[string]any{"code": map[string]any{"a": code, "d": code}},
			}
		}
		return r
	}
	cur := map[int]*store.Resource{}
	var batch []*store.Resource
	for i := range 200 {
		cur[i] = obs(i, 1, fmt.Sprintf("c%d", i%4), false)
		batch = append(batch, cur[i])
	}
	if err := s.InsertMany(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// Updates: every third changes its code, every fifth is deleted, and
	// a deleted one comes back.
	for i := 0; i < 200; i += 3 {
		next := obs(i, int(cur[i].VersionID)+1, "c9", false)
		if err := s.Update(ctx, next, cur[i]); err != nil {
			t.Fatal(err)
		}
		cur[i] = next
	}
	for i := 0; i < 200; i += 5 {
		next := obs(i, int(cur[i].VersionID)+1, "", true)
		if err := s.Update(ctx, next, cur[i]); err != nil {
			t.Fatal(err)
		}
		cur[i] = next
	}
	back := obs(10, int(cur[10].VersionID)+1, "c1", false)
	if err := s.Update(ctx, back, cur[10]); err != nil {
		t.Fatal(err)
	}
	cur[10] = back
	// A transaction that fails (a stale version) changes no count.
	stale := obs(1, int(cur[1].VersionID)+5, "c7", false)
	stalePrev := *cur[1]
	stalePrev.VersionID += 4
	if err := s.Apply(ctx, []store.Write{{Next: obs(500, 1, "c7", false)}, {Next: stale, Prev: &stalePrev}}); err == nil {
		t.Fatal("a stale update was applied")
	}
	check := func(s store.Store, when string) {
		t.Helper()
		filters := []*store.Filter{nil, store.All(), store.Eq("code.c", "c7"), store.Eq("subject.r", "Patient/p3"), store.Eq("value.lo", 2.0)}
		for _, c := range []string{"c0", "c1", "c2", "c3", "c9"} {
			filters = append(filters, store.Eq("code.c", c))
		}
		for _, f := range filters {
			want := 0
			for _, r := range cur {
				if !r.Deleted && (f == nil || f.Match(r)) {
					want++
				}
			}
			n, err := s.Count(ctx, "Observation", f)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(want) {
				t.Errorf("%s: Count(%v) = %d, want %d", when, f, n, want)
			}
		}
	}
	check(s, "after the writes")
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Without the table (a database from before it), Open counts again.
	db, err := sql.Open("sqlite", "file:"+dir+"/"+sqlitestore.FileName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("DROP TABLE counts"); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	check(openDir(t, dir), "after counting again")
}
