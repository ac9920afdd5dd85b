// Package mongostore implements store.Store on MongoDB 6.0 or newer, as a
// replica set (one node is fine) or a sharded cluster, through
// go.mongodb.org/mongo-driver/v2. It is the only casefhir package that
// imports the MongoDB driver.
//
// It owns the document layout, indexes, query translation and driver-error
// translation:
//
//   - collection <Type> holds the current version of each resource
//     (tombstones included) and every non-current version as a history
//     document: _id "~<id>/<version>", rid "<id>", hdel and hx in place of
//     del and x (no query or index of current versions meets them);
//   - fields: _id (FHIR id, a string, never an ObjectId), v (int64 version),
//     lu (lastUpdated, BSON date), del (tombstone), j (canonical JSON, served
//     verbatim), x (search index sub-document, with package search's sort
//     keys under x._sort);
//   - collection _locks holds leases (Store.Lock), _jobs background jobs.
//
// The database does the work: Find sends the filter, the sort, the keyset
// cursor (FindOptions.After) and the limit to MongoDB, Count is
// countDocuments, History pages by the keyset of store.VersionKey. How a
// missing sort value is put last is explained in plan.go; which index
// serves which query shape in docs/mongodb-indexes.md. Round trips: a read
// is one find, a create one insert, an update one update command (the
// history copy and a compare-and-swap replace on {_id, v}), a page one
// find; CommandCounts reports them per command name.
//
// Open refuses a standalone server (hello without setName, not a mongos):
// transactions (Apply) are session transactions, which need a replica
// set. Options.AllowStandalone is for test stand-ins only (FerretDB, see
// package ferrettest).
//
// Durability: every write uses write concern {w: "majority", j: true}, so
// a write is acknowledged only once it is journaled on a majority of the
// replica set and cannot be rolled back. Reads go to the primary with read
// concern "local", so they see every acknowledged write immediately
// (conditional create under Lock relies on that).
//
// BSON dates have millisecond precision: LastUpdated and time.Time index
// values come back truncated to the millisecond, and time values in filters
// and cursors are truncated likewise, so callers should produce
// millisecond-precision times.
//
// It must not log or put into error details any resource content, index
// value or filter value, and it must never return a raw driver error:
// every error is an *outcome.Error (see errors.go).
package mongostore
