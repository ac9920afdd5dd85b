// Package middleware holds casefhir's Gin middleware: request ids, the
// access log (no PHI: no bodies, no query values), panic recovery, request
// body limits, content negotiation and CORS for browser-based SMART apps.
//
// It never writes an error body itself: errors are handed to the renderer
// the server passes in, so every error is an OperationOutcome.
package middleware
