package mongostore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

// scanTwin opens a second store on db that never uses the in-memory search
// index: what a search answers from the database itself.
func scanTwin(tb testing.TB, db string) *Store {
	tb.Helper()
	ctx := context.Background()
	s, err := Open(ctx, Options{URI: srv.URI(), Database: db, Embedded: true, OnCollection: srv.EnsureIDIndex, LazySearchIndex: true})
	if err != nil {
		tb.Fatal(err)
	}
	s.scanOnly = true
	tb.Cleanup(func() { s.Close(ctx) })
	return s
}

// summary renders a Find result as "id@version" lines, with the index when
// IndexOnly (so index trees are compared too).
func summary(tb testing.TB, s *Store, typ string, f *store.Filter, opt store.FindOptions) string {
	tb.Helper()
	ctx := context.Background()
	cur, err := s.Find(ctx, typ, f, opt)
	if err != nil {
		tb.Fatalf("Find: %v", err)
	}
	defer cur.Close(ctx)
	var b strings.Builder
	for {
		r, err := cur.Next(ctx)
		if err != nil {
			tb.Fatalf("Next: %v", err)
		}
		if r == nil {
			return b.String()
		}
		fmt.Fprintf(&b, "%s@%d %s", r.ID, r.VersionID, r.LastUpdated.Format(time.RFC3339Nano))
		if opt.IndexOnly {
			fmt.Fprintf(&b, " %v", r.Index)
		} else {
			fmt.Fprintf(&b, " %s", r.JSON)
		}
		b.WriteByte('\n')
	}
}

// findOpts are the sort, skip and limit shapes compareWithScan tries.
var findOpts = []store.FindOptions{
	{IndexOnly: true},
	{},
	{IndexOnly: true, Sort: []store.SortKey{{Path: "age", Desc: true}}, Skip: 1, Limit: 3},
	{Sort: []store.SortKey{{Path: store.PathLastUpdated, Desc: true}}, Limit: 2},
}

// compareWithScan checks storetest filters (all of them, or k picked at
// random with random options) and Count give the same answer on the table
// as on a scan.
func compareWithScan(t *testing.T, s, scan *Store, typ, when string, rng *rand.Rand, k int) {
	t.Helper()
	filters := storetest.FindFilters()
	picks := make([]int, 0, len(filters))
	if k == 0 {
		for i := range filters {
			picks = append(picks, i)
		}
	} else {
		for range k {
			picks = append(picks, rng.IntN(len(filters)))
		}
	}
	for _, i := range picks {
		f := filters[i]
		j := 0
		if k > 0 {
			j = rng.IntN(len(findOpts))
		}
		opt := findOpts[j]
		got, want := summary(t, s, typ, f, opt), summary(t, scan, typ, f, opt)
		if got != want {
			t.Fatalf("%s: filter %d (%s %s), options %d: table answers\n%s\nscan answers\n%s", when, i, f.Op, f.Path, j, got, want)
		}
		ctx := context.Background()
		n1, err1 := s.Count(ctx, typ, f)
		n2, err2 := scan.Count(ctx, typ, f)
		if n1 != n2 || err1 != nil || err2 != nil {
			t.Fatalf("%s: filter %d: Count %d (%v) on the table, %d (%v) on a scan", when, i, n1, err1, n2, err2)
		}
	}
}

// randomWriter makes random creates, updates, deletes, re-creates,
// transactions and bulk inserts on typ with fixture index trees.
type randomWriter struct {
	t    *testing.T
	s    *Store
	typ  string
	rng  *rand.Rand
	cur  map[string]*store.Resource // current version by id (tombstones too)
	ids  []string
	seq  int
	tick time.Time
}

func (w *randomWriter) index() map[string]any {
	fx := storetest.Fixture()
	return fx[w.rng.IntN(len(fx))].Index
}

func (w *randomWriter) next(prev *store.Resource, id string) *store.Resource {
	w.tick = w.tick.Add(time.Millisecond * time.Duration(1+w.rng.IntN(3)))
	r := &store.Resource{Type: w.typ, ID: id, VersionID: 1, LastUpdated: w.tick}
	if prev != nil {
		r.VersionID = prev.VersionID + 1
	}
	if prev != nil && !prev.Deleted && w.rng.IntN(4) == 0 {
		r.Deleted = true
		return r
	}
	r.Index = w.index()
	r.JSON = fmt.Appendf(nil, `{"id":%q,"v":%d}`, id, r.VersionID)
	return r
}

