package mongostore

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

var _ store.Transactional = (*Store)(nil)

// Apply implements store.Transactional
// (https://hl7.org/fhir/R4/http.html#transaction): all writes or none, in
// one MongoDB session transaction with version-guarded replaces (see
// applySession). Readers see none of the writes until the commit.
//
// A store opened with Options.AllowStandalone on a server without
// transactions (a test stand-in) fails with outcome.NotSupported.
func (s *Store) Apply(ctx context.Context, writes []store.Write) error {
	const op = "mongostore.Apply"
	if len(writes) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(writes))
	for i, w := range writes {
		if err := checkWrite(op, w); err != nil {
			return err
		}
		k := w.Next.Key()
		if seen[k] {
			return outcome.New(outcome.Invalid, "a resource appears more than once in a transaction").
				WithOp(op).WithDiagnostics(fmt.Sprintf("%s (write %d)", k, i))
		}
		seen[k] = true
	}
	if !s.sessions {
		return outcome.New(outcome.NotSupported, "transactions need a MongoDB replica set").WithOp(op)
	}
	// Collections and indexes cannot be created inside a transaction on
	// every server version: make them exist first.
	for _, w := range writes {
		if err := s.ensure(ctx, w.Next.Type); err != nil {
			return err
		}
	}
	return s.applySession(ctx, writes)
}

func checkWrite(op string, w store.Write) error {
	n := w.Next
	if n == nil || n.ID == "" {
		return outcome.New(outcome.Exception, "a transaction write needs a next version with an id").WithOp(op)
	}
	if err := checkType(op, n.Type); err != nil {
		return err
	}
	if w.Prev == nil {
		if n.VersionID != 1 {
			return outcome.New(outcome.Exception, "a create needs version 1").WithOp(op)
		}
		return nil
	}
	if w.Prev.Type != n.Type || w.Prev.ID != n.ID || n.VersionID != w.Prev.VersionID+1 {
		return outcome.New(outcome.Exception, "next must follow prev of the same resource").WithOp(op)
	}
	return nil
}

// applySession runs writes in one MongoDB session transaction. A version
// check that fails aborts it with outcome.Conflict; write conflicts with
// concurrent transactions are retried by the driver and then fail the
// version check.
func (s *Store) applySession(ctx context.Context, writes []store.Write) error {
	const op = "mongostore.Apply"
	sess, err := s.client.StartSession()
	if err != nil {
		return translate(op, err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	journal := true
	topts := options.Transaction().
		SetReadConcern(readconcern.Snapshot()).
		SetWriteConcern(&writeconcern.WriteConcern{W: "majority", Journal: &journal})
	_, err = sess.WithTransaction(ctx, func(sc context.Context) (any, error) {
		for _, w := range writes {
			coll := s.db.Collection(w.Next.Type)
			if w.Prev == nil {
				if _, err := coll.InsertOne(sc, encode(w.Next)); err != nil {
					if mongo.IsDuplicateKeyError(err) {
						return nil, conflict(op, w.Next)
					}
					return nil, err
				}
				continue
			}
			// An upsert, not an insert: a duplicate-key error would abort
			// the transaction, and a copy left by an interrupted single
			// update is the same version.
			h := encodeHistory(w.Prev)
			if _, err := coll.ReplaceOne(sc,
				bson.D{{Key: fID, Value: h[0].Value}}, h, options.Replace().SetUpsert(true)); err != nil {
				return nil, err
			}
			res, err := coll.ReplaceOne(sc, bson.D{{Key: fID, Value: w.Next.ID}, {Key: fVersion, Value: w.Prev.VersionID}}, encode(w.Next))
			if err != nil {
				return nil, err
			}
			if res.MatchedCount == 0 {
				return nil, conflict(op, w.Next)
			}
		}
		return nil, nil
	}, topts)
	if err != nil {
		var oe *outcome.Error
		if errors.As(err, &oe) {
			return oe
		}
		return translate(op, err)
	}
	return nil
}
