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
// request's response is sent only after [Ticket.Commit] has made its
// events durable. Events of concurrent requests are made durable together
// by one writer (group commit): appended to a local journal and synced
// (then moved to the store in batches, and stored at the next start after
// a crash), or, without a journal, written to the store directly. An
// event that cannot be made durable fails its request (503); nothing is
// dropped. Events are stored like any resource through a [Writer], each
// with an id assigned once so that a replay stores it once, and are read
// back through FHIR search, which package auth grants only to scopes
// naming AuditEvent explicitly (system/AuditEvent.rs, user/AuditEvent.rs).
//
// It must not put resource content, search parameter values, request
// bodies, Diagnostics or tokens into events or logs; it keeps no
// package-level state.
package audit
