package mongostore

import (
	"context"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/store"
)

// Find implements store.Store (the storage half of
// https://hl7.org/fhir/R4/http.html#search): the filter is translated to a
// MongoDB query as far as the backend evaluates it exactly, every result is
// re-checked with Filter.Match, and tombstones are never returned. Skip and
// Limit are pushed down only when the whole filter is; otherwise they are
// applied after Match. On the embedded store Find is served by the
// in-memory search index (memindex.go), and a filter pinning the id (Eq or
// In on _id, alone or in an And) by point lookups, not a scan.
func (s *Store) Find(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	const op = "mongostore.Find"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	f = normFilter(f)
	if s.useTable() {
		c, ok, err := s.findEmbedded(ctx, typ, f, opt)
		if err != nil || ok {
			return c, err
		}
	} else if ids, ok := idCandidates(f); ok && s.embedded && len(ids) <= maxIDLookups {
		rs, err := s.findByIDs(ctx, typ, ids, f, opt)
		if err != nil {
			return nil, err
		}
		return &sliceCursor{rs: rs}, nil
	}
	q, exact := s.query(f)
	fo := options.Find()
	if opt.IndexOnly {
		fo.SetProjection(bson.D{{Key: fJSON, Value: 0}})
	}
	fo.SetSort(sortDoc(opt.Sort))
	c := &cursor{typ: typ, f: f, withJSON: !opt.IndexOnly, skip: opt.Skip, limit: opt.Limit}
	if exact {
		if opt.Skip > 0 {
			fo.SetSkip(int64(opt.Skip))
		}
		if opt.Limit > 0 {
			fo.SetLimit(int64(opt.Limit))
		}
		c.skip = 0
	}
	mc, err := s.db.Collection(typ).Find(ctx, q, fo)
	if err != nil {
		return nil, translate(op, err)
	}
	c.cur = mc
	return c, nil
}

// Count implements store.Store: what Find would return, ignoring Limit and
// Skip. A fully pushed-down filter is counted by the database; otherwise
// candidates are fetched without their JSON and checked with Match. On the
// embedded store the in-memory search index counts.
func (s *Store) Count(ctx context.Context, typ string, f *store.Filter) (int64, error) {
	const op = "mongostore.Count"
	if err := checkType(op, typ); err != nil {
		return 0, err
	}
	f = normFilter(f)
	if s.useTable() {
		t, err := s.table(ctx, typ)
		if err != nil {
			return 0, err
		}
		return countTable(t, f), nil
	}
	if ids, ok := idCandidates(f); ok && s.embedded && len(ids) <= maxIDLookups {
		rs, err := s.findByIDs(ctx, typ, ids, f, store.FindOptions{IndexOnly: true})
		return int64(len(rs)), err
	}
	q, exact := s.query(f)
	if exact {
		n, err := s.db.Collection(typ).CountDocuments(ctx, q)
		return n, translate(op, err)
	}
	mc, err := s.db.Collection(typ).Find(ctx, q, options.Find().SetProjection(bson.D{{Key: fJSON, Value: 0}}))
	if err != nil {
		return 0, translate(op, err)
	}
	c := &cursor{typ: typ, f: f, cur: mc}
	defer c.Close(context.WithoutCancel(ctx))
	var n int64
	for {
		r, err := c.Next(ctx)
		if err != nil {
			return 0, err
		}
		if r == nil {
			return n, nil
		}
		n++
	}
}

// query returns the MongoDB query for f (tombstones excluded) and whether it
// selects exactly what f matches; when not, it selects a superset.
func (s *Store) query(f *store.Filter) (bson.D, bool) {
	d, exact := s.toBSON(f)
	q := bson.D{{Key: fDeleted, Value: false}}
	return append(q, d...), exact
}

// matchNothing is a query no document satisfies.
var matchNothing = bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: bson.A{}}}}}

