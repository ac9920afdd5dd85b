package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// sortIndex is a resource index with sort values the way package search
// extracts them (_sort.<param>.a / .d) plus a plain grouping value.
func sortIndex(i int) map[string]any {
	idx := map[string]any{"g": float64(i % 3)}
	sorts := map[string]any{}
	if i%7 != 0 { // every seventh has no date: it sorts last
		d := time.Date(2020, 1, 1+i%11, 0, 0, 0, 0, time.UTC)
		sorts["date"] = map[string]any{"a": d, "d": d.Add(time.Duration(i%2) * time.Hour)}
	}
	if i%5 != 0 {
		n := fmt.Sprintf("name%02d", i%13)
		sorts["name"] = map[string]any{"a": n, "d": n}
	}
	sorts["num"] = map[string]any{"a": float64(i % 4), "d": float64(i % 4)}
	idx["_sort"] = sorts
	return idx
}

var sortKeySets = [][]store.SortKey{
	nil,
	{{Path: store.PathID, Desc: true}},
	{{Path: store.PathLastUpdated}},
	{{Path: store.PathLastUpdated, Desc: true}},
	{{Path: "_sort.date.a"}},
	{{Path: "_sort.date.d", Desc: true}},
	{{Path: "_sort.name.a"}},
	{{Path: "_sort.name.d", Desc: true}},
	{{Path: "_sort.num.a"}, {Path: "_sort.date.d", Desc: true}},
	{{Path: "_sort.name.d", Desc: true}, {Path: "_sort.num.a"}, {Path: store.PathLastUpdated, Desc: true}},
	{{Path: "_sort.missing.a"}},
	{{Path: "_sort.missing.d", Desc: true}, {Path: "_sort.num.d", Desc: true}},
}

func seedSorted(t *testing.T, s store.Store, n int) []*store.Resource {
	t.Helper()
	var rs []*store.Resource
	for i := range n {
		r := res("Observation", fmt.Sprintf("o%03d", (i*37)%n), 1, at(i%9), sortIndex(i))
		mustCreate(t, s, r)
		rs = append(rs, r)
	}
	return rs
}

// reference orders rs by keys with store.ComparePositions. Without keys
// the order is the store's own (own: every row of rs once, from a Find of
// everything), which every filter and page must follow.
func reference(rs []*store.Resource, keys []store.SortKey, f *store.Filter, own []string) []string {
	var sel []*store.Resource
	for _, r := range rs {
		if f.Match(r) {
			sel = append(sel, r)
		}
	}
	if len(keys) == 0 {
		in := map[string]bool{}
		for _, r := range sel {
			in[r.ID] = true
		}
		var ids []string
		for _, id := range own {
			if in[id] {
				ids = append(ids, id)
			}
		}
		return ids
	}
	slices.SortFunc(sel, func(a, b *store.Resource) int {
		return store.ComparePositions(store.PositionOf(a, keys), store.PositionOf(b, keys), keys)
	})
	ids := make([]string, len(sel))
	for i, r := range sel {
		ids[i] = r.ID
	}
	return ids
}

// orderedIDs returns the ids of a Find of Observations, in its order.
func orderedIDs(t *testing.T, s store.Store, f *store.Filter, opt store.FindOptions) []string {
	t.Helper()
	var ids []string
	for _, r := range findAll(t, s, "Observation", f, opt) {
		ids = append(ids, r.ID)
	}
	return ids
}

// ownOrder returns the store's order without sort keys, after checking
// that it holds every row of rs once.
func ownOrder(t *testing.T, s store.Store, rs []*store.Resource) []string {
	t.Helper()
	own := orderedIDs(t, s, store.All(), store.FindOptions{})
	want := make([]string, len(rs))
	for i, r := range rs {
		want[i] = r.ID
	}
	if got := slices.Sorted(slices.Values(own)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("a Find without sort keys returned %v, not every row once", own)
	}
	return own
}

// testSortOrder checks Find's order against store.ComparePositions: sort
// keys in order, missing values last in either direction, ties by id;
// without keys, one fixed order for every filter and limit.
func testSortOrder(t *testing.T, s store.Store) {
	rs := seedSorted(t, s, 60)
	own := ownOrder(t, s, rs)
	for _, f := range []*store.Filter{store.All(), store.Eq("g", float64(1)), store.Gte("_sort.num.a", float64(2))} {
		for i, keys := range sortKeySets {
			want := reference(rs, keys, f, own)
			got := orderedIDs(t, s, f, store.FindOptions{Sort: keys})
			if !slices.Equal(got, want) {
				t.Errorf("keys %d %v filter %s: got %v\nwant %v", i, keys, f.Op, got, want)
			}
			if len(want) > 3 {
				got = orderedIDs(t, s, f, store.FindOptions{Sort: keys, Limit: 3})
				if !slices.Equal(got, want[:3]) {
					t.Errorf("keys %d limit 3: got %v, want %v", i, got, want[:3])
				}
			}
		}
	}
}

