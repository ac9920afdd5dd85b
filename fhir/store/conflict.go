package store

import (
	"errors"

	"github.com/casefhir/casefhir/fhir/outcome"
)

// ConflictError is the cause of an outcome.Conflict from a write or from
// Transactional.Apply: it names the resource ("Type/id") whose version or
// existence check failed, so that callers (a transaction naming its
// failing entry) need not parse text.
type ConflictError struct {
	// Key is the conflicting resource, "Type/id".
	Key string
}

func (e *ConflictError) Error() string { return "conflict on " + e.Key }

// Conflict returns the outcome.Conflict a store reports when the version
// or existence check of res failed: detail is PHI-free, diagnostics is for
// the client, and the cause is a *ConflictError naming res.
func Conflict(op string, res *Resource, detail, diagnostics string) *outcome.Error {
	return &outcome.Error{Op: op, Code: outcome.Conflict, Detail: detail, Diagnostics: diagnostics,
		Err: &ConflictError{Key: res.Key()}}
}

// ConflictKey returns the "Type/id" a conflict error names, or "" when err
// carries no *ConflictError.
func ConflictKey(err error) string {
	var ce *ConflictError
	if errors.As(err, &ce) {
		return ce.Key
	}
	return ""
}
