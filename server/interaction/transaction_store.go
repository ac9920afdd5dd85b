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
	// stored holds what prefetch read of the store, by "Type/id"; a key
	// in it with a nil value does not exist.
	stored map[string]*store.Resource
}

// prefetch reads the current versions of keys ("Type/id") in one query
// per type, so that the entries' reads of them need no round trip each.
// A concurrent write after it is caught by Apply's version check, as for
// any read before Apply.
func (s *txStore) prefetch(ctx context.Context, keys map[string][]string) error {
	for typ, ids := range keys {
		found, err := store.ReadMany(ctx, s.Store, typ, ids)
		if err != nil {
			return err
		}
		if s.stored == nil {
			s.stored = map[string]*store.Resource{}
		}
		for _, id := range ids {
			s.stored[typ+"/"+id] = found[id]
		}
	}
	return nil
}

// readStored reads Type/id from the prefetched versions, else the store.
func (s *txStore) readStored(ctx context.Context, typ, id string) (*store.Resource, error) {
	if r, ok := s.stored[typ+"/"+id]; ok {
		if r == nil {
			return nil, outcome.New(outcome.NotFound, "resource not found").WithDiagnostics(typ + "/" + id + " not found")
		}
		return r, nil
	}
	return s.Store.Read(ctx, typ, id)
}

// Read implements store.Store, seeing the transaction's own writes.
func (s *txStore) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	if r, ok := s.pending[typ+"/"+id]; ok {
		return r, nil
	}
	return s.readStored(ctx, typ, id)
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
	if _, err := s.readStored(ctx, r.Type, r.ID); err == nil {
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
