package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Run runs the suite. open must return a new, empty store for each call
// (e.g. its own database); the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) { RunExcept(t, open) }

// RunExcept runs the suite without the named tests (logged, not skipped).
// It is for exercising code paths on a backend that cannot give one of the
// guarantees (e.g. the MongoDB code paths on FerretDB, whose conditional
// replace is not atomic); a Store implementation must pass Run.
func RunExcept(t *testing.T, open func(t *testing.T) store.Store, except ...string) {
	run(t, open, func(name string) bool { return !slices.Contains(except, name) })
}

// RunOnly runs the named tests of the suite (e.g. again under another
// configuration of the same store).
func RunOnly(t *testing.T, open func(t *testing.T) store.Store, only ...string) {
	run(t, open, func(name string) bool { return slices.Contains(only, name) })
}

func run(t *testing.T, open func(t *testing.T) store.Store, want func(name string) bool) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"CreateRead", testCreateRead},
		{"CreateDuplicate", testCreateDuplicate},
		{"NotFound", testNotFound},
		{"UpdateVRead", testUpdateVRead},
		{"UpdateConflict", testUpdateConflict},
		{"DeleteTombstone", testDeleteTombstone},
		{"RecreateAfterDelete", testRecreateAfterDelete},
		{"HistoryInstance", testHistoryInstance},
		{"HistoryTypeSystem", testHistoryTypeSystem},
		{"HistoryAt", testHistoryAt},
		{"FindOps", testFindOps},
		{"FindSortSkipLimit", testFindSortSkipLimit},
		{"FindIndexOnly", testFindIndexOnly},
		{"Count", testCount},
		{"LockExclusion", testLockExclusion},
		{"LockExpiry", testLockExpiry},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"Types", testTypes},
		{"SortOrder", testSortOrder},
		{"KeysetPaging", testKeysetPaging},
		{"PagingConcurrentWrites", testPagingConcurrentWrites},
		{"LargeResult", testLargeResult},
		{"TxInvisibleUntilCommit", testTxInvisibleUntilCommit},
		{"Ping", func(t *testing.T, s store.Store) {
			if err := s.Ping(context.Background()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		if !want(tt.name) {
			t.Logf("not run here: %s", tt.name)
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(context.Background()); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// t0 is the suite's clock origin (millisecond precision, UTC).
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func res(typ, id string, v int64, lu time.Time, index map[string]any) *store.Resource {
	return &store.Resource{
		Type: typ, ID: id, VersionID: v, LastUpdated: lu,
		JSON:  []byte(fmt.Sprintf(`{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}}`, typ, id, v)),
		Index: index,
	}
}

func tomb(typ, id string, v int64, lu time.Time) *store.Resource {
	return &store.Resource{Type: typ, ID: id, VersionID: v, LastUpdated: lu, Deleted: true}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func mustCreate(t *testing.T, s store.Store, r *store.Resource) {
	t.Helper()
	if err := s.Create(ctx(t), r); err != nil {
		t.Fatalf("Create %s: %v", r.Key(), err)
	}
}

func mustUpdate(t *testing.T, s store.Store, next, prev *store.Resource) {
	t.Helper()
	if err := s.Update(ctx(t), next, prev); err != nil {
		t.Fatalf("Update %s v%d: %v", next.Key(), next.VersionID, err)
	}
}

func wantCode(t *testing.T, err error, code outcome.Code) {
	t.Helper()
	if !outcome.Is(err, code) {
		t.Fatalf("error = %v, want outcome code %q", err, code)
	}
}

// same reports whether got is want as stored (times compared as instants).
func same(t *testing.T, got, want *store.Resource) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil, want %s v%d", want.Key(), want.VersionID)
	}
	if got.Type != want.Type || got.ID != want.ID || got.VersionID != want.VersionID ||
		got.Deleted != want.Deleted || !got.LastUpdated.Equal(want.LastUpdated) || string(got.JSON) != string(want.JSON) {
		t.Fatalf("got %s v%d lu=%v del=%v json=%q\nwant %s v%d lu=%v del=%v json=%q",
			got.Key(), got.VersionID, got.LastUpdated, got.Deleted, got.JSON,
			want.Key(), want.VersionID, want.LastUpdated, want.Deleted, want.JSON)
	}
	if got.LastUpdated.Location() != time.UTC {
		t.Errorf("LastUpdated location = %v, want UTC", got.LastUpdated.Location())
	}
	if !indexEqual(got.Index, want.Index) {
		t.Fatalf("Index = %#v\nwant %#v", got.Index, want.Index)
	}
}

func indexEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return len(x) == 0 && b == nil
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !indexEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !indexEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y) && x.Location() == time.UTC
	case nil:
		if m, ok := b.(map[string]any); ok {
			return len(m) == 0
		}
		return b == nil
	}
	return reflect.DeepEqual(a, b)
}

func richIndex() map[string]any {
	return map[string]any{
		"name":   []any{"Alice", "Smith"},
		"gender": "female",
		"active": true,
		"score":  float64(7.5),
		"identifier": []any{
			map[string]any{"system": "urn:a", "value": "123"},
			map[string]any{"system": "urn:b", "value": "456"},
		},
		"birthdate": map[string]any{"lo": time.Date(1980, 1, 2, 0, 0, 0, 0, time.UTC), "hi": time.Date(1980, 1, 3, 0, 0, 0, 0, time.UTC)},
		"nothing":   nil,
	}
}

