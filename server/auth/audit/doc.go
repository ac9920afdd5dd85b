// Package audit keeps casefhir's audit trail: one FHIR R4 AuditEvent for
// every request that reads or changes data, saying who (token subject,
// client, fhirUser, patient in context, token id), what (the interaction,
// resource type and id, the names of the query parameters), when and with
// which outcome.
//
// The trail never loses an acknowledged access. A [Recorder] admits a
// request before it does any work (a bounded number of requests may wait
// for their events to be stored; beyond that a request waits for room and
// is refused with 503 and Retry-After when its wait ends), and the
// request's response is sent only after [Ticket.Commit] has stored its
// events durably. Events of concurrent requests are stored together by one
// writer (group commit), so one store write carries many events. An event
// that cannot be stored fails its request (503); nothing is dropped.
// Events are stored like any resource through a [Writer] (usually a
// [BatchWriter] inserting many at once) and are read back through FHIR
// search, which package auth grants only to scopes naming AuditEvent
// explicitly (system/AuditEvent.rs, user/AuditEvent.rs).
//
// It must not put resource content, search parameter values, request
// bodies, Diagnostics or tokens into events or logs; it keeps no
// package-level state.
package audit
