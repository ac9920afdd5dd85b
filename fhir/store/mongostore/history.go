package mongostore

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/store"
)

// DefaultHistoryLimit is the number of versions History returns when
// HistoryQuery.Limit is 0.
const DefaultHistoryLimit = 100

// History implements https://hl7.org/fhir/R4/http.html#history at instance,
// type and system level: versions newest first (LastUpdated, then version,
// then type and id), with Since, At, Before, Offset and Limit. Instance
// history of a resource that never existed is outcome.NotFound. On the
// embedded store instance history reads only the versions the page needs,
// assuming LastUpdated grows with the version (see instanceHistoryByVersion).
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	const op = "mongostore.History"
	if q.Limit <= 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Offset < 0 {
		q.Offset = 0
	}
	q.Since, q.At, q.Before = msOrZero(q.Since), msOrZero(q.At), msOrZero(q.Before)
	switch {
	case q.ID != "":
		if err := checkType(op, q.Type); err != nil {
			return nil, err
		}
		return s.instanceHistory(ctx, q)
	case q.Type != "":
		if err := checkType(op, q.Type); err != nil {
			return nil, err
		}
		return s.typesHistory(ctx, q, []string{q.Type})
	default:
		types, err := s.Types(ctx)
		if err != nil {
			return nil, err
		}
		return s.typesHistory(ctx, q, types)
	}
}

func msOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return ms(t)
}

// instanceHistory: the current document plus its history documents, by
// point lookups on the embedded store and the {rid, v} index on MongoDB.
func (s *Store) instanceHistory(ctx context.Context, q store.HistoryQuery) ([]*store.Resource, error) {
	const op = "mongostore.History"
	cur, err := s.findOne(ctx, op, q.Type, q.Type, q.ID)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		return nil, notFound(op, q.Type, q.ID)
	}
	if s.embedded {
		return s.instanceHistoryByVersion(ctx, q, cur)
	}
	// MongoDB: the {rid: 1, v: -1} index serves the older versions.
	f := bson.D{{Key: fRID, Value: q.ID}, {Key: fVersion, Value: bson.D{{Key: "$lt", Value: cur.VersionID}}}}
	rs, err := s.findAll(ctx, q.Type, q.Type+historySuffix, f,
		options.Find().SetSort(bson.D{{Key: fRID, Value: 1}, {Key: fVersion, Value: -1}}))
	if err != nil {
		return nil, err
	}
	all := append([]*store.Resource{cur}, rs...)
	return page(selectVersions(all, q), q), nil
}

// instanceHistoryByVersion is instance history on the embedded store: point
// lookups of "<id>/<v>" walking down from the current version, only as far
// as the page needs. It relies on versions being written in LastUpdated
// order (the server stamps each new version with its clock, and one process
// owns embedded data), so it stops at the first version older than Since.
func (s *Store) instanceHistoryByVersion(ctx context.Context, q store.HistoryQuery, cur *store.Resource) ([]*store.Resource, error) {
	const op = "mongostore.History"
	var out []*store.Resource
	skipped := 0
	for v := cur.VersionID; v >= 1 && len(out) < q.Limit; v-- {
		r := cur
		if v != cur.VersionID {
			var err error
			if r, err = s.findOne(ctx, op, q.Type+historySuffix, q.Type, historyID(q.ID, v)); err != nil {
				return nil, err
			}
			if r == nil {
				continue
			}
		}
		if !q.At.IsZero() && r.LastUpdated.After(q.At) {
			continue
		}
		if !q.Since.IsZero() && r.LastUpdated.Before(q.Since) {
			break
		}
		inBounds := q.Before.IsZero() || r.LastUpdated.Before(q.Before)
		if inBounds {
			if skipped < q.Offset {
				skipped++
			} else {
				out = append(out, r)
			}
		}
		if !q.At.IsZero() {
			break // the version current at At
		}
	}
	slices.SortFunc(out, newestFirst)
	return out, nil
}

// typesHistory merges current and history collections of types. Without At
// it fetches only the newest Offset+Limit of each collection, growing the
// window if de-duplication left too few.
func (s *Store) typesHistory(ctx context.Context, q store.HistoryQuery, types []string) ([]*store.Resource, error) {
	f := bson.D{}
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
	if len(lu) > 0 {
		f = append(f, bson.E{Key: fLU, Value: lu})
	}
	sort := bson.D{{Key: fLU, Value: -1}, {Key: fVersion, Value: -1}}
	want := q.Offset + q.Limit
	n := int64(want)
	for {
		var all []*store.Resource
		full := false
		for _, typ := range types {
			for _, coll := range []string{typ, typ + historySuffix} {
				fo := options.Find().SetSort(sort)
				if q.At.IsZero() {
					fo.SetLimit(n)
				}
				rs, err := s.findAll(ctx, typ, coll, f, fo)
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
		if !q.Before.IsZero() && !r.LastUpdated.Before(q.Before) {
			continue
		}
		out = append(out, r)
	}
	return out
}

func newestFirst(a, b *store.Resource) int {
	if c := b.LastUpdated.Compare(a.LastUpdated); c != 0 {
		return c
	}
	if c := cmp.Compare(b.VersionID, a.VersionID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Type, b.Type); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
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