func testCreateRead(t *testing.T, s store.Store) {
	r := res("Patient", "p1", 1, at(0), richIndex())
	mustCreate(t, s, r)
	got, err := s.Read(ctx(t), "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, r)
	got, err = s.VRead(ctx(t), "Patient", "p1", 1)
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, r)
	// No index at all.
	r2 := res("Patient", "p2", 1, at(1), nil)
	mustCreate(t, s, r2)
	got, err = s.Read(ctx(t), "Patient", "p2")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, r2)
	// Ids are strings, kept verbatim.
	r3 := res("Observation", "A-b.9", 1, at(2), map[string]any{"n": float64(3)})
	mustCreate(t, s, r3)
	got, err = s.Read(ctx(t), "Observation", "A-b.9")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, r3)
	if _, err := s.Read(ctx(t), "Observation", "a-b.9"); !outcome.Is(err, outcome.NotFound) {
		t.Errorf("ids must be case-sensitive: %v", err)
	}
}

func testCreateDuplicate(t *testing.T, s store.Store) {
	mustCreate(t, s, res("Patient", "p1", 1, at(0), nil))
	err := s.Create(ctx(t), res("Patient", "p1", 1, at(1), nil))
	wantCode(t, err, outcome.Duplicate)
	// Same id, other type: fine.
	mustCreate(t, s, res("Group", "p1", 1, at(1), nil))
	got, err := s.Read(ctx(t), "Patient", "p1")
	if err != nil || !got.LastUpdated.Equal(at(0)) {
		t.Fatalf("duplicate create changed the resource: %v %v", got, err)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	_, err := s.Read(ctx(t), "Patient", "nope")
	wantCode(t, err, outcome.NotFound)
	_, err = s.VRead(ctx(t), "Patient", "nope", 1)
	wantCode(t, err, outcome.NotFound)
	mustCreate(t, s, res("Patient", "p1", 1, at(0), nil))
	for _, v := range []int64{0, 2, -1} {
		_, err = s.VRead(ctx(t), "Patient", "p1", v)
		wantCode(t, err, outcome.NotFound)
	}
	_, err = s.Read(ctx(t), "Encounter", "p1")
	wantCode(t, err, outcome.NotFound)
}

// chain creates Type/id with n versions (1s apart from start) and returns them.
func chain(t *testing.T, s store.Store, typ, id string, n int, start int) []*store.Resource {
	t.Helper()
	var vs []*store.Resource
	for i := 1; i <= n; i++ {
		r := res(typ, id, int64(i), at(start+i-1), map[string]any{"v": float64(i), "tag": "t" + strconv.Itoa(i)})
		if i == 1 {
			mustCreate(t, s, r)
		} else {
			mustUpdate(t, s, r, vs[i-2])
		}
		vs = append(vs, r)
	}
	return vs
}

func testUpdateVRead(t *testing.T, s store.Store) {
	vs := chain(t, s, "CarePlan", "c1", 4, 0)
	got, err := s.Read(ctx(t), "CarePlan", "c1")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, vs[3])
	for _, v := range vs {
		got, err := s.VRead(ctx(t), "CarePlan", "c1", v.VersionID)
		if err != nil {
			t.Fatalf("VRead v%d: %v", v.VersionID, err)
		}
		same(t, got, v)
	}
	_, err = s.VRead(ctx(t), "CarePlan", "c1", 5)
	wantCode(t, err, outcome.NotFound)
}

