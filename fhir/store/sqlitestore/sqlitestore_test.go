package sqlitestore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// openDir opens the store of the data folder dir; the test closes it at
// its end (a store the test closed before is closed again harmlessly).
func openDir(t *testing.T, dir string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), sqlitestore.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// TestTwoStoresOneFile opens the same database twice (as two processes
// would): a search path first written through one is found through the
// other, a lease held by one excludes the other, and a version swapped by
// one makes the other's stale update a conflict.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := openDir(t, dir), openDir(t, dir)
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

// TestReadManyAndCount checks the batch read (tombstones included, ids
// that never existed left out) and that a count of one equality leaves a
// deleted resource out.
func TestReadManyAndCount(t *testing.T) {
	ctx := context.Background()
	s := openDir(t, t.TempDir())
	now := time.Now()
	for _, id := range []string{"a", "b"} {
		r := &store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: now, JSON: []byte(`{}`), Index: map[string]any{"family": "Smith"}}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	prev, err := s.Read(ctx, "Patient", "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, &store.Resource{Type: "Patient", ID: "b", VersionID: 2, LastUpdated: now, Deleted: true}, prev); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadMany(ctx, "Patient", []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] == nil || got["a"].Deleted || got["b"] == nil || !got["b"].Deleted || got["b"].VersionID != 2 {
		t.Fatalf("ReadMany = %v", got)
	}
	if n, err := s.Count(ctx, "Patient", store.Eq("family", "Smith")); err != nil || n != 1 {
		t.Fatalf("Count(family=Smith) = %d, %v, want 1", n, err)
	}
}

// TestBackgroundCheckpoint: commits do not checkpoint, the checkpointer
// does, while the store stays open: after a batch of writes the pages
// reach the database file within a few checkpoint intervals, and the
// write-ahead log stops growing.
func TestBackgroundCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openDir(t, dir)
	db := filepath.Join(dir, sqlitestore.FileName)
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	before := size(db)
	lu := time.Now().UTC().Truncate(time.Millisecond)
	var writes []store.Write
	for i := range 2000 {
		writes = append(writes, store.Write{Next: &store.Resource{Type: "Patient", ID: fmt.Sprintf("c%05d", i), VersionID: 1, LastUpdated: lu,
			JSON:  []byte(`{"resourceType":"Patient","id":"` + fmt.Sprintf("c%05d", i) + `","name":[{"family":"` + strings.Repeat("x", 200) + `"}]}`),
			Index: map[string]any{"family": map[string]any{"n": fmt.Sprintf("x%05d", i)}}}})
	}
	if err := s.Apply(ctx, writes); err != nil {
		t.Fatal(err)
	}
	if size(db+"-wal") < 500_000 {
		t.Fatalf("write-ahead log of %d bytes after 2000 writes", size(db+"-wal"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for size(db) < before+500_000 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes (was %d): the log was not checkpointed while the store is open", size(db), before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	// Once a checkpoint has caught up, the next transaction starts the log
	// over instead of growing it.
	for i := 0; ; i++ {
		wal := size(db + "-wal")
		if err := s.Create(ctx, &store.Resource{Type: "Patient", ID: fmt.Sprintf("after%d", i), VersionID: 1, LastUpdated: lu, JSON: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if size(db+"-wal") <= wal {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the write-ahead log still grows (%d bytes): it is never started over", size(db+"-wal"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
