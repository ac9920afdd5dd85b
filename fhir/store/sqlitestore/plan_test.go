package sqlitestore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// queryPlan returns SQLite's plan of the first statement of a Find.
func queryPlan(t *testing.T, s *Store, typ string, f *store.Filter, opt store.FindOptions) string {
	t.Helper()
	ctx := context.Background()
	phases, _, err := s.phases(ctx, typ, f, opt)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+phases[0].q, phases[0].args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "\n")
}

// TestSortedFirstPageWalksTheIndex checks that the first page of a sorted
// search is read from the search-value index in sort order (no sort of
// every match), and that a filtered page is driven by an index.
func TestSortedFirstPageWalksTheIndex(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var rs []*store.Resource
	for i := range 2000 {
		d := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		rs = append(rs, &store.Resource{Type: "Observation", ID: fmt.Sprintf("o%05d", i), VersionID: 1, LastUpdated: d, JSON: []byte(`{}`),
			Index: map[string]any{
				"code":    map[string]any{"c": fmt.Sprintf("c%d", i%20)},
				"subject": map[string]any{"r": fmt.Sprintf("Patient/p%d", i%100)},
				"_sort":   map[string]any{"date": map[string]any{"a": d, "d": d}},
			}})
	}
	if err := s.InsertMany(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// No ANALYZE: the plans must not depend on statistics.
	for _, desc := range []bool{true, false} {
		path := "_sort.date.a"
		if desc {
			path = "_sort.date.d"
		}
		plan := queryPlan(t, s, "Observation", store.All(), store.FindOptions{Sort: []store.SortKey{{Path: path, Desc: desc}}, Limit: 10})
		if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || !strings.Contains(plan, "SEARCH s USING PRIMARY KEY (pid=?)") {
			t.Errorf("sorted first page (desc %v) does not walk the index in order:\n%s", desc, plan)
		}
		// The plan reads what the page needs: the first ten rows come first.
		cur, err := s.Find(ctx, "Observation", store.All(), store.FindOptions{Sort: []store.SortKey{{Path: path, Desc: desc}}, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		r, err := cur.Next(ctx)
		if err != nil || r == nil {
			t.Fatal(r, err)
		}
		want := "o00000"
		if desc {
			want = "o01999"
		}
		if r.ID != want {
			t.Errorf("first row %s, want %s", r.ID, want)
		}
		_ = cur.Close(ctx)
	}
	plan := queryPlan(t, s, "Observation", store.Eq("subject.r", "Patient/p7"), store.FindOptions{Limit: 10})
	if !strings.Contains(plan, "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)") || !strings.Contains(plan, "USING PRIMARY KEY (pid=? AND v=?)") {
		t.Errorf("token search is not served from the index:\n%s", plan)
	}
	plan = queryPlan(t, s, "Observation", store.And(store.Eq("code.c", "c3"), store.Gte("_sort.date.a", time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC))), store.FindOptions{Limit: 10})
	if !strings.Contains(plan, "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)") || !strings.Contains(plan, "USING PRIMARY KEY (pid=? AND v") {
		t.Errorf("token + date search is not served from the index:\n%s", plan)
	}
	t.Logf("token + date plan:\n%s", plan)

	// A filter matching more than selectiveRows: the page walks the sort
	// order and probes the filter per row by rk.
	old := selectiveRows
	selectiveRows = 50
	defer func() { selectiveRows = old }()
	plan = queryPlan(t, s, "Observation", store.Eq("code.c", "c3"), store.FindOptions{Sort: []store.SortKey{{Path: "_sort.date.d", Desc: true}}, Limit: 10})
	if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || !strings.Contains(plan, "SEARCH s USING PRIMARY KEY (pid=?)") ||
		!strings.Contains(plan, "CORRELATED SCALAR SUBQUERY") {
		t.Errorf("non-selective filter with a sort does not walk the sort index:\n%s", plan)
	}
	// Without a sort (creation order): the equality's entries are walked
	// in their key, which is in creation order, and the rest of the
	// filter probed per entry; a filter with no such equality walks the
	// type's live rows in the partial index on type.
	plan = queryPlan(t, s, "Observation", store.Eq("code.c", "c3"), store.FindOptions{Limit: 10})
	if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || !strings.Contains(plan, "SEARCH e USING PRIMARY KEY (pid=? AND v=?)") {
		t.Errorf("non-selective equality without a sort does not walk its index entries:\n%s", plan)
	}
	plan = queryPlan(t, s, "Observation", store.And(store.Gte("_sort.date.a", time.Date(2024, 1, 5, 0, 0, 0, 0, time.UTC)), store.Eq("code.c", "c3")), store.FindOptions{Limit: 10})
	if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || !strings.Contains(plan, "SEARCH e USING PRIMARY KEY (pid=? AND v=?)") ||
		!strings.Contains(plan, "vals_rk (rk=? AND pid=?") {
		t.Errorf("non-selective equality and range without a sort do not walk the equality's entries and probe the range:\n%s", plan)
	}
	plan = queryPlan(t, s, "Observation", store.Gte("_sort.date.a", time.Date(2024, 1, 5, 0, 0, 0, 0, time.UTC)), store.FindOptions{Limit: 10})
	if strings.Contains(plan, "TEMP B-TREE FOR ORDER BY") || !strings.Contains(plan, "INDEX resources_created (type=?)") {
		t.Errorf("non-selective range without a sort does not walk the type's live rows in creation order:\n%s", plan)
	}
	// An And probes its equalities first (SQLite evaluates correlated
	// subqueries in the order written; the plan lists them otherwise),
	// in the primary key, then the range.
	where, _, err := s.where(ctx, "Observation", store.And(store.Gte("_sort.date.a", time.Date(2024, 1, 5, 0, 0, 0, 0, time.UTC)), store.Eq("code.c", "c3")), true, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(where, "INDEXED BY sqlite_autoindex_vals_1 WHERE pid=? AND v=? AND rk=r.rk"), strings.Index(where, "v>=?"); i < 0 || j < 0 || i > j {
		t.Errorf("an And's equality is not probed first: %s", where)
	}
}

// TestCountedRuleInSQL checks that countedSQL (used where the rows are in
// SQLite: the subtraction of replaced values, the first count of an old
// database) selects the paths counted() does.
func TestCountedRuleInSQL(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for _, p := range []pathKey{
		{"Observation", "code.sc", kString}, {"Observation", "subject.r", kString}, {"Observation", "_compartment", kString},
		{"Observation", "_sort.code.a", kString}, {"Observation", "_id.c", kString}, {"Observation", "_idx.c", kString},
		{"Observation", "date.lo", kTime}, {"Observation", "value.lo", kNumber}, {"Observation", "active", kBool},
		{"Observation", "x", kNull}, {"Observation", "_sort", kString},
	} {
		var got bool
		err := s.r.QueryRowContext(ctx, "SELECT "+countedSQL+" FROM (SELECT ? AS path, ? AS kind)", p.path, int64(p.kind)).Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
		if want := counted(p.path, p.kind); got != want {
			t.Errorf("%s (kind %c): SQL says counted %v, counted() %v", p.path, p.kind, got, want)
		}
	}
}
