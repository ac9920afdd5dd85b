package mongostore

import (
	"context"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/store"
)

// Find implements store.Store (the storage half of
// https://hl7.org/fhir/R4/http.html#search): the filter, the sort, the
// keyset cursor (opt.After) and the limit all go to MongoDB, which
// evaluates every filter operator exactly as store.Filter.Match does, so
// nothing is re-checked or sorted here. Tombstones are never returned.
//
// MongoDB sorts a missing value first ascending (and last descending),
// while the contract wants it last in either direction. So an ascending
// sort on an Index path is split into the rows that have a value (sorted
// by it, from its index) and then those that have none (see plan.go): a
// page that the first part fills costs one query; a page reaching into
// the rows without a value costs one more. Descending keys, PathID and
// PathLastUpdated need no split.
func (s *Store) Find(ctx context.Context, typ string, f *store.Filter, opt store.FindOptions) (store.Cursor, error) {
	const op = "mongostore.Find"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	p := newPlan(s, typ, normFilter(f), opt)
	return p.cursor(ctx)
}

// Count implements store.Store: what Find would return, ignoring Limit and
// Skip, counted by the database (one aggregate round trip).
func (s *Store) Count(ctx context.Context, typ string, f *store.Filter) (int64, error) {
	const op = "mongostore.Count"
	if err := checkType(op, typ); err != nil {
		return 0, err
	}
	n, err := s.db.Collection(typ).CountDocuments(ctx, query(normFilter(f)))
	return n, translate(op, err)
}

// query returns the MongoDB query for f over the current, non-deleted
// documents: del exists (history documents have none, and it is the
// partial filter of the indexes on current documents, which MongoDB uses
// only for a query that repeats it) and is false.
func query(f *store.Filter) bson.D {
	return append(bson.D{{Key: fDeleted, Value: bson.D{{Key: "$exists", Value: true}, {Key: "$eq", Value: false}}}}, toBSON(f)...)
}

// matchNothing is a query no document satisfies.
var matchNothing = bson.D{{Key: fID, Value: bson.D{{Key: "$in", Value: bson.A{}}}}}

// toBSON translates f exactly (an empty document matches everything).
func toBSON(f *store.Filter) bson.D {
	if f == nil {
		return bson.D{}
	}
	switch f.Op {
	case store.OpAll:
		return bson.D{}
	case store.OpAnd:
		var parts bson.A
		for _, c := range f.Children {
			if d := toBSON(c); len(d) > 0 {
				parts = append(parts, d)
			}
		}
		switch len(parts) {
		case 0:
			return bson.D{}
		case 1:
			return parts[0].(bson.D)
		}
		return bson.D{{Key: "$and", Value: parts}}
	case store.OpOr:
		if len(f.Children) == 0 {
			return matchNothing
		}
		parts := make(bson.A, 0, len(f.Children))
		for _, c := range f.Children {
			d := toBSON(c)
			if len(d) == 0 {
				return bson.D{} // a child matching everything
			}
			parts = append(parts, d)
		}
		return bson.D{{Key: "$or", Value: parts}}
	case store.OpNot:
		if len(f.Children) == 0 {
			return bson.D{}
		}
		parts := make(bson.A, 0, len(f.Children))
		for _, c := range f.Children {
			d := toBSON(c)
			if len(d) == 0 {
				return matchNothing // not(everything)
			}
			parts = append(parts, d)
		}
		return bson.D{{Key: "$nor", Value: parts}}
	}
	cond, ok := leaf(f)
	if !ok {
		return matchNothing // a malformed leaf (e.g. Prefix on a number) matches nothing, as in Match
	}
	return bson.D{{Key: fieldPath(f.Path), Value: cond}}
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

// normFilter returns f with time values truncated to milliseconds (BSON
// date precision), so the database and Match agree. f is not modified.
func normFilter(f *store.Filter) *store.Filter {
	if f == nil {
		return store.All()
	}
	g := *f
	g.Value = normValue(f.Value)
	if f.Values != nil {
		g.Values = make([]any, len(f.Values))
		for i, v := range f.Values {
			g.Values[i] = normValue(v)
		}
	}
	if f.Children != nil {
		g.Children = make([]*store.Filter, len(f.Children))
		for i, c := range f.Children {
			g.Children[i] = normFilter(c)
		}
	}
	return &g
}

func normValue(v any) any {
	if t, ok := v.(time.Time); ok {
		return ms(t)
	}
	return v
}

// cursor is a store.Cursor over one MongoDB cursor: it decodes and drops
// tombstones (which the query already excludes).
type cursor struct {
	typ      string
	cur      *mongo.Cursor
	withJSON bool
	// limit, when set, is the query's limit: after that many documents
	// the cursor ends without asking the server for more (a getMore).
	limit, n int
}

// Next implements store.Cursor.
func (c *cursor) Next(ctx context.Context) (*store.Resource, error) {
	for (c.limit == 0 || c.n < c.limit) && c.cur.Next(ctx) {
		c.n++
		r, err := decode(c.typ, c.cur.Current, c.withJSON)
		if err != nil {
			return nil, err
		}
		if r.Deleted {
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

// findOptions returns the driver options of one query of a plan.
func findOptions(sort bson.D, indexOnly bool, skip, limit int) *options.FindOptionsBuilder {
	fo := options.Find().SetSort(sort)
	if indexOnly {
		fo.SetProjection(bson.D{{Key: fJSON, Value: 0}})
	}
	if skip > 0 {
		fo.SetSkip(int64(skip))
	}
	if limit > 0 {
		// The whole page in the first reply: no getMore round trip. A
		// batch one larger than the limit lets the server see the limit
		// reached and close the cursor itself (no killCursors; FerretDB
		// keeps it open when the batch size equals the limit).
		fo.SetLimit(int64(limit)).SetBatchSize(int32(min(limit+1, 1<<20)))
	}
	return fo
}
