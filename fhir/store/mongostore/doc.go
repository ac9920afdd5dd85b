// Package mongostore implements store.Store on MongoDB (6.0 or newer) and
// on the embedded FerretDB, through go.mongodb.org/mongo-driver/v2. It is
// the only casefhir package that imports the MongoDB driver.
//
// It owns the document layout, indexes, query translation and driver-error
// translation:
//
//   - collection <Type> holds the current version of each resource
//     (tombstones included), <Type>_history every non-current version with
//     _id "<id>/<version>" and rid "<id>";
//   - fields: _id (FHIR id, a string, never an ObjectId), v (int64 version),
//     lu (lastUpdated, BSON date), del (tombstone), j (canonical JSON, served
//     verbatim), x (search index sub-document);
//   - collection _locks holds leases (Store.Lock).
//
// Durability: on MongoDB every write uses write concern {w: "majority",
// j: true}, so a write is acknowledged only once it is journaled on a
// majority of the replica set and cannot be rolled back. Reads go to the
// primary with read concern "local", so they see every acknowledged write
// immediately (conditional create relies on that). On the embedded store, FerretDB commits to SQLite in WAL
// mode with synchronous=FULL (see package embedded): a commit is fsynced
// before the write is acknowledged.
//
// BSON dates have millisecond precision: LastUpdated and time.Time index
// values come back truncated to the millisecond, and time values in filters
// are truncated likewise before matching, so callers should produce
// millisecond-precision times.
//
// Embedded mode (Options.Embedded) assumes one process owns the data. There
// FerretDB serves only a filter of exactly {_id: <string>} from an index;
// every other filter scans the collection. So compare-and-swap uses
// in-process per-key locks around {_id}-only operations, and only the
// filter shapes that FerretDB v1.24 evaluates like MongoDB are pushed down;
// the rest is evaluated in Go with store.Filter.Match. Results are always
// re-checked with Match. A filter pinning the id (Eq or In on _id) is served
// by point lookups; any other query scans the collection, and FerretDB
// decodes every document of it (about 0.1 ms of CPU per document measured).
// So in embedded mode Find and Count run on an in-memory search index of
// the current versions (memindex.go: index trees, no JSON; about 13 KB per
// Patient and 19-26 KB per Observation of the R4 examples,
// BenchmarkTableMemory), kept in step by every write path and loaded once
// per type and process; results with JSON are read by _id. Lock leases are
// held in memory with a FIFO wait queue (lease.go). Type and system History
// still scan (BenchmarkSearch, BenchmarkTableLoad).
//
// It must not log or put into error details any resource content, index
// value or filter value, and it must never return a raw driver error:
// every error is an *outcome.Error (see errors.go).
package mongostore