func testUpdateConflict(t *testing.T, s store.Store) {
	vs := chain(t, s, "Patient", "p1", 2, 0)
	// Stale prev (v1 while v2 is current).
	err := s.Update(ctx(t), res("Patient", "p1", 2, at(10), nil), vs[0])
	wantCode(t, err, outcome.Conflict)
	// Update of a resource that does not exist.
	ghost := res("Patient", "ghost", 1, at(0), nil)
	err = s.Update(ctx(t), res("Patient", "ghost", 2, at(10), nil), ghost)
	wantCode(t, err, outcome.Conflict)
	if _, err := s.Read(ctx(t), "Patient", "ghost"); !outcome.Is(err, outcome.NotFound) {
		t.Errorf("conflicting update created a resource: %v", err)
	}
	got, err := s.Read(ctx(t), "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, vs[1])
	h, err := s.History(ctx(t), store.HistoryQuery{Type: "Patient", ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].VersionID != 2 || h[1].VersionID != 1 {
		t.Fatalf("history after conflicts = %v", versions(h))
	}
	same(t, h[0], vs[1])
	same(t, h[1], vs[0])
	// The current version is still updatable.
	mustUpdate(t, s, res("Patient", "p1", 3, at(11), nil), got)
}

func testDeleteTombstone(t *testing.T, s store.Store) {
	vs := chain(t, s, "Patient", "p1", 2, 0)
	mustCreate(t, s, res("Patient", "p2", 1, at(0), map[string]any{"v": float64(2)}))
	d := tomb("Patient", "p1", 3, at(5))
	mustUpdate(t, s, d, vs[1])
	got, err := s.Read(ctx(t), "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Deleted || got.VersionID != 3 || len(got.JSON) != 0 {
		t.Fatalf("read after delete = v%d deleted=%v json=%q", got.VersionID, got.Deleted, got.JSON)
	}
	for _, v := range vs {
		got, err := s.VRead(ctx(t), "Patient", "p1", v.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		same(t, got, v)
	}
	got, err = s.VRead(ctx(t), "Patient", "p1", 3)
	if err != nil || !got.Deleted {
		t.Fatalf("vread tombstone: %v %v", got, err)
	}
	ids := findIDs(t, s, "Patient", store.All(), store.FindOptions{})
	if !slices.Equal(ids, []string{"p2"}) {
		t.Fatalf("Find after delete = %v, want [p2]", ids)
	}
	ids = findIDs(t, s, "Patient", store.Eq("v", float64(2)), store.FindOptions{})
	if !slices.Equal(ids, []string{"p2"}) {
		t.Fatalf("Find v=2 after delete = %v, want [p2]", ids)
	}
	if ids := findIDs(t, s, "Patient", store.Eq(store.PathID, "p1"), store.FindOptions{}); len(ids) != 0 {
		t.Fatalf("Find by id of a deleted resource = %v", ids)
	}
	if n, err := s.Count(ctx(t), "Patient", store.In(store.PathID, "p1", "p2")); err != nil || n != 1 {
		t.Fatalf("Count by ids after delete = %d, %v", n, err)
	}
	if n, err := s.Count(ctx(t), "Patient", store.All()); err != nil || n != 1 {
		t.Fatalf("Count after delete = %d, %v", n, err)
	}
	h, err := s.History(ctx(t), store.HistoryQuery{Type: "Patient", ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(h); !slices.Equal(got, []int64{3, 2, 1}) || !h[0].Deleted {
		t.Fatalf("history = %v", got)
	}
	// A stale delete conflicts.
	wantCode(t, s.Update(ctx(t), tomb("Patient", "p1", 3, at(6)), vs[1]), outcome.Conflict)
}

func testRecreateAfterDelete(t *testing.T, s store.Store) {
	vs := chain(t, s, "Patient", "p1", 1, 0)
	d := tomb("Patient", "p1", 2, at(1))
	mustUpdate(t, s, d, vs[0])
	wantCode(t, s.Create(ctx(t), res("Patient", "p1", 1, at(2), nil)), outcome.Duplicate)
	cur, err := s.Read(ctx(t), "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	r3 := res("Patient", "p1", 3, at(3), map[string]any{"back": true})
	mustUpdate(t, s, r3, cur)
	got, err := s.Read(ctx(t), "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	same(t, got, r3)
	if ids := findIDs(t, s, "Patient", store.Eq("back", true), store.FindOptions{}); !slices.Equal(ids, []string{"p1"}) {
		t.Fatalf("Find after re-create = %v", ids)
	}
	h, err := s.History(ctx(t), store.HistoryQuery{Type: "Patient", ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(h); !slices.Equal(got, []int64{3, 2, 1}) {
		t.Fatalf("history = %v", got)
	}
}

func versions(rs []*store.Resource) []int64 {
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.VersionID
	}
	return out
}

func keys(rs []*store.Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Key() + "/" + strconv.FormatInt(r.VersionID, 10)
	}
	return out
}

func testHistoryInstance(t *testing.T, s store.Store) {
	vs := chain(t, s, "Patient", "p1", 5, 0) // lu at(0)..at(4)
	chain(t, s, "Patient", "p2", 2, 0)
	h, err := s.History(ctx(t), store.HistoryQuery{Type: "Patient", ID: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(h); !slices.Equal(got, []int64{5, 4, 3, 2, 1}) {
		t.Fatalf("history = %v", got)
	}
	for i, r := range h {
		same(t, r, vs[4-i])
	}
	cases := []struct {
		q    store.HistoryQuery
		want []int64
	}{
		{store.HistoryQuery{Since: at(2)}, []int64{5, 4, 3}},
		{store.HistoryQuery{Since: at(2).Add(time.Millisecond)}, []int64{5, 4}},
		{store.HistoryQuery{Before: at(2)}, []int64{2, 1}},
		{store.HistoryQuery{Since: at(1), Before: at(4)}, []int64{4, 3, 2}},
		{store.HistoryQuery{Limit: 2}, []int64{5, 4}},
		{store.HistoryQuery{Limit: 2, Offset: 2}, []int64{3, 2}},
		{store.HistoryQuery{Limit: 2, Offset: 4}, []int64{1}},
		{store.HistoryQuery{Limit: 2, Offset: 5}, []int64{}},
		{store.HistoryQuery{At: at(2)}, []int64{3}},
		{store.HistoryQuery{At: at(2).Add(500 * time.Millisecond)}, []int64{3}},
		{store.HistoryQuery{At: at(100)}, []int64{5}},
		{store.HistoryQuery{At: at(-1)}, []int64{}},
		{store.HistoryQuery{Since: at(10)}, []int64{}},
		{store.HistoryQuery{Since: at(1), Limit: 2, Offset: 1}, []int64{4, 3}},
		{store.HistoryQuery{Before: at(4), Limit: 2, Offset: 1}, []int64{3, 2}},
		{store.HistoryQuery{Since: at(1), Before: at(4), Offset: 2}, []int64{2}},
		{store.HistoryQuery{At: at(2), Offset: 1}, []int64{}},
		{store.HistoryQuery{At: at(3), Before: at(3)}, []int64{}},
		{store.HistoryQuery{At: at(3), Since: at(3)}, []int64{4}},
	}
	for _, c := range cases {
		c.q.Type, c.q.ID = "Patient", "p1"
		h, err := s.History(ctx(t), c.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(h); !slices.Equal(got, c.want) {
			t.Errorf("History(%+v) = %v, want %v", c.q, got, c.want)
		}
	}
	_, err = s.History(ctx(t), store.HistoryQuery{Type: "Patient", ID: "nope"})
	wantCode(t, err, outcome.NotFound)
}

func testHistoryTypeSystem(t *testing.T, s store.Store) {
	// Interleaved: a1 at 0,2,4; b1 at 1,3; o1 (Observation) at 5 then deleted at 6.
	a1 := res("Patient", "a1", 1, at(0), nil)
	mustCreate(t, s, a1)
	b1 := res("Patient", "b1", 1, at(1), nil)
	mustCreate(t, s, b1)
	a2 := res("Patient", "a1", 2, at(2), nil)
	mustUpdate(t, s, a2, a1)
	b2 := res("Patient", "b1", 2, at(3), nil)
	mustUpdate(t, s, b2, b1)
	a3 := res("Patient", "a1", 3, at(4), nil)
	mustUpdate(t, s, a3, a2)
	o1 := res("Observation", "o1", 1, at(5), nil)
	mustCreate(t, s, o1)
	mustUpdate(t, s, tomb("Observation", "o1", 2, at(6)), o1)
	// Same lastUpdated for two resources: ordered by version then type/id.
	mustCreate(t, s, res("Encounter", "e1", 1, at(5), nil))

	typeAll := []string{"Patient/a1/3", "Patient/b1/2", "Patient/a1/2", "Patient/b1/1", "Patient/a1/1"}
	sysAll := []string{"Observation/o1/2", "Encounter/e1/1", "Observation/o1/1", "Patient/a1/3", "Patient/b1/2",
		"Patient/a1/2", "Patient/b1/1", "Patient/a1/1"}
	cases := []struct {
		q    store.HistoryQuery
		want []string
	}{
		{store.HistoryQuery{Type: "Patient"}, typeAll},
		{store.HistoryQuery{Type: "Patient", Limit: 2}, typeAll[:2]},
		{store.HistoryQuery{Type: "Patient", Limit: 2, Offset: 2}, typeAll[2:4]},
		{store.HistoryQuery{Type: "Patient", Limit: 2, Offset: 4}, typeAll[4:]},
		{store.HistoryQuery{Type: "Patient", Since: at(2)}, typeAll[:3]},
		{store.HistoryQuery{Type: "Patient", Before: at(2)}, typeAll[3:]},
		{store.HistoryQuery{Type: "Patient", At: at(2)}, []string{"Patient/a1/2", "Patient/b1/1"}},
		{store.HistoryQuery{Type: "Patient", At: at(3), Limit: 1}, []string{"Patient/b1/2"}},
		{store.HistoryQuery{Type: "Patient", At: at(3), Limit: 1, Offset: 1}, []string{"Patient/a1/2"}},
		{store.HistoryQuery{Type: "Encounter"}, []string{"Encounter/e1/1"}},
		{store.HistoryQuery{Type: "Medication"}, []string{}},
		{store.HistoryQuery{}, sysAll},
		{store.HistoryQuery{Limit: 3}, sysAll[:3]},
		{store.HistoryQuery{Limit: 3, Offset: 3}, sysAll[3:6]},
		{store.HistoryQuery{Limit: 3, Offset: 6}, sysAll[6:]},
		{store.HistoryQuery{Since: at(4)}, sysAll[:4]},
		{store.HistoryQuery{At: at(5)}, []string{"Encounter/e1/1", "Observation/o1/1", "Patient/a1/3", "Patient/b1/2"}},
		{store.HistoryQuery{At: at(6)}, []string{"Observation/o1/2", "Encounter/e1/1", "Patient/a1/3", "Patient/b1/2"}},
	}
	for _, c := range cases {
		h, err := s.History(ctx(t), c.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(h); !slices.Equal(got, c.want) {
			t.Errorf("History(%+v) =\n %v\nwant\n %v", c.q, got, c.want)
		}
	}
	// Paging through system history with a small page gives everything once.
	var all []string
	for off := 0; ; off += 2 {
		h, err := s.History(ctx(t), store.HistoryQuery{Limit: 2, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		if len(h) == 0 {
			break
		}
		all = append(all, keys(h)...)
	}
	if !slices.Equal(all, sysAll) {
		t.Errorf("paged system history = %v", all)
	}
	h, err := s.History(ctx(t), store.HistoryQuery{Type: "Observation", Limit: 1})
	if err != nil || len(h) != 1 || !h[0].Deleted || len(h[0].JSON) != 0 {
		t.Errorf("tombstone in type history: %v %v", keys(h), err)
	}
}

func testHistoryAt(t *testing.T, s store.Store) {
	vs := chain(t, s, "Coverage", "c1", 3, 10) // at(10), at(11), at(12)
	for _, c := range []struct {
		at   time.Time
		want []int64
	}{
		{at(9), []int64{}}, {at(10), []int64{1}}, {at(11).Add(-time.Millisecond), []int64{1}},
		{at(11), []int64{2}}, {at(50), []int64{3}},
	} {
		h, err := s.History(ctx(t), store.HistoryQuery{Type: "Coverage", ID: "c1", At: c.at})
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(h); !slices.Equal(got, c.want) {
			t.Errorf("At %v: %v, want %v", c.at, got, c.want)
		}
		h, err = s.History(ctx(t), store.HistoryQuery{Type: "Coverage", At: c.at})
		if err != nil {
			t.Fatal(err)
		}
		if got := versions(h); !slices.Equal(got, c.want) {
			t.Errorf("type At %v: %v, want %v", c.at, got, c.want)
		}
	}
	_ = vs
}

func findAll(t *testing.T, s store.Store, typ string, f *store.Filter, opt store.FindOptions) []*store.Resource {
	t.Helper()
	c, err := s.Find(ctx(t), typ, f, opt)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	defer c.Close(ctx(t))
	var out []*store.Resource
	for {
		r, err := c.Next(ctx(t))
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if r == nil {
			return out
		}
		out = append(out, r)
	}
}

func findIDs(t *testing.T, s store.Store, typ string, f *store.Filter, opt store.FindOptions) []string {
	t.Helper()
	rs := findAll(t, s, typ, f, opt)
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	if len(opt.Sort) == 0 {
		sort.Strings(out)
	}
	return out
}

// Fixture returns the resources FindOps stores: arrays of sub-documents,
// dates, numbers, booleans, regex metacharacters, missing fields.
func Fixture() []*store.Resource {
	d := func(y, m, day int) time.Time { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC) }
	return []*store.Resource{
		res("Patient", "p1", 1, at(1), map[string]any{
			"name": []any{"alice", "smith"}, "gender": "female", "active": true, "age": float64(42),
			"identifier": []any{map[string]any{"system": "urn:a", "value": "123"}, map[string]any{"system": "urn:b", "value": "456"}},
			"birthdate":  map[string]any{"lo": d(1980, 1, 2), "hi": d(1980, 1, 3)},
			"phone":      "+1 (555) 010.99*",
			"contact": []any{
				map[string]any{"telecom": []any{map[string]any{"value": "x1"}, map[string]any{"value": "x2"}}},
				map[string]any{"telecom": []any{map[string]any{"value": "y1"}}},
			},
			"mixed": []any{"s", float64(3), d(2000, 1, 1), true},
		}),
		res("Patient", "p2", 1, at(2), map[string]any{
			"name": []any{"bob"}, "gender": "male", "active": false, "age": float64(7),
			"identifier": []any{map[string]any{"system": "urn:a", "value": "789"}},
			"birthdate":  map[string]any{"lo": d(2017, 6, 1), "hi": d(2017, 7, 1)},
			"phone":      "+1 555 0100",
		}),
		res("Patient", "p3", 1, at(3), map[string]any{
			"name": "carol", "gender": "female", "age": float64(42.5),
			"identifier": map[string]any{"system": "urn:b", "value": "123"},
			"birthdate":  map[string]any{"lo": d(1980, 1, 1), "hi": d(1981, 1, 1)},
			"tags":       []any{"a.b", "a+b", "[x]"},
			"contact":    map[string]any{"telecom": map[string]any{"value": "x2"}},
			"mixed":      float64(5),
		}),
		res("Patient", "p4", 1, at(4), map[string]any{
			"gender": "unknown", "age": float64(-1), "active": true,
			"link": []any{map[string]any{"other": map[string]any{"ref": "Patient/p1"}}},
		}),
		res("Patient", "p5", 1, at(5), nil),
		res("Patient", "p6", 1, at(6), map[string]any{
			"name": []any{"Alice"}, "gender": "other", "age": float64(100), "empty": []any{},
			"identifier": []any{map[string]any{"system": "urn:c"}},
		}),
	}
}

// FindFilters returns filters covering every operator; FindOps checks each
// against store.Filter.Match over Fixture.
func FindFilters() []*store.Filter {
	d := func(y, m, day int) time.Time { return time.Date(y, time.Month(m), day, 0, 0, 0, 0, time.UTC) }
	return []*store.Filter{
		store.All(),
		store.Eq("gender", "female"),
		store.Eq("name", "alice"),
		store.Eq("name", "carol"),
		store.Eq("identifier.value", "123"),
		store.Eq("identifier.system", "urn:b"),
		store.Eq("age", float64(42)),
		store.Eq("age", 42),
		store.Eq("active", true),
		store.Eq("active", false),
		store.Eq("link.other.ref", "Patient/p1"),
		store.Eq(store.PathID, "p3"),
		store.Eq(store.PathLastUpdated, at(2)),
		store.Eq("birthdate.lo", d(1980, 1, 2)),
		store.Eq("missing", "x"),
		store.In("gender", "male", "other"),
		store.In("identifier.value", "456", "789"),
		store.In(store.PathID, "p1", "p4", "zz"),
		store.In("age", float64(7), float64(100)),
		store.In("gender"),
		store.Lt("age", float64(42)),
		store.Lte("age", float64(42)),
		store.Gt("age", float64(42)),
		store.Gte("age", 42),
		store.Gt("name", "b"),
		store.Lt("name", "b"),
		store.Lt("birthdate.lo", d(1980, 1, 2)),
		store.Lte("birthdate.lo", d(1980, 1, 2)),
		store.Gt("birthdate.hi", d(2000, 1, 1)),
		store.Gte("birthdate.hi", d(1981, 1, 1)),
		store.Gt(store.PathLastUpdated, at(3)),
		store.Lte(store.PathLastUpdated, at(3)),
		store.Gt("gender", float64(1)),
		store.Lt("birthdate.lo", "2100"),
		store.Prefix("name", "al"),
		store.Prefix("name", "Al"),
		store.Prefix("identifier.value", "45"),
		store.Prefix("phone", "+1 (555) 010.9"),
		store.Prefix("phone", "+1 (555"),
		store.Prefix("tags", "a."),
		store.Prefix("tags", "["),
		store.Prefix("gender", ""),
		store.Prefix(store.PathID, "p"),
		store.Contains("name", "li"),
		store.Contains("phone", "010.99*"),
		store.Contains("phone", "0.9"),
		store.Contains("tags", "+"),
		store.Contains("identifier.value", "2"),
		store.Exists("active", true),
		store.Exists("active", false),
		store.Exists("identifier.value", true),
		store.Exists("identifier.value", false),
		store.Exists("empty", true),
		store.Exists("link.other.ref", true),
		store.And(store.Eq("gender", "female"), store.Gte("age", float64(42.5))),
		store.And(store.Eq("identifier.system", "urn:a"), store.Eq("identifier.value", "456")),
		store.Or(store.Eq("gender", "male"), store.Prefix("name", "car")),
		store.Or(store.Exists("active", false), store.Lt("age", float64(0))),
		store.Not(store.Eq("gender", "female")),
		store.Not(store.Eq("identifier.value", "123")),
		store.Not(store.Exists("name", true)),
		store.Not(store.Prefix("name", "a")),
		store.Not(store.Or(store.Eq("gender", "female"), store.Lt("age", float64(10)))),
		store.And(store.Not(store.Eq("active", true)), store.Gt("age", float64(0))),
		store.Or(store.All(), store.Eq("gender", "nope")),
		{Op: store.OpOr},
		{Op: store.OpAnd},
		store.Not(store.All()),
		store.And(store.Gte("birthdate.hi", d(1980, 1, 2)), store.Lte("birthdate.lo", d(1980, 1, 2))),
		store.Eq("contact.telecom.value", "x2"),
		store.Eq("contact.telecom.value", "y1"),
		store.Prefix("contact.telecom.value", "x"),
		store.Exists("contact.telecom.value", true),
		store.Not(store.Eq("contact.telecom.value", "x1")),
		store.Eq("identifier.0.value", "123"),
		store.Eq("identifier.1.system", "urn:b"),
		store.Eq("name", []any{"alice", "smith"}),
		store.Eq("name", nil),
		store.In("name", "bob", nil),
		store.In("birthdate.lo", d(1980, 1, 1), d(2017, 6, 1)),
		store.Gt("mixed", float64(4)),
		store.Lt("mixed", float64(4)),
		store.Gte("mixed", "a"),
		store.Lt("mixed", d(2001, 1, 1)),
		store.Eq("mixed", true),
		store.Prefix("mixed", "s"),
		store.Exists("nothing", true),
		store.Gt("active", false),
		store.Lt("gender", "male"),
		store.Not(store.Gt("age", float64(10))),
		store.Not(store.Exists("identifier.value", true)),
		store.Or(store.Eq("identifier.system", "urn:c"), store.Eq("contact.telecom.value", "x2")),
		store.And(store.Or(store.Eq("gender", "female"), store.Eq("gender", "male")), store.Not(store.Prefix("name", "b"))),
	}
}

func testFindOps(t *testing.T, s store.Store) {
	fx := Fixture()
	for _, r := range fx {
		mustCreate(t, s, r)
	}
	// A deleted resource that would match everything.
	gone := res("Patient", "gone", 1, at(0), fx[0].Index)
	mustCreate(t, s, gone)
	mustUpdate(t, s, &store.Resource{Type: "Patient", ID: "gone", VersionID: 2, LastUpdated: at(7), Deleted: true, Index: fx[0].Index}, gone)
	// Another type with the same index must not leak in.
	mustCreate(t, s, res("Group", "g1", 1, at(0), fx[0].Index))

	for i, f := range FindFilters() {
		var want []string
		for _, r := range fx {
			if f.Match(r) {
				want = append(want, r.ID)
			}
		}
		sort.Strings(want)
		got := findIDs(t, s, "Patient", f, store.FindOptions{})
		if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("filter %d (%s %s): got %v, want %v", i, f.Op, f.Path, got, want)
		}
		n, err := s.Count(ctx(t), "Patient", f)
		if err != nil {
			t.Fatalf("Count filter %d: %v", i, err)
		}
		if int(n) != len(want) {
			t.Errorf("Count filter %d (%s %s) = %d, want %d", i, f.Op, f.Path, n, len(want))
		}
	}
	// Hand-checked expectations, so the oracle itself is checked.
	for _, c := range []struct {
		f    *store.Filter
		want []string
	}{
		{store.Eq("identifier.value", "123"), []string{"p1", "p3"}},
		{store.Prefix("phone", "+1 (555) 010.9"), []string{"p1"}},
		{store.Lt("age", float64(42)), []string{"p2", "p4"}},
		{store.Exists("active", false), []string{"p3", "p5", "p6"}},
		{store.Not(store.Eq("identifier.value", "123")), []string{"p2", "p4", "p5", "p6"}},
		{store.Gt(store.PathLastUpdated, at(3)), []string{"p4", "p5", "p6"}},
	} {
		if got := findIDs(t, s, "Patient", c.f, store.FindOptions{}); !slices.Equal(got, c.want) {
			t.Errorf("%s %s: got %v, want %v", c.f.Op, c.f.Path, got, c.want)
		}
	}
	// Sub-millisecond filter times are compared at millisecond precision.
	if got := findIDs(t, s, "Patient", store.Eq(store.PathLastUpdated, at(2).Add(300*time.Microsecond)), store.FindOptions{}); !slices.Equal(got, []string{"p2"}) {
		t.Errorf("sub-ms lastUpdated: %v", got)
	}
	// Find on a type with no data.
	if got := findIDs(t, s, "Medication", store.All(), store.FindOptions{}); len(got) != 0 {
		t.Errorf("empty type: %v", got)
	}
	// A nil filter matches everything.
	if got := findIDs(t, s, "Patient", nil, store.FindOptions{}); len(got) != len(fx) {
		t.Errorf("nil filter: %v", got)
	}
}

func testFindSortSkipLimit(t *testing.T, s store.Store) {
	fx := Fixture()
	for _, r := range fx {
		mustCreate(t, s, r)
	}
	cases := []struct {
		f    *store.Filter
		opt  store.FindOptions
		want []string
	}{
		{store.All(), store.FindOptions{}, []string{"p1", "p2", "p3", "p4", "p5", "p6"}},
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: store.PathID, Desc: true}}}, []string{"p6", "p5", "p4", "p3", "p2", "p1"}},
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: store.PathLastUpdated, Desc: true}}, Limit: 2}, []string{"p6", "p5"}},
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: store.PathLastUpdated}}, Skip: 4}, []string{"p5", "p6"}},
		// A missing sort value sorts last, in either direction.
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: "age"}}}, []string{"p4", "p2", "p1", "p3", "p6", "p5"}},
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: "age", Desc: true}}, Skip: 1, Limit: 3}, []string{"p3", "p1", "p2"}},
		// Ties (gender female) broken by id ascending, whatever the direction.
		{store.Eq("gender", "female"), store.FindOptions{Sort: []store.SortKey{{Path: "gender", Desc: true}}}, []string{"p1", "p3"}},
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: "gender"}, {Path: "age", Desc: true}}}, []string{"p3", "p1", "p2", "p6", "p4", "p5"}},
		{store.All(), store.FindOptions{Sort: []store.SortKey{{Path: "birthdate.lo"}}}, []string{"p3", "p1", "p2", "p4", "p5", "p6"}},
		// Arrays sort by their least element ascending, greatest descending.
		{store.Exists("name", true), store.FindOptions{Sort: []store.SortKey{{Path: "name"}}}, []string{"p6", "p1", "p2", "p3"}},
		{store.Exists("name", true), store.FindOptions{Sort: []store.SortKey{{Path: "name", Desc: true}}}, []string{"p1", "p3", "p2", "p6"}},
		// Skip/limit after a filter.
		{store.Gte("age", float64(7)), store.FindOptions{Sort: []store.SortKey{{Path: "age"}}, Skip: 1, Limit: 2}, []string{"p1", "p3"}},
		{store.Prefix("name", "a"), store.FindOptions{Limit: 1}, []string{"p1"}},
		{store.Not(store.Eq("gender", "female")), store.FindOptions{Sort: []store.SortKey{{Path: store.PathID}}, Skip: 1, Limit: 2}, []string{"p4", "p5"}},
		{store.All(), store.FindOptions{Skip: 10}, []string{}},
		// Filters pinning the id.
		{store.In(store.PathID, "p6", "p2", "p1", "zz", "p2"), store.FindOptions{Sort: []store.SortKey{{Path: "age", Desc: true}}}, []string{"p6", "p1", "p2"}},
		{store.In(store.PathID, "p6", "p2", "p1", "p3"), store.FindOptions{Sort: []store.SortKey{{Path: "name"}}, Skip: 1, Limit: 2}, []string{"p1", "p2"}},
		{store.And(store.In(store.PathID, "p1", "p2", "p3"), store.Eq("gender", "female")), store.FindOptions{}, []string{"p1", "p3"}},
		{store.And(store.Eq(store.PathID, "p2"), store.Eq("gender", "female")), store.FindOptions{}, []string{}},
		{store.Eq(store.PathID, "p4"), store.FindOptions{Limit: 5}, []string{"p4"}},
		{store.In(store.PathID, "p5", "p4"), store.FindOptions{}, []string{"p4", "p5"}},
		{store.In(store.PathID, "p5", "p4"), store.FindOptions{Skip: 1}, []string{"p5"}},
		{store.Eq(store.PathID, 5), store.FindOptions{}, []string{}},
		{store.Or(store.Eq(store.PathID, "p1"), store.Eq("gender", "male")), store.FindOptions{}, []string{"p1", "p2"}},
	}
	for i, c := range cases {
		got := findIDs(t, s, "Patient", c.f, c.opt)
		if !slices.Equal(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("case %d: got %v, want %v", i, got, c.want)
		}
	}
}

