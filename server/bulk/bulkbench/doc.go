// Package bulkbench measures bulk export on the embedded store: it seeds
// resources through the store directly (no HTTP, no codec), then runs an
// export through bulk.Service and a plain driver scan of the same
// collections, reporting throughput (resources/s) and peak heap in use.
// make bench's driver calls Run; the package benchmark wraps it.
//
// It also offers the seeding helpers the export tests use. It must not be
// imported by production code.
package bulkbench
