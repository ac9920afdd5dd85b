package mongostore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

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
