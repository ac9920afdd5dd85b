// Package bulk implements FHIR Bulk Data export
// (https://hl7.org/fhir/uv/bulkdata/export.html, Bulk Data Access IG v2):
// the kick-off operation at system, Patient, Group and (casefhir's own)
// EpisodeOfCare level, the job model persisted through store.JobStore, the
// background runner with bounded concurrency, the NDJSON writer, the status
// and manifest answers, cancellation, file access for the client that
// started a job, and the sweeper that removes output after its retention.
//
// It is transport-free like package interaction: the server adapts HTTP to
// Service.Kickoff (an interaction.Operation), Service.Status,
// Service.Cancel and Service.File.
//
// How it works:
//
//   - Kick-off checks the request and the caller's scopes and records
//     everything the job needs (types, filters, compartment bounds, group
//     members) in the job record, so the job runs without the caller and
//     any instance can answer for it.
//   - Jobs survive restarts: a runner claims a job with a lease it renews
//     while it works; a job whose lease lapsed (or, on a store this process
//     owns alone, any job not claimed by this process) is resumed from its
//     last completed type, and a job interrupted too often is marked failed.
//   - Resources are streamed from a store cursor (Options.Scanner's
//     unordered scan when the store offers one, else Store.Find) to the file
//     through a buffered writer, the stored JSON written verbatim: memory
//     stays flat however large the export, and the FHIR codec never runs.
//   - One job per worker; a worker yields between batches so interactive
//     requests are not starved.
//
// It must not log resource content, search values or member ids, keep
// package-level mutable state, or render errors itself: every error is an
// *outcome.Error for the server's one renderer. Files are served only
// through Service.File, which checks the job's owner.
package bulk
