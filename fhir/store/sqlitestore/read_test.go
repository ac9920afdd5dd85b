package sqlitestore

import (
	"context"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// TestReadJSON: ReadJSON is Read without the search values.
func TestReadJSON(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r := &store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: t0, JSON: []byte(`{"id":"p1"}`), Index: map[string]any{"name": "x"}}
	if err := s.Apply(ctx, []store.Write{{Next: r}}); err != nil {
		t.Fatal(err)
	}
	full, err := s.Read(ctx, "Patient", "p1")
	if err != nil || full.Index["name"] != "x" {
		t.Fatalf("Read = %+v, %v", full, err)
	}
	got, err := s.ReadJSON(ctx, "Patient", "p1")
	if err != nil || got.Index != nil || string(got.JSON) != `{"id":"p1"}` || got.VersionID != 1 || !got.LastUpdated.Equal(t0) || got.Deleted {
		t.Fatalf("ReadJSON = %+v, %v", got, err)
	}
	del := &store.Resource{Type: "Patient", ID: "p1", VersionID: 2, LastUpdated: t0.Add(time.Second), Deleted: true}
	if err := s.Apply(ctx, []store.Write{{Next: del, Prev: full}}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadJSON(ctx, "Patient", "p1"); err != nil || !got.Deleted || got.VersionID != 2 {
		t.Errorf("ReadJSON of a tombstone = %+v, %v", got, err)
	}
	if _, err := s.ReadJSON(ctx, "Patient", "nope"); !outcome.Is(err, outcome.NotFound) {
		t.Errorf("ReadJSON of nothing: %v", err)
	}
}

// openTemp opens a store on a fresh folder, closed when the test ends.
func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}
