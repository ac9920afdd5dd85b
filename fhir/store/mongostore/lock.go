package mongostore

import (
	"context"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"time"

	crand "crypto/rand"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/casefhir/casefhir/fhir/outcome"
)

const (
	fExp   = "exp"
	fOwner = "owner"
)

// Lock implements store.Store with lease documents in _locks ({_id: key,
// exp, owner}): insert the lease; while another holder has it, poll with a
// growing, jittered backoff; an expired lease is taken over. The lease is
// released by deleting it only if this caller still owns it, so a holder
// whose lease expired and was taken over does not release the new holder's.
// Expiry uses this process's clock: instances sharing a database need
// clocks that agree to well within ttl.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	const op = "mongostore.Lock"
	if key == "" || ttl <= 0 {
		return nil, outcome.New(outcome.Exception, "lock needs a key and a positive ttl").WithOp(op)
	}
	if err := s.ensure(ctx, locksColl); err != nil {
		return nil, err
	}
	owner := token()
	coll := s.db.Collection(locksColl)
	wait := 2 * time.Millisecond
	for {
		now := time.Now()
		_, err := coll.InsertOne(ctx, bson.D{
			{Key: fID, Value: key},
			{Key: fExp, Value: bson.NewDateTimeFromTime(now.Add(ttl))},
			{Key: fOwner, Value: owner},
		})
		if err == nil {
			return func(ctx context.Context) error { return s.unlock(ctx, key, owner) }, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, translate(op, err)
		}
		took, err := s.takeExpired(ctx, key, now)
		if err != nil {
			return nil, err
		}
		if took {
			continue
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, translate(op, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// takeExpired deletes the lease key if it expired before now, reporting
// whether it is gone (so the caller may retry the insert).
func (s *Store) takeExpired(ctx context.Context, key string, now time.Time) (bool, error) {
	const op = "mongostore.Lock"
	coll := s.db.Collection(locksColl)
	raw, err := coll.FindOne(ctx, bson.D{{Key: fID, Value: key}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return true, nil // released meanwhile
	}
	if err != nil {
		return false, translate(op, err)
	}
	exp, ok := raw.Lookup(fExp).DateTimeOK()
	if ok && time.UnixMilli(exp).After(now) {
		return false, nil
	}
	holder, _ := raw.Lookup(fOwner).StringValueOK()
	// Only the lease we saw expire: not one re-taken meanwhile.
	filter := bson.D{{Key: fID, Value: key}, {Key: fOwner, Value: holder}}
	if _, err := coll.DeleteOne(ctx, filter); err != nil {
		return false, translate(op, err)
	}
	s.log.WarnContext(ctx, "took over an expired lock lease")
	return true, nil
}

// unlock deletes the lease key if owner still holds it.
func (s *Store) unlock(ctx context.Context, key, owner string) error {
	const op = "mongostore.Unlock"
	_, err := s.db.Collection(locksColl).DeleteOne(ctx, bson.D{{Key: fID, Value: key}, {Key: fOwner, Value: owner}})
	return translate(op, err)
}

// token returns a random lease owner id.
func token() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
