// Package ferrettest runs FerretDB v1 (SQLite backend) inside the process
// and hands back a MongoDB URI for it: a MongoDB-wire test stand-in for
// package mongostore's tests and for cmd/benchfhir's MongoDB-wire section.
// It is not part of the product: only tests and that benchmark tool import
// it (deps_test.go enforces this), so FerretDB is not linked into casefhir.
//
// FerretDB is not a replica set: it has no transactions, and it runs a
// conditional replace as a separate find and update, so compare-and-swap
// is not atomic under concurrency. A store on it is opened with
// mongostore.Options.AllowStandalone, and the cases it cannot serve are
// skipped with that reason.
//
// FerretDB's own _id index is not used by the SQL it runs for a {_id}
// filter; EnsureIDIndex adds an SQLite expression index that is, so that
// benchmarks on the stand-in read by id without scanning.
//
// It never logs document contents; FerretDB's own logs are passed on at
// warn level and above only, minus its dumps of wire messages.
package ferrettest
