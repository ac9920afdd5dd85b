// Package interaction implements the FHIR RESTful interactions
// (https://hl7.org/fhir/R4/http.html) with no transport: each takes a typed
// Request and returns a Response or an error (an *outcome.Error), one file
// per interaction. Batch and transaction entries go through the same
// functions as HTTP requests.
//
// It owns FHIR semantics (versioning, conditional operations, Prefer,
// If-Match and friends) on top of the store primitives. It must not import
// Gin, the MongoDB driver or a store implementation, and it never writes an
// error body itself: errors are rendered once, in package server.
package interaction
