// Package servertest starts real casefhir servers for tests: the real
// wiring (codec, search, auth) on the in-memory reference store
// (fhir/store/memstore) behind a real HTTP
// listener on loopback, plus small helpers to send FHIR requests and
// decode answers. It is imported by tests only.
package servertest
