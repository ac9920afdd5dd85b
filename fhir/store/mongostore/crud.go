package mongostore

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
// document when its version matches, else a point lookup of the history
// document "~<id>/<v>".
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
	r, err := s.findOne(ctx, op, typ, typ, historyID(id, version))
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
// and #delete, as a tombstone version) in one round trip: one ordered
// update command on <Type> with two statements,
//   - an upsert of prev's history document (_id "~<id>/<v>"): a copy left
//     by an earlier failed or interrupted update is the same version;
//   - the compare-and-swap: a replace of the current document filtered on
//     {_id, v: prev's version}, which MongoDB applies atomically.
//
// The command's n (documents matched or upserted) is 2 when both applied;
// 1 means the current document is no longer prev: outcome.Conflict. The
// history copy comes first, so a crash between the statements or a lost
// compare-and-swap leaves a copy of a version that was current, which
// readers ignore (History de-duplicates).
func (s *Store) Update(ctx context.Context, next, prev *store.Resource) error {
	const op = "mongostore.Update"
	if err := checkType(op, next.Type); err != nil {
		return err
	}
	if prev == nil || next.Type != prev.Type || next.ID != prev.ID || next.ID == "" || next.VersionID != prev.VersionID+1 {
		return outcome.New(outcome.Exception, "update needs next to follow prev of the same resource").WithOp(op)
	}
	if err := s.ensure(ctx, next.Type); err != nil {
		return err
	}
	doc, err := marshalDoc(op, next)
	if err != nil {
		return err
	}
	h := encodeHistory(prev)
	res, err := s.db.Collection(next.Type).BulkWrite(ctx, []mongo.WriteModel{
		mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: fID, Value: h[0].Value}}).SetReplacement(h).SetUpsert(true),
		mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: fID, Value: next.ID}, {Key: fVersion, Value: prev.VersionID}}).
			SetReplacement(doc),
	}, options.BulkWrite().SetOrdered(true))
	if err != nil {
		return translate(op, err)
	}
	if res.MatchedCount+res.UpsertedCount < 2 {
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

func conflict(op string, r *store.Resource) error {
	return store.Conflict(op, r, "resource version conflict", r.Key()+" is no longer at the expected version")
}
