package sqlitestore_test

import (
	"context"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/sqlitestore"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

func open(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) { storetest.Run(t, open) }

// TestTwoStoresOneFile opens the same database twice (as two processes
// would): a search path first written through one is found through the
// other, a lease held by one excludes the other, and a version swapped by
// one makes the other's stale update a conflict.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := sqlitestore.Open(ctx, sqlitestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	b, err := sqlitestore.Open(ctx, sqlitestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	r := &store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.Now(), JSON: []byte(`{}`),
		Index: map[string]any{"family": "Smith", "born": time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if err := a.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	// b has never seen the paths "family" and "born".
	for _, f := range []*store.Filter{store.Eq("family", "Smith"), store.Lt("born", time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC))} {
		if n, err := b.Count(ctx, "Patient", f); err != nil || n != 1 {
			t.Fatalf("Count through the other store (%s %s) = %d, %v", f.Op, f.Path, n, err)
		}
	}
	unlock, err := a.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.Lock(short, "k", time.Minute); !outcome.Is(err, outcome.Timeout) {
		t.Fatalf("lease held through the other store: %v", err)
	}
	if err := unlock(ctx); err != nil {
		t.Fatal(err)
	}
	next := *r
	next.VersionID = 2
	if err := a.Update(ctx, &next, r); err != nil {
		t.Fatal(err)
	}
	stale := *r
	stale.VersionID = 2
	if err := b.Update(ctx, &stale, r); !outcome.Is(err, outcome.Conflict) {
		t.Fatalf("stale update through the other store: %v", err)
	}
}