func (w *randomWriter) newID() string {
	w.seq++
	id := fmt.Sprintf("r%d", w.seq)
	w.ids = append(w.ids, id)
	return id
}

func (w *randomWriter) step() {
	ctx := context.Background()
	switch k := w.rng.IntN(10); {
	case k < 3 || len(w.ids) == 0:
		r := w.next(nil, w.newID())
		if err := w.s.Create(ctx, r); err != nil {
			w.t.Fatal(err)
		}
		w.cur[r.ID] = r
	case k < 7:
		id := w.ids[w.rng.IntN(len(w.ids))]
		r := w.next(w.cur[id], id)
		if err := w.s.Update(ctx, r, w.cur[id]); err != nil {
			w.t.Fatal(err)
		}
		w.cur[id] = r
	case k < 9:
		var ws []store.Write
		used := map[string]bool{}
		for range 1 + w.rng.IntN(4) {
			if w.rng.IntN(3) == 0 {
				ws = append(ws, store.Write{Next: w.next(nil, w.newID())})
				continue
			}
			id := w.ids[w.rng.IntN(len(w.ids))]
			if used[id] || w.cur[id] == nil {
				continue
			}
			used[id] = true
			ws = append(ws, store.Write{Next: w.next(w.cur[id], id), Prev: w.cur[id]})
		}
		if err := w.s.Apply(ctx, ws); err != nil {
			w.t.Fatal(err)
		}
		for _, x := range ws {
			w.cur[x.Next.ID] = x.Next
		}
	default:
		var rs []*store.Resource
		for range 1 + w.rng.IntN(3) {
			r := w.next(nil, w.newID())
			r.Deleted, r.Index = false, w.index()
			r.JSON = []byte(`{}`)
			rs = append(rs, r)
		}
		if err := w.s.InsertMany(ctx, rs); err != nil {
			w.t.Fatal(err)
		}
		for _, r := range rs {
			w.cur[r.ID] = r
		}
	}
}

// TestMemIndexInStep makes random writes of every kind and checks after
// each batch that Find and Count on the table answer what a scan answers,
// for every storetest filter.
func TestMemIndexInStep(t *testing.T) {
	s, db := openEmbedded(t)
	defer s.Close(context.Background())
	scan := scanTwin(t, db)
	w := &randomWriter{t: t, s: s, typ: "Patient", rng: rand.New(rand.NewPCG(1, 2)), cur: map[string]*store.Resource{},
		tick: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	for round := range 8 {
		for range 15 {
			w.step()
		}
		compareWithScan(t, s, scan, "Patient", fmt.Sprintf("round %d", round), w.rng, 12)
	}
	compareWithScan(t, s, scan, "Patient", "at the end", w.rng, 0)
	if s.mem.lookup("Patient") == nil {
		t.Fatal("no table was loaded")
	}
}

// TestMemIndexRecovery checks a table loaded after Open sees what journal
// recovery rolled forward.
func TestMemIndexRecovery(t *testing.T) {
	ctx := context.Background()
	s, db := openEmbedded(t)
	a := txRes("Patient", "a", 1, "a1")
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx, "Patient", store.All()); err != nil || n != 1 {
		t.Fatalf("Count: %d %v", n, err)
	}
	a2 := next(a, "a2")
	journal(t, s, "T1", []store.Write{{Next: txRes("Patient", "c1", 1, "c1")}, {Next: a2, Prev: a}}, true)
	s.Close(ctx)

	s2, err := Open(ctx, Options{URI: srv.URI(), Database: db, Embedded: true, OnCollection: srv.EnsureIDIndex})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	scan := scanTwin(t, db)
	for _, f := range []*store.Filter{store.All(), store.Eq("name", "a2"), store.Eq("name", "a1"), store.Eq("name", "c1")} {
		got, want := summary(t, s2, "Patient", f, store.FindOptions{IndexOnly: true}), summary(t, scan, "Patient", f, store.FindOptions{IndexOnly: true})
		if got != want {
			t.Errorf("%s %v: table\n%s\nscan\n%s", f.Op, f.Value, got, want)
		}
	}
	if got := summary(t, s2, "Patient", store.Eq("name", "a2"), store.FindOptions{IndexOnly: true}); !strings.HasPrefix(got, "a@2 ") {
		t.Errorf("rolled-forward version not found: %q", got)
	}
}

