// Package outcome owns casefhir's single error type, [Error], and the
// rendering of errors (and informational results) as FHIR R4
// OperationOutcome resources.
//
// Errors are made where they are known (codec, validation, search parsing,
// the store translating driver errors, auth, interactions) and rendered in
// exactly one place in package server.
//
// An Error keeps PHI apart: Detail is PHI-free and safe to log;
// Diagnostics and Expression may carry patient data and are sent to the
// client only, never logged. Error() returns only the PHI-free parts.
//
// This package imports nothing of casefhir's and must stay that way.
package outcome
