package interaction

import (
	"context"
	"net/url"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/search"
	"github.com/casefhir/casefhir/fhir/store"
)

// SearchResolver resolves the criteria of conditional interactions with
// package search: the database narrows, every candidate is checked exactly.
type SearchResolver struct {
	Registry *search.Registry
	Store    store.Store
	// Base is the server's public base URL (absolute references under it
	// match as local).
	Base string
}

// Resolve returns up to two matches: enough to tell none, one and many.
func (sr SearchResolver) Resolve(ctx context.Context, typ string, q url.Values, access Access) ([]*store.Resource, error) {
	query, err := sr.Registry.Parse(typ, q, true)
	if err != nil {
		return nil, err
	}
	query.Base = sr.Base
	for _, c := range query.Clauses {
		if len(c.Chain) > 0 || c.Has != nil {
			return nil, outcome.New(outcome.NotSupported, "chained and _has criteria are not supported in conditional interactions")
		}
	}
	cur, err := sr.Store.Find(ctx, typ, query.Filter(), store.FindOptions{})
	if err != nil {
		return nil, err
	}
	defer func() { _ = cur.Close(context.WithoutCancel(ctx)) }()
	var out []*store.Resource
	for len(out) < 2 {
		res, err := cur.Next(ctx)
		if err != nil {
			return nil, err
		}
		if res == nil {
			break
		}
		if query.Matches(res.Index) {
			out = append(out, res)
		}
	}
	return out, nil
}
