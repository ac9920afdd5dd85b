package mongostore

import (
	"context"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/store"
)

// DefaultHistoryLimit is the number of versions History returns when
// HistoryQuery.Limit is 0.
const DefaultHistoryLimit = 100

// History implements https://hl7.org/fhir/R4/http.html#history at instance,
// type and system level: versions in the order of store.VersionKey
// (LastUpdated descending, then type and id ascending, then version
// descending), with Since, At, Before, After (keyset), Offset and Limit.
// Each kind of document of a type's collection is read through its
// history-order index ({lu: -1, _id: 1} on current documents,
// {lu: -1, rid: 1, v: -1} on history documents), only as far as the page
// needs, with the keyset condition pushed down; the pages are merged here.
// Instance history of a resource that never existed is outcome.NotFound.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	const op = "mongostore.History"
	if q.Limit <= 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Offset < 0 {
		q.Offset = 0
	}
	q.Since, q.At, q.Before = msOrZero(q.Since), msOrZero(q.At), msOrZero(q.Before)
	if q.After != nil {
		k := *q.After
		k.LastUpdated = ms(k.LastUpdated)
		q.After = &k
	}
	switch {
	case q.ID != "":
		if err := checkType(op, q.Type); err != nil {
			return nil, err
		}
		cur, err := s.findOne(ctx, op, q.Type, q.Type, q.ID)
		if err != nil {
			return nil, err
		}
		if cur == nil {
			return nil, notFound(op, q.Type, q.ID)
		}
		return s.typesHistory(ctx, q, []string{q.Type})
	case q.Type != "":
		if err := checkType(op, q.Type); err != nil {
			return nil, err
		}
		return s.typesHistory(ctx, q, []string{q.Type})
	default:
		// Every resource collection, without Types' probe for data (an
		// empty collection answers its page query with nothing).
		names, err := s.db.ListCollectionNames(ctx, bson.D{})
		if err != nil {
			return nil, translate(op, err)
		}
		var types []string
		for _, n := range names {
			if checkType(op, n) == nil {
				types = append(types, n)
			}
		}
		slices.Sort(types)
		return s.typesHistory(ctx, q, types)
	}
}

func msOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return ms(t)
}

