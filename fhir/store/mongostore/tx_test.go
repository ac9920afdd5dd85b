package mongostore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

func txRes(typ, id string, v int64, body string) *store.Resource {
	return &store.Resource{Type: typ, ID: id, VersionID: v, LastUpdated: time.Now().UTC().Truncate(time.Millisecond),
		JSON: []byte(body), Index: map[string]any{"name": body}}
}

func next(r *store.Resource, body string) *store.Resource {
	n := txRes(r.Type, r.ID, r.VersionID+1, body)
	n.LastUpdated = r.LastUpdated.Add(time.Millisecond)
	return n
}

func TestApplyJournal(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	a := txRes("Patient", "a", 1, `{"n":"a1"}`)
	b := txRes("Patient", "b", 1, `{"n":"b1"}`)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, b); err != nil {
		t.Fatal(err)
	}
	del := next(b, "")
	del.Deleted, del.JSON, del.Index = true, nil, nil
	writes := []store.Write{
		{Next: txRes("Observation", "o1", 1, `{"n":"o1"}`)},
		{Next: next(a, `{"n":"a2"}`), Prev: a},
		{Next: del, Prev: b},
	}
	if err := s.Apply(ctx, writes); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Read(ctx, "Observation", "o1"); err != nil || string(r.JSON) != `{"n":"o1"}` {
		t.Fatalf("o1: %v %v", r, err)
	}
	if r, err := s.Read(ctx, "Patient", "a"); err != nil || r.VersionID != 2 {
		t.Fatalf("a: %v %v", r, err)
	}
	if r, err := s.VRead(ctx, "Patient", "a", 1); err != nil || string(r.JSON) != `{"n":"a1"}` {
		t.Fatalf("a/1: %v %v", r, err)
	}
	if r, err := s.Read(ctx, "Patient", "b"); err != nil || !r.Deleted {
		t.Fatalf("b: %v %v", r, err)
	}
	if n, _ := s.db.Collection(txlogColl).CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("%d journal documents left", n)
	}

	// A stale prev, or a create of an existing resource, writes nothing.
	for _, bad := range [][]store.Write{
		{{Next: txRes("Observation", "o2", 1, `{}`)}, {Next: next(a, `{"n":"stale"}`), Prev: a}},
		{{Next: txRes("Observation", "o2", 1, `{}`)}, {Next: txRes("Observation", "o1", 1, `{}`)}},
	} {
		err := s.Apply(ctx, bad)
		if !outcome.Is(err, outcome.Conflict) {
			t.Fatalf("want conflict, got %v", err)
		}
		if _, err := s.Read(ctx, "Observation", "o2"); !outcome.Is(err, outcome.NotFound) {
			t.Errorf("o2 stored by a failed Apply: %v", err)
		}
	}
}

