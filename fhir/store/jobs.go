package store

import (
	"context"
	"time"
)

// Job is the persisted record of a background job (e.g. a FHIR Bulk Data
// export, https://hl7.org/fhir/uv/bulkdata/export.html). The store keeps
// it; the package running the job owns the meaning of Kind, Status and
// Data. Job records hold no resource content.
type Job struct {
	// ID is the job id (a random UUID), the record's only lookup key.
	ID string
	// Version is bumped by every UpdateJob: it is the compare-and-swap token.
	Version int64
	// Kind names the job type ("export").
	Kind string
	// Owner identifies who started the job (a PHI-free client identifier).
	Owner string
	// Status is the job's state as its package names it.
	Status string
	// Finished is true once the job will not run again (completed, failed
	// or cancelled); ListJobs can leave finished jobs out.
	Finished bool
	// Created and Updated are set by the caller (millisecond precision).
	Created, Updated time.Time
	// LeaseOwner and LeaseUntil say which process runs the job and until
	// when its claim holds without a heartbeat.
	LeaseOwner string
	LeaseUntil time.Time
	// Data is the job's own state (JSON), opaque to the store.
	Data []byte
}

// JobStore persists job records so that any server instance can answer for
// a job and an interrupted job is found again after a restart. Records are
// addressed by ID only (the one lookup every backend serves from an index);
// ListJobs scans, which is fine for a collection that retention keeps small.
// Implementations return *outcome.Error values.
type JobStore interface {
	// CreateJob stores j with Version 1 (j.Version is set).
	// outcome.Duplicate when the id exists.
	CreateJob(ctx context.Context, j *Job) error
	// GetJob returns the job; outcome.NotFound when there is none.
	GetJob(ctx context.Context, id string) (*Job, error)
	// UpdateJob replaces the stored job if its version is still
	// next.Version (the version the caller read), and on success increments
	// next.Version to the stored one. Otherwise it fails with
	// outcome.Conflict (outcome.NotFound when the job is gone) and writes
	// nothing.
	UpdateJob(ctx context.Context, next *Job) error
	// ListJobs returns every job of kind ("" for all kinds); with
	// unfinishedOnly, only jobs whose Finished is false.
	ListJobs(ctx context.Context, kind string, unfinishedOnly bool) ([]*Job, error)
	// DeleteJob removes the job; deleting a missing job is not an error.
	DeleteJob(ctx context.Context, id string) error
}
