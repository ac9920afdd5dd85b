package server

import (
	"context"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// The instrumented store forwards store.JobStore, so that what type-asserts
// the handler's store for it (the search executor's paging snapshots)
// finds it.

func (s instrumentedStore) jobs() (store.JobStore, error) {
	js, ok := s.Store.(store.JobStore)
	if !ok {
		return nil, outcome.New(outcome.NotSupported, "this store does not keep jobs")
	}
	return js, nil
}

// CreateJob implements store.JobStore.
func (s instrumentedStore) CreateJob(ctx context.Context, j *store.Job) error {
	js, err := s.jobs()
	if err != nil {
		return err
	}
	return js.CreateJob(ctx, j)
}

// GetJob implements store.JobStore.
func (s instrumentedStore) GetJob(ctx context.Context, id string) (*store.Job, error) {
	js, err := s.jobs()
	if err != nil {
		return nil, err
	}
	return js.GetJob(ctx, id)
}

// UpdateJob implements store.JobStore.
func (s instrumentedStore) UpdateJob(ctx context.Context, next *store.Job) error {
	js, err := s.jobs()
	if err != nil {
		return err
	}
	return js.UpdateJob(ctx, next)
}

// ListJobs implements store.JobStore.
func (s instrumentedStore) ListJobs(ctx context.Context, kind string, unfinishedOnly bool) ([]*store.Job, error) {
	js, err := s.jobs()
	if err != nil {
		return nil, err
	}
	return js.ListJobs(ctx, kind, unfinishedOnly)
}

// DeleteJob implements store.JobStore.
func (s instrumentedStore) DeleteJob(ctx context.Context, id string) error {
	js, err := s.jobs()
	if err != nil {
		return err
	}
	return js.DeleteJob(ctx, id)
}
