package mongostore

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// findOne reads one document of coll by _id, a point lookup on both
// backends. It returns (nil, nil) when there is none.
func (s *Store) findOne(ctx context.Context, op, coll, typ, id string) (*store.Resource, error) {
	raw, err := s.db.Collection(coll).FindOne(ctx, bson.D{{Key: fID, Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, translate(op, err)
	}
	r, err := decode(typ, raw, true)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Read implements https://hl7.org/fhir/R4/http.html#read: the current
// version, tombstones included.
func (s *Store) Read(ctx context.Context, typ, id string) (*store.Resource, error) {
	const op = "mongostore.Read"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	r, err := s.findOne(ctx, op, typ, typ, id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound(op, typ, id)
	}
	return r, nil
}

// VRead implements https://hl7.org/fhir/R4/http.html#vread: the current
// document when its version matches, else a point lookup of "<id>/<v>" in
// <Type>_history.
func (s *Store) VRead(ctx context.Context, typ, id string, version int64) (*store.Resource, error) {
	const op = "mongostore.VRead"
	if err := checkType(op, typ); err != nil {
		return nil, err
	}
	cur, err := s.findOne(ctx, op, typ, typ, id)
	if err != nil {
		return nil, err
	}
	if cur == nil || version < 1 || version > cur.VersionID {
		return nil, notFound(op, typ, id)
	}
	if cur.VersionID == version {
		return cur, nil
	}
	r, err := s.findOne(ctx, op, typ+historySuffix, typ, historyID(id, version))
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, notFound(op, typ, id)
	}
	return r, nil
}

// Create implements store.Store (https://hl7.org/fhir/R4/http.html#create
// after the id is chosen): one insert, one round trip; a duplicate _id is
// outcome.Duplicate.
func (s *Store) Create(ctx context.Context, r *store.Resource) error {
	const op = "mongostore.Create"
	if err := checkType(op, r.Type); err != nil {
		return err
	}
	if r.ID == "" || r.VersionID != 1 {
		return outcome.New(outcome.Exception, "create needs an id and version 1").WithOp(op)
	}
	if err := s.ensure(ctx, r.Type); err != nil {
		return err
	}
	doc, err := marshalDoc(op, r)
	if err != nil {
		return err
	}
	if _, err := s.db.Collection(r.Type).InsertOne(ctx, doc); err != nil {
		err = translate(op, err)
		if outcome.Is(err, outcome.Duplicate) {
			return outcome.As(err).WithDiagnostics(r.Key() + " already exists")
		}
		return err
	}
	return nil
}

// Update implements store.Store (https://hl7.org/fhir/R4/http.html#update
// and #delete, as a tombstone version) in two round trips: the previous
// version is copied to <Type>_history (idempotently), then the current
// document is replaced only if it is still prev, a compare-and-swap on
// {_id, v} that MongoDB applies atomically. Otherwise outcome.Conflict; a
// history copy left by a failed or interrupted update duplicates a
// still-current version and is ignored by readers.
func (s *Store) Update(ctx context.Context, next, prev *store.Resource) error {
	const op = "mongostore.Update"
	if err := checkType(op, next.Type); err != nil {
		return err
	}
	if prev == nil || next.Type != prev.Type || next.ID != prev.ID || next.ID == "" || next.VersionID != prev.VersionID+1 {
		return outcome.New(outcome.Exception, "update needs next to follow prev of the same resource").WithOp(op)
	}
	if err := s.ensure(ctx, next.Type+historySuffix); err != nil {
		return err
	}
	doc, err := marshalDoc(op, next)
	if err != nil {
		return err
	}
	if err := s.insertHistory(ctx, op, encodeHistory(prev), next.Type); err != nil {
		return err
	}
	res, err := s.db.Collection(next.Type).ReplaceOne(ctx,
		bson.D{{Key: fID, Value: next.ID}, {Key: fVersion, Value: prev.VersionID}}, doc)
	if err != nil {
		return translate(op, err)
	}
	if res.MatchedCount == 0 {
		return conflict(op, next)
	}
	return nil
}

// marshalDoc encodes r as a current-version document.
func marshalDoc(op string, r *store.Resource) (bson.Raw, error) {
	b, err := bson.Marshal(encode(r))
	if err != nil {
		return nil, outcome.Wrap(driverError("unencodable index", 0), outcome.Exception, op, "the resource could not be stored")
	}
	return b, nil
}

// insertHistory inserts a history document; one already there (a retried
// or interrupted update) is fine.
func (s *Store) insertHistory(ctx context.Context, op string, doc bson.D, typ string) error {
	_, err := s.db.Collection(typ+historySuffix).InsertOne(ctx, doc)
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return translate(op, err)
	}
	return nil
}

func conflict(op string, r *store.Resource) error {
	return store.Conflict(op, r, "resource version conflict", r.Key()+" is no longer at the expected version")
}
