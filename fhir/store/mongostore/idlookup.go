package mongostore

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/store"
)

// maxIDLookups bounds the point lookups a Find by _id does instead of a query.
const maxIDLookups = 1000

// idCandidates returns the ids f can only match among, when f pins the
// logical id (Eq or In on PathID, alone or in an And): a superset of f's
// matches, as Match re-checks each.
func idCandidates(f *store.Filter) ([]string, bool) {
	if f == nil {
		return nil, false
	}
	switch f.Op {
	case store.OpEq:
		if f.Path != store.PathID {
			return nil, false
		}
		s, ok := f.Value.(string)
		if !ok {
			return []string{}, true // ids are strings: nothing matches
		}
		return []string{s}, true
	case store.OpIn:
		if f.Path != store.PathID {
			return nil, false
		}
		ids := make([]string, 0, len(f.Values))
		seen := map[string]bool{}
		for _, v := range f.Values {
			if s, ok := v.(string); ok && !seen[s] {
				seen[s] = true
				ids = append(ids, s)
			}
		}
		return ids, true
	case store.OpAnd:
		var best []string
		found := false
		for _, c := range f.Children {
			if ids, ok := idCandidates(c); ok && (!found || len(ids) < len(best)) {
				best, found = ids, true
			}
		}
		return best, found
	}
	return nil, false
}

// findByIDs serves a Find whose filter pins the id on the embedded store,
// where only {_id} point lookups are index-served: it reads each candidate
// by _id, keeps current non-deleted matches, and sorts, skips and limits in
// Go with MongoDB's sort semantics.
func (s *Store) findByIDs(ctx context.Context, typ string, ids []string, f *store.Filter, opt store.FindOptions) ([]*store.Resource, error) {
	const op = "mongostore.Find"
	fo := options.FindOne()
	if opt.IndexOnly {
		fo.SetProjection(bson.D{{Key: fJSON, Value: 0}})
	}
	coll := s.db.Collection(typ)
	var out []*store.Resource
	for _, id := range ids {
		raw, err := coll.FindOne(ctx, bson.D{{Key: fID, Value: id}}, fo).Raw()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, translate(op, err)
		}
		r, err := decode(typ, raw, !opt.IndexOnly)
		if err != nil {
			return nil, err
		}
		if !r.Deleted && f.Match(r) {
			out = append(out, r)
		}
	}
	sortResources(out, opt.Sort)
	if opt.Skip >= len(out) {
		return nil, nil
	}
	out = out[opt.Skip:]
	if opt.Limit > 0 && len(out) > opt.Limit {
		out = out[:opt.Limit]
	}
	return out, nil
}

// sliceCursor is a store.Cursor over resources already in memory.
type sliceCursor struct{ rs []*store.Resource }

// Next implements store.Cursor.
func (c *sliceCursor) Next(context.Context) (*store.Resource, error) {
	if len(c.rs) == 0 {
		return nil, nil
	}
	r := c.rs[0]
	c.rs = c.rs[1:]
	return r, nil
}

// Close implements store.Cursor.
func (c *sliceCursor) Close(context.Context) error { c.rs = nil; return nil }
