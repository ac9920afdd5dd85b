package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// InsertMany stores new resources (VersionID 1, not deleted) with one
// unordered insertMany per type. It is a bulk loader for seeding tests and
// benchmarks: it writes no history and runs no per-resource checks beyond
// the type; an existing id fails with outcome.Duplicate (others may be
// stored).
func (s *Store) InsertMany(ctx context.Context, rs []*store.Resource) error {
	const op = "mongostore.InsertMany"
	byType := map[string][]any{}
	var order []string
	for _, r := range rs {
		if err := checkType(op, r.Type); err != nil {
			return err
		}
		if r.ID == "" || r.VersionID != 1 || r.Deleted {
			return outcome.New(outcome.Exception, "insert needs an id, version 1 and content").WithOp(op)
		}
		if _, ok := byType[r.Type]; !ok {
			order = append(order, r.Type)
		}
		doc, err := marshalDoc(op, r)
		if err != nil {
			return err
		}
		byType[r.Type] = append(byType[r.Type], doc)
	}
	for _, t := range order {
		if err := s.ensure(ctx, t); err != nil {
			return err
		}
		if _, err := s.db.Collection(t).InsertMany(ctx, byType[t], options.InsertMany().SetOrdered(false)); err != nil {
			return translate(op, err)
		}
	}
	return nil
}

// ScanJSON is a plain driver scan of typ's current documents: no filter,
// no sort, only the stored JSON projected, fn called with each non-deleted
// resource's JSON (valid only during the call). It is the baseline export
// throughput is measured against.
func (s *Store) ScanJSON(ctx context.Context, typ string, fn func(js []byte) error) (int64, error) {
	const op = "mongostore.ScanJSON"
	if err := checkType(op, typ); err != nil {
		return 0, err
	}
	cur, err := s.db.Collection(typ).Find(ctx, query(nil),
		options.Find().SetProjection(bson.D{{Key: fJSON, Value: 1}}))
	if err != nil {
		return 0, translate(op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var n int64
	for cur.Next(ctx) {
		js, ok := cur.Current.Lookup(fJSON).StringValueOK()
		if !ok {
			continue
		}
		if err := fn([]byte(js)); err != nil {
			return n, err
		}
		n++
	}
	return n, translate(op, cur.Err())
}

// Scan is Find without an order: the current, non-deleted resources of typ
// matching f, in whatever order the database streams them (no sort, so
// no in-memory sort on the server either), for a full-collection read
// such as a bulk export.
func (s *Store) Scan(ctx context.Context, typ string, f *store.Filter) (store.Cursor, error) {
	const op = "mongostore.Scan"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	mc, err := s.db.Collection(typ).Find(ctx, query(normFilter(f)))
	if err != nil {
		return nil, translate(op, err)
	}
	return &cursor{typ: typ, cur: mc, withJSON: true}, nil
}
