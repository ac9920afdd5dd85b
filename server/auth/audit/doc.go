// Package audit keeps casefhir's audit trail: one FHIR R4 AuditEvent for
// every request that reads or changes data, saying who (token subject,
// client, fhirUser, patient in context, token id), what (the interaction,
// resource type and id, the names of the query parameters), when and with
// which outcome.
//
// A [Recorder] writes events in the background through a bounded queue, so
// recording never fails or noticeably slows the request it records: when
// the queue is full, events are dropped and counted ([Recorder.Stats]).
// Events are stored like any resource through a [Writer], usually
// [HandlerWriter] (the create interaction: validation, indexing, store),
// and are read back through FHIR search, which package auth grants only to
// scopes naming AuditEvent explicitly (system/AuditEvent.rs,
// user/AuditEvent.rs).
//
// It must not put resource content, search parameter values, request
// bodies, Diagnostics or tokens into events or logs; it must not block or
// fail a request; it keeps no package-level state.
package audit
