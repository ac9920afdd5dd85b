package store

import (
	"context"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// BatchReader is implemented by stores that read the current versions of
// many resources of one type in one round trip.
type BatchReader interface {
	// ReadMany returns, by id, the current version (tombstones included)
	// of each of ids that exists; ids that never existed are left out.
	ReadMany(ctx context.Context, typ string, ids []string) (map[string]*Resource, error)
}

// ReadMany reads the current versions of ids with s's ReadMany when it
// has one, else with one Read each.
func ReadMany(ctx context.Context, s Store, typ string, ids []string) (map[string]*Resource, error) {
	if br, ok := s.(BatchReader); ok {
		return br.ReadMany(ctx, typ, ids)
	}
	out := make(map[string]*Resource, len(ids))
	for _, id := range ids {
		r, err := s.Read(ctx, typ, id)
		if outcome.Is(err, outcome.NotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = r
	}
	return out, nil
}

// JSONReader is implemented by stores that can read a current version
// without its search values, which then cost nothing to decode.
type JSONReader interface {
	// ReadJSON is Read with a nil Index, for a caller that looks at no
	// search value.
	ReadJSON(ctx context.Context, typ, id string) (*Resource, error)
}

// ReadJSON reads the current version of Type/id with s's ReadJSON when it
// has one (Index nil), else with Read (Index set).
func ReadJSON(ctx context.Context, s Store, typ, id string) (*Resource, error) {
	if jr, ok := s.(JSONReader); ok {
		return jr.ReadJSON(ctx, typ, id)
	}
	return s.Read(ctx, typ, id)
}