// toBSON translates f. The result is a superset of f's matches; exact says
// it is f itself. Leaves the backend cannot evaluate like Match become {}.
func (s *Store) toBSON(f *store.Filter) (bson.D, bool) {
	if f == nil {
		return bson.D{}, true
	}
	switch f.Op {
	case store.OpAll:
		return bson.D{}, true
	case store.OpAnd:
		exact := true
		var parts bson.A
		for _, c := range f.Children {
			d, ok := s.toBSON(c)
			exact = exact && ok
			if len(d) > 0 {
				parts = append(parts, d)
			}
		}
		switch len(parts) {
		case 0:
			return bson.D{}, exact
		case 1:
			return parts[0].(bson.D), exact
		}
		return bson.D{{Key: "$and", Value: parts}}, exact
	case store.OpOr:
		if len(f.Children) == 0 {
			return matchNothing, true
		}
		exact, all := true, false
		parts := make(bson.A, 0, len(f.Children))
		for _, c := range f.Children {
			d, ok := s.toBSON(c)
			if len(d) == 0 {
				if ok {
					return bson.D{}, true // a child matching everything
				}
				all = true // a child matching a superset of everything
			}
			exact = exact && ok
			parts = append(parts, d)
		}
		if all {
			return bson.D{}, false
		}
		return bson.D{{Key: "$or", Value: parts}}, exact
	case store.OpNot:
		if len(f.Children) == 0 {
			return bson.D{}, true
		}
		parts := make(bson.A, 0, len(f.Children))
		for _, c := range f.Children {
			d, ok := s.toBSON(c)
			if !ok {
				return bson.D{}, false // the negation of a superset is not one
			}
			if len(d) == 0 {
				return matchNothing, true // not(everything)
			}
			parts = append(parts, d)
		}
		return bson.D{{Key: "$nor", Value: parts}}, true
	}
	if !s.canPush(f) {
		return bson.D{}, false
	}
	cond, ok := leaf(f)
	if !ok {
		return bson.D{}, false
	}
	return bson.D{{Key: fieldPath(f.Path), Value: cond}}, true
}

// leaf returns the operator document of a comparison filter.
func leaf(f *store.Filter) (bson.D, bool) {
	op := func(name string, v any) (bson.D, bool) { return bson.D{{Key: name, Value: bsonValue(v)}}, true }
	switch f.Op {
	case store.OpEq:
		return op("$eq", f.Value)
	case store.OpIn:
		vs := make(bson.A, len(f.Values))
		for i, v := range f.Values {
			vs[i] = bsonValue(v)
		}
		return bson.D{{Key: "$in", Value: vs}}, true
	case store.OpLt:
		return op("$lt", f.Value)
	case store.OpLte:
		return op("$lte", f.Value)
	case store.OpGt:
		return op("$gt", f.Value)
	case store.OpGte:
		return op("$gte", f.Value)
	case store.OpPrefix, store.OpContains:
		v, ok := f.Value.(string)
		if !ok {
			return nil, false
		}
		pat := regexp.QuoteMeta(v)
		if f.Op == store.OpPrefix {
			pat = "^" + pat
		}
		return bson.D{{Key: "$regex", Value: pat}}, true
	case store.OpExists:
		v, ok := f.Value.(bool)
		if !ok {
			return nil, false
		}
		return bson.D{{Key: "$exists", Value: v}}, true
	}
	return nil, false
}

// bsonValue converts a filter value for the driver (index trees as in
// indexValue).
func bsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any, []any:
		return indexValue(x)
	}
	return v
}

// fieldPath maps a filter or sort path to a document field.
func fieldPath(p string) string {
	switch p {
	case store.PathID:
		return fID
	case store.PathLastUpdated:
		return fLU
	}
	return fIndex + "." + p
}

func sortDoc(keys []store.SortKey) bson.D {
	d := make(bson.D, 0, len(keys)+1)
	seen := map[string]bool{}
	for _, k := range keys {
		p := fieldPath(k.Path)
		if seen[p] {
			continue
		}
		seen[p] = true
		dir := 1
		if k.Desc {
			dir = -1
		}
		d = append(d, bson.E{Key: p, Value: dir})
	}
	if !seen[fID] {
		d = append(d, bson.E{Key: fID, Value: 1})
	}
	return d
}

// cursor is the store.Cursor of Find: it decodes, drops tombstones and
// non-matches, and applies any Skip/Limit left to it.
type cursor struct {
	typ         string
	f           *store.Filter
	cur         *mongo.Cursor
	withJSON    bool
	skip, limit int
	n           int
}

// Next implements store.Cursor.
func (c *cursor) Next(ctx context.Context) (*store.Resource, error) {
	for {
		if c.limit > 0 && c.n >= c.limit {
			return nil, nil
		}
		r, err := c.next(ctx)
		if r == nil || err != nil {
			return nil, err
		}
		if c.skip > 0 {
			c.skip--
			continue
		}
		c.n++
		return r, nil
	}
}

// next returns the next matching resource, before Skip/Limit.
func (c *cursor) next(ctx context.Context) (*store.Resource, error) {
	for c.cur.Next(ctx) {
		r, err := decode(c.typ, c.cur.Current, c.withJSON)
		if err != nil {
			return nil, err
		}
		if r.Deleted || !c.f.Match(r) {
			continue
		}
		return r, nil
	}
	return nil, translate("mongostore.Find", c.cur.Err())
}

// Close implements store.Cursor.
func (c *cursor) Close(ctx context.Context) error {
	return translate("mongostore.Find", c.cur.Close(ctx))
}
