package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// jobsColl holds background job records (store.JobStore), addressed by _id.
const jobsColl = "_jobs"

// Fields of a job document.
const (
	jVersion  = "ver"
	jKind     = "kind"
	jOwner    = "owner"
	jStatus   = "status"
	jFinished = "fin"
	jCreated  = "created"
	jUpdated  = "updated"
	jLease    = "lease"
	jLeaseTo  = "leaseTo"
	jData     = "data"
)

var _ store.JobStore = (*Store)(nil)

func encodeJob(j *store.Job) bson.D {
	return bson.D{
		{Key: fID, Value: j.ID},
		{Key: jVersion, Value: j.Version},
		{Key: jKind, Value: j.Kind},
		{Key: jOwner, Value: j.Owner},
		{Key: jStatus, Value: j.Status},
		{Key: jFinished, Value: j.Finished},
		{Key: jCreated, Value: bson.NewDateTimeFromTime(j.Created)},
		{Key: jUpdated, Value: bson.NewDateTimeFromTime(j.Updated)},
		{Key: jLease, Value: j.LeaseOwner},
		{Key: jLeaseTo, Value: bson.NewDateTimeFromTime(j.LeaseUntil)},
		{Key: jData, Value: string(j.Data)},
	}
}

func decodeJob(raw bson.Raw) (*store.Job, error) {
	j := &store.Job{}
	elems, err := raw.Elements()
	if err != nil {
		return nil, corrupt(err)
	}
	date := func(v bson.RawValue) time.Time {
		if dt, ok := v.DateTimeOK(); ok {
			return time.UnixMilli(dt).UTC()
		}
		return time.Time{}
	}
	for _, e := range elems {
		v := e.Value()
		switch e.Key() {
		case fID:
			j.ID, _ = v.StringValueOK()
		case jVersion:
			j.Version, _ = v.AsInt64OK()
		case jKind:
			j.Kind, _ = v.StringValueOK()
		case jOwner:
			j.Owner, _ = v.StringValueOK()
		case jStatus:
			j.Status, _ = v.StringValueOK()
		case jFinished:
			j.Finished, _ = v.BooleanOK()
		case jCreated:
			j.Created = date(v)
		case jUpdated:
			j.Updated = date(v)
		case jLease:
			j.LeaseOwner, _ = v.StringValueOK()
		case jLeaseTo:
			j.LeaseUntil = date(v)
		case jData:
			if s, ok := v.StringValueOK(); ok {
				j.Data = []byte(s)
			}
		}
	}
	if j.ID == "" {
		return nil, corrupt(nil)
	}
	return j, nil
}

func jobNotFound(op string) error {
	return outcome.New(outcome.NotFound, "job not found").WithOp(op).WithStatus(404)
}

// CreateJob implements store.JobStore: one insert into _jobs.
func (s *Store) CreateJob(ctx context.Context, j *store.Job) error {
	const op = "mongostore.CreateJob"
	if j.ID == "" {
		return outcome.New(outcome.Exception, "a job needs an id").WithOp(op)
	}
	if err := s.ensure(ctx, jobsColl); err != nil {
		return err
	}
	j.Version = 1
	_, err := s.db.Collection(jobsColl).InsertOne(ctx, encodeJob(j))
	return translate(op, err)
}

// GetJob implements store.JobStore: a point lookup by _id.
func (s *Store) GetJob(ctx context.Context, id string) (*store.Job, error) {
	const op = "mongostore.GetJob"
	if err := s.ensure(ctx, jobsColl); err != nil {
		return nil, err
	}
	raw, err := s.db.Collection(jobsColl).FindOne(ctx, bson.D{{Key: fID, Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, jobNotFound(op)
	}
	if err != nil {
		return nil, translate(op, err)
	}
	return decodeJob(raw)
}

// UpdateJob implements store.JobStore: compare-and-swap on the version. On
// one ReplaceOne filtered by {_id, ver}.
func (s *Store) UpdateJob(ctx context.Context, next *store.Job) error {
	const op = "mongostore.UpdateJob"
	if err := s.ensure(ctx, jobsColl); err != nil {
		return err
	}
	coll := s.db.Collection(jobsColl)
	want := next.Version
	doc := encodeJob(next)
	doc[1].Value = want + 1
	filter := bson.D{{Key: fID, Value: next.ID}, {Key: jVersion, Value: want}}
	res, err := coll.ReplaceOne(ctx, filter, doc)
	if err != nil {
		return translate(op, err)
	}
	if res.MatchedCount == 0 {
		if _, err := s.GetJob(ctx, next.ID); outcome.Is(err, outcome.NotFound) {
			return err
		}
		return outcome.New(outcome.Conflict, "job version conflict").WithOp(op)
	}
	next.Version = want + 1
	return nil
}

// ListJobs implements store.JobStore: one find on kind and finished (the
// collection is small: finished jobs are deleted after their retention).
func (s *Store) ListJobs(ctx context.Context, kind string, unfinishedOnly bool) ([]*store.Job, error) {
	const op = "mongostore.ListJobs"
	if err := s.ensure(ctx, jobsColl); err != nil {
		return nil, err
	}
	q := bson.D{}
	if kind != "" {
		q = append(q, bson.E{Key: jKind, Value: kind})
	}
	if unfinishedOnly {
		q = append(q, bson.E{Key: jFinished, Value: false})
	}
	cur, err := s.db.Collection(jobsColl).Find(ctx, q)
	if err != nil {
		return nil, translate(op, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []*store.Job
	for cur.Next(ctx) {
		j, err := decodeJob(cur.Current)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, translate(op, cur.Err())
}

// DeleteJob implements store.JobStore: a delete by _id.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	const op = "mongostore.DeleteJob"
	if err := s.ensure(ctx, jobsColl); err != nil {
		return err
	}
	_, err := s.db.Collection(jobsColl).DeleteOne(ctx, bson.D{{Key: fID, Value: id}})
	return translate(op, err)
}
