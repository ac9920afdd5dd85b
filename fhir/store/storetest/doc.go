// Package storetest is the behaviour suite every store.Store implementation
// must pass: Run(t, open) exercises create, read, vread, update with
// compare-and-swap, tombstones, history at every level, find with every
// filter operator (checked against store.Filter.Match), sorting and paging,
// counting, leases and concurrency.
//
// It owns only test code and fixtures. It must not import a store
// implementation or the MongoDB driver, and it must never skip: a backend
// that cannot run is a failure.
package storetest
