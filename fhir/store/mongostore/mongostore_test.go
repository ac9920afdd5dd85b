package mongostore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
	"github.com/casefhir/casefhir/fhir/store/embedded"
	"github.com/casefhir/casefhir/fhir/store/storetest"
)

// srv is the embedded FerretDB shared by this test binary (one per binary,
// as starting it costs time); every test uses its own database.
var srv *embedded.Server

var dbSeq atomic.Int64

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mongostore-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv, err = embedded.Start(context.Background(), embedded.Options{DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded FerretDB:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "close embedded FerretDB:", err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// openEmbedded opens a Store on a fresh database of the shared server.
func openEmbedded(tb testing.TB) (*Store, string) {
	tb.Helper()
	db := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{URI: srv.URI(), Database: db, Embedded: true, OnCollection: srv.EnsureIDIndex})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s, db
}

func TestStoreEmbedded(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openEmbedded(t)
		return s
	})
}

// TestIDIndexUsed checks reads by id are served by the SQLite expression
// index on every collection the store creates, including at re-Open.
func TestIDIndexUsed(t *testing.T) {
	ctx := context.Background()
	s, db := openEmbedded(t)
	r := &store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.Now(), JSON: []byte(`{}`)}
	if err := s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	next := *r
	next.VersionID = 2
	if err := s.Update(ctx, &next, r); err != nil {
		t.Fatal(err)
	}
	for _, coll := range []string{"Patient", "Patient_history", locksColl} {
		plan, err := srv.IDLookupPlan(ctx, db, coll)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "USING INDEX") || !strings.Contains(plan, "_casefhir_id") {
			t.Errorf("%s: id lookup plan does not use the expression index:\n%s", coll, plan)
		}
	}
	s.Close(ctx)
	s2, err := Open(ctx, Options{URI: srv.URI(), Database: db, Embedded: true, OnCollection: srv.EnsureIDIndex})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	got, err := s2.VRead(ctx, "Patient", "p1", 1)
	if err != nil || got.VersionID != 1 {
		t.Fatalf("VRead after reopen: %v %v", got, err)
	}
}
