// Package servertest starts real casefhir servers for tests: the real
// wiring (embedded SQLite store, codec, search, auth) behind a real HTTP
// listener on loopback, plus small helpers to send FHIR requests and
// decode answers. It is imported by tests only.
package servertest
