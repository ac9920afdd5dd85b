package server

import (
	"context"
	"time"

	"github.com/casefhir/casefhir/fhir/store"
)

// instrument wraps st so that every store operation's latency is recorded,
// and the wrapper implements exactly the optional interfaces st has
// (store.Transactional, store.JobStore): a caller type-asserting the
// wrapped store finds what the real store offers, and nothing it does not.
func instrument(st store.Store, m *Metrics) store.Store {
	base := instrumentedStore{Store: st, m: m}
	tx, isTx := st.(store.Transactional)
	js, isJobs := st.(store.JobStore)
	switch {
	case isTx && isJobs:
		return struct {
			instrumentedStore
			instrumentedTx
			instrumentedJobs
		}{base, instrumentedTx{tx, base}, instrumentedJobs{js, base}}
	case isTx:
		return struct {
			instrumentedStore
			instrumentedTx
		}{base, instrumentedTx{tx, base}}
	case isJobs:
		return struct {
			instrumentedStore
			instrumentedJobs
		}{base, instrumentedJobs{js, base}}
	}
	return base
}

// instrumentedTx records the latency of Apply.
type instrumentedTx struct {
	tx store.Transactional
	s  instrumentedStore
}

// Apply implements store.Transactional
// (https://hl7.org/fhir/R4/http.html#transaction).
func (t instrumentedTx) Apply(ctx context.Context, writes []store.Write) (err error) {
	defer func(start time.Time) { t.s.obs("apply", start, err) }(time.Now())
	return t.tx.Apply(ctx, writes)
}

// instrumentedJobs records the latency of job record operations.
type instrumentedJobs struct {
	js store.JobStore
	s  instrumentedStore
}

// CreateJob implements store.JobStore.
func (j instrumentedJobs) CreateJob(ctx context.Context, job *store.Job) (err error) {
	defer func(start time.Time) { j.s.obs("job_create", start, err) }(time.Now())
	return j.js.CreateJob(ctx, job)
}

// GetJob implements store.JobStore.
func (j instrumentedJobs) GetJob(ctx context.Context, id string) (job *store.Job, err error) {
	defer func(start time.Time) { j.s.obs("job_get", start, notFoundIsFine(err)) }(time.Now())
	return j.js.GetJob(ctx, id)
}

// UpdateJob implements store.JobStore.
func (j instrumentedJobs) UpdateJob(ctx context.Context, next *store.Job) (err error) {
	defer func(start time.Time) { j.s.obs("job_update", start, err) }(time.Now())
	return j.js.UpdateJob(ctx, next)
}

// ListJobs implements store.JobStore.
func (j instrumentedJobs) ListJobs(ctx context.Context, kind string, unfinishedOnly bool) (jobs []*store.Job, err error) {
	defer func(start time.Time) { j.s.obs("job_list", start, err) }(time.Now())
	return j.js.ListJobs(ctx, kind, unfinishedOnly)
}

// DeleteJob implements store.JobStore.
func (j instrumentedJobs) DeleteJob(ctx context.Context, id string) (err error) {
	defer func(start time.Time) { j.s.obs("job_delete", start, err) }(time.Now())
	return j.js.DeleteJob(ctx, id)
}