// pageAll reads every row of f in the order of keys, n rows a page, with
// the keyset cursor; between pages it calls between (if any).
func pageAll(t *testing.T, s store.Store, f *store.Filter, keys []store.SortKey, n int, between func(page int)) ([]string, int) {
	t.Helper()
	var ids []string
	var after *store.Position
	pages := 0
	for {
		cur, err := s.Find(ctx(t), "Observation", f, store.FindOptions{Sort: keys, Limit: n, After: after, IndexOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var last *store.Resource
		got := 0
		for {
			r, err := cur.Next(ctx(t))
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				break
			}
			if r.Index == nil && r.JSON == nil && r.ID == "" {
				t.Fatal("empty result")
			}
			ids = append(ids, r.ID)
			last = r
			got++
		}
		_ = cur.Close(ctx(t))
		pages++
		if got < n {
			return ids, pages
		}
		p := store.PositionOf(last, keys)
		after = &p
		if between != nil {
			between(pages)
		}
	}
}

// testKeysetPaging pages with After through every key set: the pages put
// together are the whole ordered result, each row once.
func testKeysetPaging(t *testing.T, s store.Store) {
	rs := seedSorted(t, s, 60)
	own := ownOrder(t, s, rs)
	for i, keys := range sortKeySets {
		for _, n := range []int{1, 7, 60} {
			want := reference(rs, keys, store.All(), own)
			got, _ := pageAll(t, s, store.All(), keys, n, nil)
			if !slices.Equal(got, want) {
				t.Errorf("keys %d %v, pages of %d: got %v\nwant %v", i, keys, n, got, want)
			}
		}
	}
	// Count agrees with what paging returns.
	f := store.Eq("g", float64(2))
	got, _ := pageAll(t, s, f, []store.SortKey{{Path: "_sort.date.d", Desc: true}}, 4, nil)
	if n, err := s.Count(ctx(t), "Observation", f); err != nil || int(n) != len(got) {
		t.Errorf("Count = %d, %v; paging read %d", n, err, len(got))
	}
}

// testPagingConcurrentWrites pages while other resources are created,
// updated (their sort values move) and deleted between pages: every
// resource left untouched appears exactly once.
func testPagingConcurrentWrites(t *testing.T, s store.Store) {
	for ki, keys := range [][]store.SortKey{
		{{Path: "_sort.date.d", Desc: true}},
		{{Path: "_sort.name.a"}, {Path: "_sort.num.d", Desc: true}},
		nil,
	} {
		t.Run(fmt.Sprint(ki), func(t *testing.T) {
			st := s
			prefix := fmt.Sprintf("k%d-", ki)
			current := map[string]*store.Resource{}
			for i := range 80 {
				r := res("Observation", fmt.Sprintf("%s%03d", prefix, (i*37)%80), 1, at(i%9), sortIndex(i))
				mustCreate(t, st, r)
				current[r.ID] = r
			}
			touched := map[string]bool{}
			seq := 0
			f := store.Prefix(store.PathID, prefix)
			var mu sync.Mutex
			got, _ := pageAll(t, st, f, keys, 6, func(page int) {
				mu.Lock()
				defer mu.Unlock()
				// Writes between pages: a create, an update that moves the sort
				// value, a delete.
				seq++
				nr := res("Observation", fmt.Sprintf("%snew%02d", prefix, seq), 1, at(seq), sortIndex(seq*3))
				mustCreate(t, st, nr)
				touched[nr.ID] = true
				id := fmt.Sprintf("%s%03d", prefix, (seq*11)%80)
				if r := current[id]; r != nil && !touched[id] {
					next := res("Observation", id, r.VersionID+1, at(20+seq), sortIndex(seq*5+1))
					mustUpdate(t, st, next, r)
					current[id] = next
					touched[id] = true
				}
				id = fmt.Sprintf("%s%03d", prefix, (seq*29+3)%80)
				if r := current[id]; r != nil && !touched[id] {
					mustUpdate(t, st, tomb("Observation", id, r.VersionID+1, at(40+seq)), r)
					delete(current, id)
					touched[id] = true
				}
			})
			// A resource updated while the client pages may move past the
			// cursor and come again (keyset paging is stateless); one that
			// does not change comes exactly once.
			seen := map[string]int{}
			for _, id := range got {
				seen[id]++
				if seen[id] > 1 && !touched[id] {
					t.Errorf("unchanged %s returned twice", id)
				}
			}
			for i := range 80 {
				id := fmt.Sprintf("%s%03d", prefix, i)
				if !touched[id] && seen[id] != 1 {
					t.Errorf("unchanged %s seen %d times", id, seen[id])
				}
			}
			if seq == 0 {
				t.Fatal("no writes happened between pages")
			}
		})
	}
}

// bulkInserter is the optional bulk load path of a store.
type bulkInserter interface {
	InsertMany(ctx context.Context, rs []*store.Resource) error
}

// LargeResultSize is the size of the result testLargeResult pages through:
// more than the 100,000 matches the search executor used to refuse.
const LargeResultSize = 100_001

// testLargeResult pages through more than 100,000 matches with the keyset
// cursor, sorted by a sort path, and counts them.
func testLargeResult(t *testing.T, s store.Store) {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bi, ok := s.(bulkInserter)
	batch := make([]*store.Resource, 0, 5000)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		var err error
		if ok {
			err = bi.InsertMany(c, batch)
		} else if ts, isTx := s.(store.Transactional); isTx {
			ws := make([]store.Write, len(batch))
			for i, r := range batch {
				ws[i] = store.Write{Next: r}
			}
			err = ts.Apply(c, ws)
		} else {
			for _, r := range batch {
				if err = s.Create(c, r); err != nil {
					break
				}
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range LargeResultSize {
		v := float64(i % 1000)
		batch = append(batch, &store.Resource{Type: "Observation", ID: fmt.Sprintf("l%06d", i), VersionID: 1, LastUpdated: at(0),
			JSON: []byte(`{}`), Index: map[string]any{"_sort": map[string]any{"v": map[string]any{"d": v}}}})
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
	if n, err := s.Count(c, "Observation", store.All()); err != nil || n != LargeResultSize {
		t.Fatalf("Count = %d, %v", n, err)
	}
	keys := []store.SortKey{{Path: "_sort.v.d", Desc: true}}
	var after *store.Position
	total := 0
	prev := store.Position{}
	for {
		cur, err := s.Find(c, "Observation", store.All(), store.FindOptions{Sort: keys, Limit: 10_000, After: after, IndexOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		var last *store.Resource
		for {
			r, err := cur.Next(c)
			if err != nil {
				t.Fatal(err)
			}
			if r == nil {
				break
			}
			p := store.PositionOf(r, keys)
			if total > 0 && store.ComparePositions(prev, p, keys) >= 0 {
				t.Fatalf("row %d (%s) out of order", total, r.ID)
			}
			prev = p
			n++
			total++
			last = r
		}
		_ = cur.Close(c)
		if n < 10_000 {
			break
		}
		pos := store.PositionOf(last, keys)
		after = &pos
	}
	if total != LargeResultSize {
		t.Fatalf("paged through %d rows, want %d", total, LargeResultSize)
	}
}

// testTxInvisibleUntilCommit runs a large Apply while a reader counts and
// reads: it sees either none of the transaction's writes or all of them.
func testTxInvisibleUntilCommit(t *testing.T, s store.Store) {
	ts, ok := s.(store.Transactional)
	if !ok {
		t.Fatal("store is not Transactional")
	}
	const n = 2000
	base := make([]*store.Resource, 0, n/2)
	for i := range n / 2 {
		r := res("Encounter", fmt.Sprintf("u%04d", i), 1, at(0), map[string]any{"batch": "a"})
		base = append(base, r)
	}
	for _, r := range base {
		mustCreate(t, s, r)
	}
	var ws []store.Write
	for i, r := range base {
		ws = append(ws, store.Write{Prev: r, Next: res("Encounter", r.ID, 2, at(1), map[string]any{"batch": "b"})})
		ws = append(ws, store.Write{Next: res("Encounter", fmt.Sprintf("v%04d", i), 1, at(1), map[string]any{"batch": "b"})})
	}
	done := make(chan error, 1)
	go func() { done <- ts.Apply(ctx(t), ws) }()
	reads := 0
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		nb, err := s.Count(ctx(t), "Encounter", store.Eq("batch", "b"))
		if err != nil {
			t.Fatal(err)
		}
		all, err := s.Count(ctx(t), "Encounter", store.All())
		if err != nil {
			t.Fatal(err)
		}
		if (nb != 0 || all != n/2) && (nb != n || all != n) {
			// The two counts are two reads: between them the commit may land.
			if !(nb == 0 && all == n) {
				t.Fatalf("partial transaction visible: %d of %d written, %d resources", nb, n, all)
			}
		}
		r, err := s.Read(ctx(t), "Encounter", "u0999")
		if err != nil {
			t.Fatal(err)
		}
		if r.VersionID == 2 {
			if _, err := s.Read(ctx(t), "Encounter", "v0000"); err != nil {
				t.Fatalf("last update visible, first create not: %v", err)
			}
		}
		reads++
	}
	if nb, err := s.Count(ctx(t), "Encounter", store.Eq("batch", "b")); err != nil || nb != n {
		t.Fatalf("after commit: %d, %v", nb, err)
	}
	t.Logf("%d reads during the transaction", reads)
}