func testFindIndexOnly(t *testing.T, s store.Store) {
	fx := Fixture()
	for _, r := range fx {
		mustCreate(t, s, r)
	}
	rs := findAll(t, s, "Patient", store.Eq(store.PathID, "p1"), store.FindOptions{IndexOnly: true})
	if len(rs) != 1 {
		t.Fatalf("got %d results", len(rs))
	}
	r := rs[0]
	if r.JSON != nil || r.ID != "p1" || r.Type != "Patient" || r.VersionID != 1 || !r.LastUpdated.Equal(at(1)) {
		t.Fatalf("IndexOnly result = %+v", r)
	}
	if !indexEqual(r.Index, fx[0].Index) {
		t.Fatalf("Index = %#v", r.Index)
	}
	rs = findAll(t, s, "Patient", store.Eq(store.PathID, "p1"), store.FindOptions{})
	if len(rs) != 1 || string(rs[0].JSON) != string(fx[0].JSON) {
		t.Fatalf("full result = %+v", rs)
	}
}

func testCount(t *testing.T, s store.Store) {
	if n, err := s.Count(ctx(t), "Patient", store.All()); err != nil || n != 0 {
		t.Fatalf("Count empty = %d, %v", n, err)
	}
	for i := range 25 {
		r := res("Patient", fmt.Sprintf("p%02d", i), 1, at(i), map[string]any{"n": float64(i), "even": i%2 == 0})
		mustCreate(t, s, r)
		if i%5 == 0 {
			mustUpdate(t, s, tomb("Patient", r.ID, 2, at(100+i)), r)
		}
	}
	for _, c := range []struct {
		f    *store.Filter
		want int64
	}{
		{store.All(), 20},
		{store.Eq("even", true), 10},
		{store.Lt("n", float64(10)), 8},
		{store.Prefix(store.PathID, "p1"), 8},
		{store.Not(store.Eq("even", true)), 10},
		{store.In(store.PathID, "p00", "p01", "p02", "p03", "nope"), 3},
		{store.And(store.Eq(store.PathID, "p02"), store.Eq("even", true)), 1},
	} {
		n, err := s.Count(ctx(t), "Patient", c.f)
		if err != nil || n != c.want {
			t.Errorf("Count(%s %s) = %d, %v; want %d", c.f.Op, c.f.Path, n, err, c.want)
		}
	}
}

