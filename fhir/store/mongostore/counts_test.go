package mongostore

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// TestRoundTrips measures the commands each store call sends, from
// CommandCounts deltas: a read is one find, a create one insert, an update
// two (the history insert and the compare-and-swap replace), a page one
// find (also a sorted page larger than the server's default first batch),
// a type history page one find per collection, a count one aggregate.
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(i int) *store.Resource {
		d := t0.Add(time.Duration(i) * time.Hour)
		return &store.Resource{Type: "Observation", ID: fmt.Sprintf("o%03d", i), VersionID: 1, LastUpdated: t0, JSON: []byte(`{}`),
			Index: map[string]any{"_sort": map[string]any{"date": map[string]any{"a": d, "d": d}}, "subject": "Patient/p1"}}
	}
	if err := s.Create(ctx, mk(0)); err != nil { // creates the collections and indexes
		t.Fatal(err)
	}
	if err := s.Update(ctx, &store.Resource{Type: "Observation", ID: "o000", VersionID: 2, LastUpdated: t0}, mk(0)); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertMany(ctx, func() []*store.Resource {
		var rs []*store.Resource
		for i := 1; i < 300; i++ {
			rs = append(rs, mk(i))
		}
		return rs
	}()); err != nil {
		t.Fatal(err)
	}
	page := func(opt store.FindOptions) func() error {
		return func() error {
			c, err := s.Find(ctx, "Observation", store.Eq("subject", "Patient/p1"), opt)
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			n := 0
			for {
				r, err := c.Next(ctx)
				if err != nil {
					return err
				}
				if r == nil {
					break
				}
				n++
			}
			if n != opt.Limit {
				return fmt.Errorf("page of %d, want %d", n, opt.Limit)
			}
			return nil
		}
	}
	cur := mk(5)
	cases := []struct {
		name string
		fn   func() error
		want map[string]int64
	}{
		{"read", func() error { _, err := s.Read(ctx, "Observation", "o001"); return err }, map[string]int64{"find": 1}},
		{"create", func() error { return s.Create(ctx, mk(400)) }, map[string]int64{"insert": 1}},
		{"update", func() error {
			next := *cur
			next.VersionID = 2
			return s.Update(ctx, &next, cur)
		}, map[string]int64{"update": 1}}, // history copy and compare-and-swap in one command
		{"page sorted descending", page(store.FindOptions{Sort: []store.SortKey{{Path: "_sort.date.d", Desc: true}}, Limit: 50}), map[string]int64{"find": 1}},
		{"page sorted ascending", page(store.FindOptions{Sort: []store.SortKey{{Path: "_sort.date.a"}}, Limit: 50}), map[string]int64{"find": 1}},
		{"page after a cursor", page(store.FindOptions{Sort: []store.SortKey{{Path: "_sort.date.a"}}, Limit: 20,
			After: &store.Position{Values: []any{t0.Add(10 * time.Hour)}, ID: "o010"}}), map[string]int64{"find": 1}},
		{"page of 150", page(store.FindOptions{Sort: []store.SortKey{{Path: store.PathLastUpdated, Desc: true}}, Limit: 150}), map[string]int64{"find": 1}},
		{"type history page", func() error {
			_, err := s.History(ctx, store.HistoryQuery{Type: "Observation", Limit: 20})
			return err
		}, map[string]int64{"find": 2}}, // current and history documents
		{"count", func() error { _, err := s.Count(ctx, "Observation", store.Eq("subject", "Patient/p1")); return err }, map[string]int64{"aggregate": 1}},
	}
	for _, c := range cases {
		before := s.CommandCounts()
		if err := c.fn(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		after := s.CommandCounts()
		got := map[string]int64{}
		for k, v := range after {
			if d := v - before[k]; d != 0 {
				got[k] = d
			}
		}
		if !maps.Equal(got, c.want) {
			t.Errorf("%s: commands %v, want %v", c.name, got, c.want)
		}
	}
}

// TestCommandTally: the commands of a call whose context carries a tally
// are added to that tally only; calls without one are counted globally
// but in no tally.
func TestCommandTally(t *testing.T) {
	ctx := context.Background()
	s := openTest(t)
	defer s.Close(ctx)
	r := &store.Resource{Type: "Patient", ID: "t1", VersionID: 1, LastUpdated: time.Now().UTC().Truncate(time.Millisecond), JSON: []byte(`{}`)}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	ctxA, a := store.WithCommandTally(ctx)
	ctxB, b := store.WithCommandTally(ctx)
	for range 2 {
		if _, err := s.Read(ctxA, "Patient", "t1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Count(ctxB, "Patient", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ctx, "Patient", "t1"); err != nil {
		t.Fatal(err)
	}
	if got := a.Counts(); !maps.Equal(got, map[string]int{"find": 2}) {
		t.Errorf("tally A = %v, want find 2", got)
	}
	if got := b.Counts(); !maps.Equal(got, map[string]int{"aggregate": 1}) {
		t.Errorf("tally B = %v, want aggregate 1", got)
	}
}