// journal writes a transaction's journal as Apply does before its commit
// point, with the marker when committed: what a crash leaves behind.
func journal(t *testing.T, s *Store, tx string, writes []store.Write, committed bool) {
	t.Helper()
	ctx := context.Background()
	if err := s.ensure(ctx, txlogColl); err != nil {
		t.Fatal(err)
	}
	var w bson.A
	for _, x := range writes {
		p := int64(0)
		if x.Prev != nil {
			p = x.Prev.VersionID
		}
		w = append(w, bson.D{{Key: jType, Value: x.Next.Type}, {Key: jPrev, Value: p}, {Key: jDoc, Value: encode(x.Next)}})
	}
	now := bson.NewDateTimeFromTime(time.Now())
	log := s.db.Collection(txlogColl)
	blob, err := bson.Marshal(bson.D{{Key: jWrites, Value: w}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.InsertOne(ctx, bson.D{{Key: fID, Value: tx + "/0"}, {Key: jTx, Value: tx}, {Key: jAt, Value: now}, {Key: jWrites, Value: bson.Binary{Data: blob}}}); err != nil {
		t.Fatal(err)
	}
	if committed {
		if _, err := log.InsertOne(ctx, bson.D{{Key: fID, Value: tx}, {Key: jChunks, Value: int64(1)}, {Key: jAt, Value: now}}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJournalRecovery checks Open rolls committed journals forward (also
// when partly applied) and discards uncommitted ones.
func TestJournalRecovery(t *testing.T) {
	ctx := context.Background()
	s, db := openEmbedded(t)
	a := txRes("Patient", "a", 1, `{"n":"a1"}`)
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	a2 := next(a, `{"n":"a2"}`)
	// committed, and half applied: c1 already inserted, a not yet updated
	committed := []store.Write{{Next: txRes("Patient", "c1", 1, `{}`)}, {Next: a2, Prev: a}, {Next: txRes("Patient", "c2", 1, `{}`)}}
	journal(t, s, "T1", committed, true)
	if err := s.Create(ctx, committed[0].Next); err != nil {
		t.Fatal(err)
	}
	// uncommitted
	journal(t, s, "T2", []store.Write{{Next: txRes("Patient", "u1", 1, `{}`)}, {Next: next(a2, `{"n":"a3"}`), Prev: a2}}, false)
	s.Close(ctx)

	s2, err := Open(ctx, Options{URI: srv.URI(), Database: db, Embedded: true, OnCollection: srv.EnsureIDIndex})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	for _, id := range []string{"c1", "c2"} {
		if _, err := s2.Read(ctx, "Patient", id); err != nil {
			t.Errorf("committed %s missing: %v", id, err)
		}
	}
	if r, err := s2.Read(ctx, "Patient", "a"); err != nil || r.VersionID != 2 {
		t.Errorf("a: %v %v", r, err)
	}
	if r, err := s2.VRead(ctx, "Patient", "a", 1); err != nil || string(r.JSON) != `{"n":"a1"}` {
		t.Errorf("a/1: %v %v", r, err)
	}
	if _, err := s2.Read(ctx, "Patient", "u1"); !outcome.Is(err, outcome.NotFound) {
		t.Errorf("uncommitted u1 visible: %v", err)
	}
	if n, _ := s2.db.Collection(txlogColl).CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("%d journal documents left", n)
	}
}

// TestApplyConcurrent runs conflicting Apply calls and single updates on
// the same resources: every acknowledged write is there, none is lost.
func TestApplyConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := openEmbedded(t)
	defer s.Close(ctx)
	keys := []string{"k1", "k2", "k3"}
	for _, k := range keys {
		if err := s.Create(ctx, txRes("Patient", k, 1, `0`)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				var ws []store.Write
				// different goroutines list the keys in different orders
				for j := range keys {
					k := keys[(j+g)%len(keys)]
					cur, err := s.Read(ctx, "Patient", k)
					if err != nil {
						t.Error(err)
						return
					}
					n, _ := strconv.Atoi(string(cur.JSON))
					ws = append(ws, store.Write{Next: next(cur, strconv.Itoa(n+1)), Prev: cur})
				}
				err := s.Apply(ctx, ws)
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case !outcome.Is(err, outcome.Conflict):
					t.Error(err)
				}
			}
		}(g)
	}
	wg.Wait()
	for _, k := range keys {
		r, err := s.Read(ctx, "Patient", k)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.JSON) != strconv.Itoa(wins) || r.VersionID != int64(wins+1) {
			t.Errorf("%s: value %s version %d, %d transactions won", k, r.JSON, r.VersionID, wins)
		}
	}
	t.Logf("%d of 80 transactions won", wins)
}

// BenchmarkApply100 measures Apply of 100-resource create transactions
// against the raw driver inserting the same documents with InsertMany, on
// the same embedded backend; it reports resources/s.
func BenchmarkApply100(b *testing.B) {
	ctx := context.Background()
	s, _ := openEmbedded(b)
	defer s.Close(ctx)
	for _, coll := range []string{"Patient", "PatientRaw"} {
		if err := s.ensure(ctx, coll); err != nil {
			b.Fatal(err)
		}
	}
	const n = 100
	seq := 0
	batch := func() []*store.Resource {
		rs := make([]*store.Resource, n)
		for i := range rs {
			seq++
			rs[i] = benchResource("Patient", fmt.Sprintf("t%d", seq))
		}
		return rs
	}
	b.Run("apply", func(b *testing.B) {
		start := time.Now()
		for b.Loop() {
			rs := batch()
			ws := make([]store.Write, n)
			for i, r := range rs {
				ws[i] = store.Write{Next: r}
			}
			if err := s.Apply(ctx, ws); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "resources/s")
	})
	b.Run("raw-insertmany", func(b *testing.B) {
		c := s.db.Collection("PatientRaw")
		start := time.Now()
		for b.Loop() {
			rs := batch()
			docs := make([]any, n)
			for i, r := range rs {
				docs[i] = encode(r)
			}
			if _, err := c.InsertMany(ctx, docs); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*n)/time.Since(start).Seconds(), "resources/s")
	})
}