func testLockExclusion(t *testing.T, s store.Store) {
	c := ctx(t)
	const workers, rounds = 4, 5
	var mu sync.Mutex
	inside, maxInside, total := 0, 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				unlock, err := s.Lock(c, "cond/Patient?identifier=x", 30*time.Second)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
				mu.Lock()
				inside--
				total++
				mu.Unlock()
				if err := unlock(c); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxInside != 1 || total != workers*rounds {
		t.Fatalf("max holders %d, total %d", maxInside, total)
	}
	// A held lock makes others wait until their context ends.
	unlock, err := s.Lock(c, "k", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(c, 150*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(short, "k", time.Second); !outcome.Is(err, outcome.Timeout) {
		t.Fatalf("second Lock of a held key: %v, want a timeout", err)
	}
	// Other keys are independent.
	u2, err := s.Lock(c, "other", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := u2(c); err != nil {
		t.Fatal(err)
	}
	if err := unlock(c); err != nil {
		t.Fatal(err)
	}
	u3, err := s.Lock(c, "k", time.Second)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	_ = u3(c)
}

func testLockExpiry(t *testing.T, s store.Store) {
	c := ctx(t)
	// A holder that never releases (crashed): its lease expires.
	_, err := s.Lock(c, "k", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	unlock2, err := s.Lock(c, "k", 30*time.Second)
	if err != nil {
		t.Fatalf("Lock after expiry: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took over after %v", d)
	}
	// The old holder's late unlock must not release the new lease.
	unlockOld, err := s.Lock(c, "k2", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	unlockNew, err := s.Lock(c, "k2", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := unlockOld(c); err != nil {
		t.Fatalf("late unlock: %v", err)
	}
	short, cancel := context.WithTimeout(c, 150*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(short, "k2", time.Second); err == nil {
		t.Fatal("late unlock of an expired lease released the new holder's lease")
	}
	if err := unlockNew(c); err != nil {
		t.Fatal(err)
	}
	if err := unlock2(c); err != nil {
		t.Fatal(err)
	}
}

func testConcurrentUpdates(t *testing.T, s store.Store) {
	c := ctx(t)
	cur := res("EpisodeOfCare", "e1", 1, at(0), nil)
	mustCreate(t, s, cur)
	const workers, rounds = 6, 5
	for round := 0; round < rounds; round++ {
		prev, err := s.Read(c, "EpisodeOfCare", "e1")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := res("EpisodeOfCare", "e1", prev.VersionID+1, at(round+1), map[string]any{"winner": float64(w)})
				results[w] = s.Update(c, next, prev)
			}()
		}
		wg.Wait()
		wins := 0
		winner := -1
		for w, err := range results {
			switch {
			case err == nil:
				wins++
				winner = w
			case outcome.Is(err, outcome.Conflict):
			default:
				t.Fatalf("round %d worker %d: %v", round, w, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d updates won, want exactly 1", round, wins)
		}
		got, err := s.Read(c, "EpisodeOfCare", "e1")
		if err != nil {
			t.Fatal(err)
		}
		if got.VersionID != prev.VersionID+1 || got.Index["winner"] != float64(winner) {
			t.Fatalf("round %d: current v%d index %v, winner %d", round, got.VersionID, got.Index, winner)
		}
	}
	h, err := s.History(c, store.HistoryQuery{Type: "EpisodeOfCare", ID: "e1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := versions(h); !slices.Equal(got, []int64{6, 5, 4, 3, 2, 1}) {
		t.Fatalf("history = %v", got)
	}
}

func testTypes(t *testing.T, s store.Store) {
	got, err := s.Types(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("Types of an empty store = %v", got)
	}
	mustCreate(t, s, res("Patient", "p1", 1, at(0), nil))
	r := res("CarePlan", "c1", 1, at(0), nil)
	mustCreate(t, s, r)
	mustUpdate(t, s, tomb("CarePlan", "c1", 2, at(1)), r)
	// Reads, finds and locks of other types create nothing.
	_, _ = s.Read(ctx(t), "Coverage", "x")
	_ = findIDs(t, s, "RiskAssessment", store.All(), store.FindOptions{})
	unlock, err := s.Lock(ctx(t), "Observation", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = unlock(ctx(t))
	got, err = s.Types(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"CarePlan", "Patient"}) {
		t.Fatalf("Types = %v, want [CarePlan Patient]", got)
	}
}
