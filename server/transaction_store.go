package server

import (
	"context"
	"time"

	"github.com/casefhir/casefhir/fhir/outcome"
	"github.com/casefhir/casefhir/fhir/store"
)

// Apply implements store.Transactional
// (https://hl7.org/fhir/R4/http.html#transaction) when the instrumented
// store does, recording its latency like every other store operation.
func (s instrumentedStore) Apply(ctx context.Context, writes []store.Write) (err error) {
	ts, ok := s.Store.(store.Transactional)
	if !ok {
		return outcome.New(outcome.NotSupported, "this store cannot apply transactions atomically")
	}
	defer func(t time.Time) { s.obs("apply", t, err) }(time.Now())
	return ts.Apply(ctx, writes)
}