// typesHistory merges the current and the history documents of types.
// Without At it fetches only the first Offset+Limit of each kind in
// history order, growing the window if de-duplication left too few.
func (s *Store) typesHistory(ctx context.Context, q store.HistoryQuery, types []string) ([]*store.Resource, error) {
	lu := bson.D{}
	if !q.At.IsZero() {
		lu = append(lu, bson.E{Key: "$lte", Value: q.At})
	} else {
		if !q.Since.IsZero() {
			lu = append(lu, bson.E{Key: "$gte", Value: q.Since})
		}
		if !q.Before.IsZero() {
			lu = append(lu, bson.E{Key: "$lt", Value: q.Before})
		}
	}
	want := q.Offset + q.Limit
	n := int64(want)
	for {
		var all []*store.Resource
		full := false
		for _, typ := range types {
			for _, hist := range []bool{false, true} {
				// Each kind of document with the partial filter of its
				// indexes (see indexModels).
				idField, kind := fID, fDeleted
				sort := bson.D{{Key: fLU, Value: -1}, {Key: fID, Value: 1}}
				if hist {
					idField, kind = fRID, fRID
					sort = bson.D{{Key: fLU, Value: -1}, {Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}
				}
				cond := bson.D{{Key: "$exists", Value: true}}
				f := bson.D{{Key: kind, Value: cond}}
				if q.ID != "" && hist {
					f[0].Value = append(cond, bson.E{Key: "$eq", Value: q.ID})
				} else if q.ID != "" {
					f = append(f, bson.E{Key: idField, Value: q.ID})
				}
				if len(lu) > 0 {
					f = append(f, bson.E{Key: fLU, Value: lu})
				}
				if q.After != nil && q.At.IsZero() {
					// With At, an older version may be the one current at
					// At: After is applied after that choice, below.
					f = append(f, bson.E{Key: "$or", Value: historyAfter(typ, idField, *q.After)})
				}
				fo := options.Find().SetSort(sort)
				if q.At.IsZero() {
					fo.SetLimit(n).SetBatchSize(int32(min(n+1, 1<<20))) // see findOptions
				}
				rs, err := s.findAll(ctx, typ, typ, f, fo)
				if err != nil {
					return nil, err
				}
				if q.At.IsZero() && int64(len(rs)) == n {
					full = true
				}
				all = append(all, rs...)
			}
		}
		sel := selectVersions(all, q)
		if len(sel) >= want || !full {
			return page(sel, q), nil
		}
		n *= 2
	}
}

// historyAfter is the keyset condition "after k in history order" for the
// documents of one collection of type typ (idField: the FHIR id's field),
// as the alternatives of an $or.
func historyAfter(typ, idField string, k store.VersionKey) bson.A {
	lu := bson.NewDateTimeFromTime(k.LastUpdated)
	older := bson.D{{Key: fLU, Value: bson.D{{Key: "$lt", Value: lu}}}}
	switch {
	case typ < k.Type:
		return bson.A{older}
	case typ > k.Type:
		return bson.A{bson.D{{Key: fLU, Value: bson.D{{Key: "$lte", Value: lu}}}}}
	}
	return bson.A{
		older,
		bson.D{{Key: fLU, Value: lu}, {Key: idField, Value: bson.D{{Key: "$gt", Value: k.ID}}}},
		bson.D{{Key: fLU, Value: lu}, {Key: idField, Value: k.ID}, {Key: fVersion, Value: bson.D{{Key: "$lt", Value: k.VersionID}}}},
	}
}

// findAll decodes every document of coll matching f.
func (s *Store) findAll(ctx context.Context, typ, coll string, f bson.D, fo *options.FindOptionsBuilder) ([]*store.Resource, error) {
	const op = "mongostore.History"
	cur, err := s.db.Collection(coll).Find(ctx, f, fo)
	if err != nil {
		return nil, translate(op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []*store.Resource
	for cur.Next(ctx) {
		r, err := decode(typ, cur.Current, true)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := cur.Err(); err != nil {
		return nil, translate(op, err)
	}
	return out, nil
}

// selectVersions de-duplicates versions (a history copy of a still-current
// version), applies At (per resource, the newest version at or before it),
// Since and Before, and orders newest first.
func selectVersions(all []*store.Resource, q store.HistoryQuery) []*store.Resource {
	slices.SortFunc(all, newestFirst)
	out := all[:0]
	type key struct {
		typ, id string
		v       int64
	}
	seen := map[key]bool{}
	atSeen := map[string]bool{}
	for _, r := range all {
		k := key{r.Type, r.ID, r.VersionID}
		if seen[k] {
			continue
		}
		seen[k] = true
		if !q.At.IsZero() {
			if r.LastUpdated.After(q.At) || atSeen[r.Key()] {
				continue
			}
			atSeen[r.Key()] = true
		}
		if !q.Since.IsZero() && r.LastUpdated.Before(q.Since) {
			continue
		}
		if q.After != nil && !afterKey(r, *q.After) {
			continue
		}
		if !q.Before.IsZero() && !r.LastUpdated.Before(q.Before) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// newestFirst is the history order of store.VersionKey.
func newestFirst(a, b *store.Resource) int {
	return store.CompareVersions(store.KeyOf(a), store.KeyOf(b))
}

func page(rs []*store.Resource, q store.HistoryQuery) []*store.Resource {
	if q.Offset >= len(rs) {
		return nil
	}
	rs = rs[q.Offset:]
	if len(rs) > q.Limit {
		rs = rs[:q.Limit]
	}
	return rs
}

// afterKey reports whether r comes strictly after k in history order.
func afterKey(r *store.Resource, k store.VersionKey) bool {
	return store.CompareVersions(store.KeyOf(r), k) > 0
}

// moveHistory moves the documents of coll, a <Type>_history collection of
// an earlier version of this store ({_id: "<id>/<v>", rid, v, lu, del, j,
// x}), into typ's collection as history documents, 500 per command, then
// drops coll. Each move is an upsert of the same version, so a move
// interrupted by a crash is completed on the next open.
func (s *Store) moveHistory(ctx context.Context, coll, typ string) error {
	const op = "mongostore.Open"
	if err := s.ensure(ctx, typ); err != nil {
		return err
	}
	cur, err := s.db.Collection(coll).Find(ctx, bson.D{})
	if err != nil {
		return translate(op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var batch []mongo.WriteModel
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := s.db.Collection(typ).BulkWrite(ctx, batch, options.BulkWrite().SetOrdered(false))
		batch = batch[:0]
		return translate(op, err)
	}
	n := 0
	for cur.Next(ctx) {
		r, err := decode(typ, cur.Current, true)
		if err != nil {
			return err
		}
		h := encodeHistory(r)
		batch = append(batch, mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: fID, Value: h[0].Value}}).SetReplacement(h).SetUpsert(true))
		n++
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := cur.Err(); err != nil {
		return translate(op, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if err := s.db.Collection(coll).Drop(ctx); err != nil {
		return translate(op, err)
	}
	s.log.InfoContext(ctx, "history moved into the type's collection", "type", typ, "versions", n)
	return nil
}