// TestMemIndexConcurrentLoad updates resources from several goroutines
// while the table loads (and after): once they stop, every resource is at
// its stored version in the table. The last round loads from Open.
func TestMemIndexConcurrentLoad(t *testing.T) {
	ctx := context.Background()
	seed, db := openEmbedded(t)
	const n = 2000
	rs := make([]*store.Resource, n)
	for i := range rs {
		rs[i] = txRes("Patient", fmt.Sprintf("c%d", i), 1, "0")
	}
	if err := seed.InsertMany(ctx, rs); err != nil {
		t.Fatal(err)
	}
	seed.Close(ctx)

	for round := range 3 {
		s, err := Open(ctx, Options{URI: srv.URI(), Database: db, Embedded: true, OnCollection: srv.EnsureIDIndex, LazySearchIndex: round != 2})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var loads sync.WaitGroup
		stop := make(chan struct{})
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					// Each goroutine owns the ids i with i%4 == g.
					id := fmt.Sprintf("c%d", rng.IntN(n/4)*4+g)
					cur, err := s.Read(ctx, "Patient", id)
					if err != nil {
						t.Error(err)
						return
					}
					nx := next(cur, fmt.Sprint(cur.VersionID))
					if rng.IntN(5) == 0 {
						nx.Deleted, nx.Index, nx.JSON = true, nil, nil
					}
					if err := s.Update(ctx, nx, cur); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round*20) * time.Millisecond)
		for range 3 {
			loads.Add(1)
			go func() {
				defer loads.Done()
				if _, err := s.Count(ctx, "Patient", store.All()); err != nil {
					t.Error(err)
				}
			}()
		}
		loads.Wait()
		time.Sleep(50 * time.Millisecond)
		close(stop)
		wg.Wait()
		scan := scanTwin(t, db)
		for _, f := range []*store.Filter{store.All(), store.Exists("name", true), store.Eq("name", "1")} {
			got, want := summary(t, s, "Patient", f, store.FindOptions{IndexOnly: true}), summary(t, scan, "Patient", f, store.FindOptions{IndexOnly: true})
			if got != want {
				t.Fatalf("round %d, %s: the table and the scan differ (%d vs %d bytes)", round, f.Op, len(got), len(want))
			}
		}
		s.Close(ctx)
	}
}

// TestMemIndexResultsAreCopies checks that index-only results are not the
// table's entries: a caller changing one does not change the next search.
func TestMemIndexResultsAreCopies(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	if err := s.Create(ctx, txRes("Patient", "a", 1, "x")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		cur, err := s.Find(ctx, "Patient", store.All(), store.FindOptions{IndexOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		r, err := cur.Next(ctx)
		if err != nil || r == nil || r.VersionID != 1 || r.ID != "a" {
			t.Fatalf("Find: %+v %v", r, err)
		}
		r.VersionID, r.ID, r.Deleted = 7, "b", true
	}
}

// TestMemIndexLargeFetchScans checks a Find with JSON matching most of a
// collection reads it by scan and still answers exactly.
func TestMemIndexLargeFetchScans(t *testing.T) {
	ctx := context.Background()
	s, db := openEmbedded(t)
	defer s.Close(ctx)
	var rs []*store.Resource
	for i := range 300 {
		rs = append(rs, txRes("Patient", fmt.Sprintf("x%03d", i), 1, fmt.Sprint(i%3)))
	}
	if err := s.InsertMany(ctx, rs); err != nil {
		t.Fatal(err)
	}
	scan := scanTwin(t, db)
	for _, f := range []*store.Filter{store.All(), store.Eq("name", "1"), store.Eq("name", "nope")} {
		for _, opt := range []store.FindOptions{{}, {Limit: 10, Skip: 5}, {Sort: []store.SortKey{{Path: "name", Desc: true}}}} {
			if got, want := summary(t, s, "Patient", f, opt), summary(t, scan, "Patient", f, opt); got != want {
				t.Fatalf("%s %v %+v: table and scan differ", f.Op, f.Value, opt)
			}
		}
	}
}
