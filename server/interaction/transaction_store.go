package interaction

import (
	"context"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// txStore is the store a transaction's entries run against: writes are
// recorded (in order) instead of stored, and reads of a resource written
// earlier in the transaction return the recorded version. Everything else
// goes to the real store. It is used by one goroutine.
type txStore struct {
	store.Store
	pending map[string]*store.Resource
	writes  []store.Write
	// owner maps "Type/id" to the entry that wrote it; entry is the entry
	// running now.
	owner map[string]int
	entry int
}

// Read implements store.Store, seeing the transaction's own writes.
func (s *txStore) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	if r, ok := s.pending[typ+"/"+id]; ok {
		return r, nil
	}
	return s.Store.Read(ctx, typ, id)
}

// VRead implements store.Store, seeing the transaction's own writes.
func (s *txStore) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	if r, ok := s.pending[typ+"/"+id]; ok && r.VersionID == version {
		return r, nil
	}
	return s.Store.VRead(ctx, typ, id, version)
}

// Create implements store.Store by recording the create.
func (s *txStore) Create(ctx context.Context, r *store.Resource) error {
	if err := s.claim(r); err != nil {
		return err
	}
	if _, err := s.Store.Read(ctx, r.Type, r.ID); err == nil {
		return outcome.New(outcome.Duplicate, "resource already exists").WithDiagnostics(r.Key() + " already exists")
	} else if !outcome.Is(err, outcome.NotFound) {
		return err
	}
	s.record(store.Write{Next: r})
	return nil
}

// Update implements store.Store by recording the update.
func (s *txStore) Update(_ context.Context, next, prev *store.Resource) error {
	if err := s.claim(next); err != nil {
		return err
	}
	s.record(store.Write{Next: next, Prev: prev})
	return nil
}

// claim fails when another entry of the transaction already wrote r
// (https://hl7.org/fhir/R4/http.html#trules: identities must not overlap).
func (s *txStore) claim(r *store.Resource) error {
	if _, ok := s.pending[r.Key()]; ok {
		return outcome.New(outcome.Invalid, "the transaction writes the same resource more than once").
			WithDiagnostics(r.Key())
	}
	return nil
}

func (s *txStore) record(w store.Write) {
	k := w.Next.Key()
	s.pending[k] = w.Next
	s.owner[k] = s.entry
	s.writes = append(s.writes, w)
}

// Close implements store.Store; the real store stays open.
func (s *txStore) Close(context.Context) error { return nil }
