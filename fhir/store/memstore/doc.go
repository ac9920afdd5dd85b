// Package memstore is an in-memory implementation of the store contract
// (store.Store, store.Transactional, store.JobStore) for unit tests and as
// the reference semantics: Find filters with store.Filter.Match and orders
// with store.ComparePositions, History follows store.VersionKey.
//
// It holds everything in memory (every version of every resource) and
// scans on every query, so it is never used by the server to serve
// requests: tests inject it (server/servertest), and the storetest suite
// runs against it to check the suite itself.
package memstore
