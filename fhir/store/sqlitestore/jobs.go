package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

func jobNotFound(op string) error {
	return outcome.New(outcome.NotFound, "job not found").WithOp(op).WithStatus(404)
}

const jobCols = "id, version, kind, owner, status, finished, created, updated, lease_owner, lease_until, data"

func scanJob(sc interface{ Scan(...any) error }) (*store.Job, error) {
	var j store.Job
	var created, updated, until int64
	if err := sc.Scan(&j.ID, &j.Version, &j.Kind, &j.Owner, &j.Status, &j.Finished, &created, &updated, &j.LeaseOwner, &until, &j.Data); err != nil {
		return nil, err
	}
	j.Created, j.Updated = fromMs(created), fromMs(updated)
	j.LeaseUntil = fromMs(until)
	return &j, nil
}

func fromMs(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func toMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// CreateJob implements store.JobStore.
func (s *Store) CreateJob(ctx context.Context, j *store.Job) error {
	const op = "sqlitestore.CreateJob"
	if j.ID == "" {
		return outcome.New(outcome.Exception, "a job needs an id").WithOp(op)
	}
	_, err := s.w.ExecContext(ctx, "INSERT INTO jobs("+jobCols+") VALUES(?,?,?,?,?,?,?,?,?,?,?)",
		j.ID, 1, j.Kind, j.Owner, j.Status, j.Finished, toMs(j.Created), toMs(j.Updated), j.LeaseOwner, toMs(j.LeaseUntil), j.Data)
	if err != nil {
		return translate(op, err)
	}
	j.Version = 1
	return nil
}

// GetJob implements store.JobStore.
func (s *Store) GetJob(ctx context.Context, id string) (*store.Job, error) {
	const op = "sqlitestore.GetJob"
	j, err := scanJob(s.r.QueryRowContext(ctx, "SELECT "+jobCols+" FROM jobs WHERE id=?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, jobNotFound(op)
	}
	if err != nil {
		return nil, translate(op, err)
	}
	return j, nil
}

// UpdateJob implements store.JobStore: compare-and-swap on the version.
func (s *Store) UpdateJob(ctx context.Context, next *store.Job) error {
	const op = "sqlitestore.UpdateJob"
	res, err := s.w.ExecContext(ctx, `UPDATE jobs SET version=version+1, kind=?, owner=?, status=?, finished=?, created=?, updated=?,
		lease_owner=?, lease_until=?, data=? WHERE id=? AND version=?`,
		next.Kind, next.Owner, next.Status, next.Finished, toMs(next.Created), toMs(next.Updated),
		next.LeaseOwner, toMs(next.LeaseUntil), next.Data, next.ID, next.Version)
	if err != nil {
		return translate(op, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetJob(ctx, next.ID); outcome.Is(err, outcome.NotFound) {
			return err
		}
		return outcome.New(outcome.Conflict, "job version conflict").WithOp(op)
	}
	next.Version++
	return nil
}

// ListJobs implements store.JobStore.
func (s *Store) ListJobs(ctx context.Context, kind string, unfinishedOnly bool) ([]*store.Job, error) {
	const op = "sqlitestore.ListJobs"
	rows, err := s.r.QueryContext(ctx, "SELECT "+jobCols+" FROM jobs WHERE (?='' OR kind=?) AND (NOT ? OR finished=0) ORDER BY id",
		kind, kind, unfinishedOnly)
	if err != nil {
		return nil, translate(op, err)
	}
	defer rows.Close()
	var out []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, translate(op, err)
		}
		out = append(out, j)
	}
	return out, translate(op, rows.Err())
}

// DeleteJob implements store.JobStore.
func (s *Store) DeleteJob(ctx context.Context, id string) error {
	_, err := s.w.ExecContext(ctx, "DELETE FROM jobs WHERE id=?", id)
	return translate("sqlitestore.DeleteJob", err)
}
